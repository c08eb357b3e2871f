# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/02.08-Sorting.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.
# Edit: code cell 14: style seaborn-X is seaborn-v0_8-X

# %%
L = [3, 1, 4, 1, 5, 9, 2, 6]
sorted(L)  # returns a sorted copy

# %%
L.sort()  # acts in-place and returns None
print(L)

# %%
sorted('python')

# %%
import numpy as np

x = np.array([2, 1, 4, 3, 5])
np.sort(x)

# %%
x.sort()
print(x)

# %%
x = np.array([2, 1, 4, 3, 5])
i = np.argsort(x)
print(i)

# %%
x[i]

# %%
rng = np.random.default_rng(seed=42)
X = rng.integers(0, 10, (4, 6))
print(X)

# %%
# sort each column of X
np.sort(X, axis=0)

# %%
# sort each row of X
np.sort(X, axis=1)

# %%
x = np.array([7, 2, 3, 1, 6, 5, 4])
np.partition(x, 3)

# %%
np.partition(X, 2, axis=1)

# %%
X = rng.random((10, 2))

# %%
%matplotlib inline
import matplotlib.pyplot as plt
plt.style.use('seaborn-v0_8-whitegrid')
plt.scatter(X[:, 0], X[:, 1], s=100);

# %%
dist_sq = np.sum((X[:, np.newaxis] - X[np.newaxis, :]) ** 2, axis=-1)

# %%
# for each pair of points, compute differences in their coordinates
differences = X[:, np.newaxis] - X[np.newaxis, :]
differences.shape

# %%
# square the coordinate differences
sq_differences = differences ** 2
sq_differences.shape

# %%
# sum the coordinate differences to get the squared distance
dist_sq = sq_differences.sum(-1)
dist_sq.shape

# %%
dist_sq.diagonal()

# %%
nearest = np.argsort(dist_sq, axis=1)
print(nearest)

# %%
K = 2
nearest_partition = np.argpartition(dist_sq, K + 1, axis=1)

# %%
plt.scatter(X[:, 0], X[:, 1], s=100)

# draw lines from each point to its two nearest neighbors
K = 2

for i in range(X.shape[0]):
    for j in nearest_partition[i, :K+1]:
        # plot a line from X[i] to X[j]
        # use some zip magic to make it happen:
        plt.plot(*zip(X[j], X[i]), color='black')
