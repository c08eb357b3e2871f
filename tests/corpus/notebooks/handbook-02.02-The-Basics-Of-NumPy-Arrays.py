# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/02.02-The-Basics-Of-NumPy-Arrays.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.

# %%
import numpy as np
rng = np.random.default_rng(seed=1701)  # seed for reproducibility

x1 = rng.integers(10, size=6)  # one-dimensional array
x2 = rng.integers(10, size=(3, 4))  # two-dimensional array
x3 = rng.integers(10, size=(3, 4, 5))  # three-dimensional array

# %%
print("x3 ndim: ", x3.ndim)
print("x3 shape:", x3.shape)
print("x3 size: ", x3.size)
print("dtype:   ", x3.dtype)

# %%
x1

# %%
x1[0]

# %%
x1[4]

# %%
x1[-1]

# %%
x1[-2]

# %%
x2

# %%
x2[0, 0]

# %%
x2[2, 0]

# %%
x2[2, -1]

# %%
x2[0, 0] = 12
x2

# %%
x1[0] = 3.14159  # this will be truncated!
x1

# %%
x1

# %%
x1[:3]  # first three elements

# %%
x1[3:]  # elements after index 3

# %%
x1[1:4]  # middle subarray

# %%
x1[::2]  # every second element

# %%
x1[1::2]  # every second element, starting at index 1

# %%
x1[::-1]  # all elements, reversed

# %%
x1[4::-2]  # every second element from index 4, reversed

# %%
x2

# %%
x2[:2, :3]  # first two rows & three columns

# %%
x2[:3, ::2]  # three rows, every second column

# %%
x2[::-1, ::-1]  # all rows & columns, reversed

# %%
x2[:, 0]  # first column of x2

# %%
x2[0, :]  # first row of x2

# %%
x2[0]  # equivalent to x2[0, :]

# %%
print(x2)

# %%
x2_sub = x2[:2, :2]
print(x2_sub)

# %%
x2_sub[0, 0] = 99
print(x2_sub)

# %%
print(x2)

# %%
x2_sub_copy = x2[:2, :2].copy()
print(x2_sub_copy)

# %%
x2_sub_copy[0, 0] = 42
print(x2_sub_copy)

# %%
print(x2)

# %%
grid = np.arange(1, 10).reshape(3, 3)
print(grid)

# %%
x = np.array([1, 2, 3])
x.reshape((1, 3))  # row vector via reshape

# %%
x.reshape((3, 1))  # column vector via reshape

# %%
x[np.newaxis, :]  # row vector via newaxis

# %%
x[:, np.newaxis]  # column vector via newaxis

# %%
x = np.array([1, 2, 3])
y = np.array([3, 2, 1])
np.concatenate([x, y])

# %%
z = np.array([99, 99, 99])
print(np.concatenate([x, y, z]))

# %%
grid = np.array([[1, 2, 3],
                 [4, 5, 6]])

# %%
# concatenate along the first axis
np.concatenate([grid, grid])

# %%
# concatenate along the second axis (zero-indexed)
np.concatenate([grid, grid], axis=1)

# %%
# vertically stack the arrays
np.vstack([x, grid])

# %%
# horizontally stack the arrays
y = np.array([[99],
              [99]])
np.hstack([grid, y])

# %%
x = [1, 2, 3, 99, 99, 3, 2, 1]
x1, x2, x3 = np.split(x, [3, 5])
print(x1, x2, x3)

# %%
grid = np.arange(16).reshape((4, 4))
grid

# %%
upper, lower = np.vsplit(grid, [2])
print(upper)
print(lower)

# %%
left, right = np.hsplit(grid, [2])
print(left)
print(right)
