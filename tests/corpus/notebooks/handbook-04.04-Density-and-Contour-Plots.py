# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/04.04-Density-and-Contour-Plots.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.
# Edit: code cell 1: style seaborn-X is seaborn-v0_8-X

# %%
%matplotlib inline
import matplotlib.pyplot as plt
plt.style.use('seaborn-v0_8-white')
import numpy as np

# %%
def f(x, y):
    return np.sin(x) ** 10 + np.cos(10 + y * x) * np.cos(x)

# %%
x = np.linspace(0, 5, 50)
y = np.linspace(0, 5, 40)

X, Y = np.meshgrid(x, y)
Z = f(X, Y)

# %%
plt.contour(X, Y, Z, colors='black');

# %%
plt.contour(X, Y, Z, 20, cmap='RdGy');

# %%
plt.contourf(X, Y, Z, 20, cmap='RdGy')
plt.colorbar();

# %%
plt.imshow(Z, extent=[0, 5, 0, 5], origin='lower', cmap='RdGy',
           interpolation='gaussian', aspect='equal')
plt.colorbar();

# %%
contours = plt.contour(X, Y, Z, 3, colors='black')
plt.clabel(contours, inline=True, fontsize=8)

plt.imshow(Z, extent=[0, 5, 0, 5], origin='lower',
           cmap='RdGy', alpha=0.5)
plt.colorbar();
