# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/03.04-Missing-Values.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.
# Edit: code cell 3: %timeit left out
# Edit: code cell 4: %timeit left out
# Edit: code cell 5 left out: raises, as the book shows
# Edit: code cell 27: fillna(method=M) is M()
# Edit: code cell 28: fillna(method=M) is M()
# Edit: code cell 30: fillna(method=M) is M()

# %%
import numpy as np
import pandas as pd

# %%
vals1 = np.array([1, None, 2, 3])
vals1

# %%
vals2 = np.array([1, np.nan, 3, 4]) 
vals2

# %%
1 + np.nan

# %%
0 * np.nan

# %%
vals2.sum(), vals2.min(), vals2.max()

# %%
np.nansum(vals2), np.nanmin(vals2), np.nanmax(vals2)

# %%
pd.Series([1, np.nan, 2, None])

# %%
x = pd.Series(range(2), dtype=int)
x

# %%
x[0] = None
x

# %%
pd.Series([1, np.nan, 2, None, pd.NA], dtype='Int32')

# %%
data = pd.Series([1, np.nan, 'hello', None])

# %%
data.isnull()

# %%
data[data.notnull()]

# %%
data.dropna()

# %%
df = pd.DataFrame([[1,      np.nan, 2],
                   [2,      3,      5],
                   [np.nan, 4,      6]])
df

# %%
df.dropna()

# %%
df.dropna(axis='columns')

# %%
df[3] = np.nan
df

# %%
df.dropna(axis='columns', how='all')

# %%
df.dropna(axis='rows', thresh=3)

# %%
data = pd.Series([1, np.nan, 2, None, 3], index=list('abcde'), dtype='Int32')
data

# %%
data.fillna(0)

# %%
# forward fill
data.ffill()

# %%
# back fill
data.bfill()

# %%
df

# %%
df.ffill(axis=1)
