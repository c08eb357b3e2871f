# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/02.01-Understanding-Data-Types.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.

# %%
L = list(range(10))
L

# %%
type(L[0])

# %%
L2 = [str(c) for c in L]
L2

# %%
type(L2[0])

# %%
L3 = [True, "2", 3.0, 4]
[type(item) for item in L3]

# %%
import array
L = list(range(10))
A = array.array('i', L)
A

# %%
import numpy as np

# %%
# Integer array
np.array([1, 4, 2, 5, 3])

# %%
np.array([3.14, 4, 2, 3])

# %%
np.array([1, 2, 3, 4], dtype=np.float32)

# %%
# Nested lists result in multidimensional arrays
np.array([range(i, i + 3) for i in [2, 4, 6]])

# %%
# Create a length-10 integer array filled with 0s
np.zeros(10, dtype=int)

# %%
# Create a 3x5 floating-point array filled with 1s
np.ones((3, 5), dtype=float)

# %%
# Create a 3x5 array filled with 3.14
np.full((3, 5), 3.14)

# %%
# Create an array filled with a linear sequence
# starting at 0, ending at 20, stepping by 2
# (this is similar to the built-in range function)
np.arange(0, 20, 2)

# %%
# Create an array of five values evenly spaced between 0 and 1
np.linspace(0, 1, 5)

# %%
# Create a 3x3 array of uniformly distributed
# pseudorandom values between 0 and 1
np.random.random((3, 3))

# %%
# Create a 3x3 array of normally distributed pseudorandom
# values with mean 0 and standard deviation 1
np.random.normal(0, 1, (3, 3))

# %%
# Create a 3x3 array of pseudorandom integers in the interval [0, 10)
np.random.randint(0, 10, (3, 3))

# %%
# Create a 3x3 identity matrix
np.eye(3)

# %%
# Create an uninitialized array of three integers; the values will be
# whatever happens to already exist at that memory location
np.empty(3)
