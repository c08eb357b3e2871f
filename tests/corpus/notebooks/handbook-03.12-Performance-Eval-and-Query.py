# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/03.12-Performance-Eval-and-Query.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.
# Edit: code cell 1: %timeit left out
# Edit: code cell 2: %timeit left out
# Edit: code cell 5 left out: needs numexpr (not installed)
# Edit: code cell 7: %timeit left out
# Edit: code cell 8: %timeit left out

# %%
import numpy as np
rng = np.random.default_rng(42)
x = rng.random(1000000)
y = rng.random(1000000)

# %%
mask = (x > 0.5) & (y < 0.5)

# %%
tmp1 = (x > 0.5)
tmp2 = (y < 0.5)
mask = tmp1 & tmp2

# %%
import pandas as pd
nrows, ncols = 100000, 100
df1, df2, df3, df4 = (pd.DataFrame(rng.random((nrows, ncols)))
                      for i in range(4))

# %%
np.allclose(df1 + df2 + df3 + df4,
            pd.eval('df1 + df2 + df3 + df4'))

# %%
df1, df2, df3, df4, df5 = (pd.DataFrame(rng.integers(0, 1000, (100, 3)))
                           for i in range(5))

# %%
result1 = -df1 * df2 / (df3 + df4) - df5
result2 = pd.eval('-df1 * df2 / (df3 + df4) - df5')
np.allclose(result1, result2)

# %%
result1 = (df1 < df2) & (df2 <= df3) & (df3 != df4)
result2 = pd.eval('df1 < df2 <= df3 != df4')
np.allclose(result1, result2)

# %%
result1 = (df1 < 0.5) & (df2 < 0.5) | (df3 < df4)
result2 = pd.eval('(df1 < 0.5) & (df2 < 0.5) | (df3 < df4)')
np.allclose(result1, result2)

# %%
result3 = pd.eval('(df1 < 0.5) and (df2 < 0.5) or (df3 < df4)')
np.allclose(result1, result3)

# %%
result1 = df2.T[0] + df3.iloc[1]
result2 = pd.eval('df2.T[0] + df3.iloc[1]')
np.allclose(result1, result2)

# %%
df = pd.DataFrame(rng.random((1000, 3)), columns=['A', 'B', 'C'])
df.head()

# %%
result1 = (df['A'] + df['B']) / (df['C'] - 1)
result2 = pd.eval("(df.A + df.B) / (df.C - 1)")
np.allclose(result1, result2)

# %%
result3 = df.eval('(A + B) / (C - 1)')
np.allclose(result1, result3)

# %%
df.head()

# %%
df.eval('D = (A + B) / C', inplace=True)
df.head()

# %%
df.eval('D = (A - B) / C', inplace=True)
df.head()

# %%
column_mean = df.mean(1)
result1 = df['A'] + column_mean
result2 = df.eval('A + @column_mean')
np.allclose(result1, result2)

# %%
result1 = df[(df.A < 0.5) & (df.B < 0.5)]
result2 = pd.eval('df[(df.A < 0.5) & (df.B < 0.5)]')
np.allclose(result1, result2)

# %%
result2 = df.query('A < 0.5 and B < 0.5')
np.allclose(result1, result2)

# %%
Cmean = df['C'].mean()
result1 = df[(df.A < Cmean) & (df.B < Cmean)]
result2 = df.query('A < @Cmean and B < @Cmean')
np.allclose(result1, result2)

# %%
x = df[(df.A < 0.5) & (df.B < 0.5)]

# %%
tmp1 = df.A < 0.5
tmp2 = df.B < 0.5
tmp3 = tmp1 & tmp2
x = df[tmp3]

# %%
df.values.nbytes
