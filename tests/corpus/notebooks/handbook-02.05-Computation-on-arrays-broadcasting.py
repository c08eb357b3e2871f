# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/02.05-Computation-on-arrays-broadcasting.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.
# Edit: code cell 13 left out: raises, as the book shows

# %%
import numpy as np

# %%
a = np.array([0, 1, 2])
b = np.array([5, 5, 5])
a + b

# %%
a + 5

# %%
M = np.ones((3, 3))
M

# %%
M + a

# %%
a = np.arange(3)
b = np.arange(3)[:, np.newaxis]

print(a)
print(b)

# %%
a + b

# %%
M = np.ones((2, 3))
a = np.arange(3)

# %%
M + a

# %%
a = np.arange(3).reshape((3, 1))
b = np.arange(3)

# %%
a + b

# %%
M = np.ones((3, 2))
a = np.arange(3)

# %%
a[:, np.newaxis].shape

# %%
M + a[:, np.newaxis]

# %%
np.logaddexp(M, a[:, np.newaxis])

# %%
rng = np.random.default_rng(seed=1701)
X = rng.random((10, 3))

# %%
Xmean = X.mean(0)
Xmean

# %%
X_centered = X - Xmean

# %%
X_centered.mean(0)

# %%
# x and y have 50 steps from 0 to 5
x = np.linspace(0, 5, 50)
y = np.linspace(0, 5, 50)[:, np.newaxis]

z = np.sin(x) ** 10 + np.cos(10 + y * x) * np.cos(x)

# %%
%matplotlib inline
import matplotlib.pyplot as plt

# %%
plt.imshow(z, origin='lower', extent=[0, 5, 0, 5])
plt.colorbar();
