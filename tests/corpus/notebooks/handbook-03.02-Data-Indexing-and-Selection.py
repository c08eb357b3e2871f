# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/03.02-Data-Indexing-and-Selection.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.

# %%
import pandas as pd
data = pd.Series([0.25, 0.5, 0.75, 1.0],
                 index=['a', 'b', 'c', 'd'])
data

# %%
data['b']

# %%
'a' in data

# %%
data.keys()

# %%
list(data.items())

# %%
data['e'] = 1.25
data

# %%
# slicing by explicit index
data['a':'c']

# %%
# slicing by implicit integer index
data[0:2]

# %%
# masking
data[(data > 0.3) & (data < 0.8)]

# %%
# fancy indexing
data[['a', 'e']]

# %%
data = pd.Series(['a', 'b', 'c'], index=[1, 3, 5])
data

# %%
# explicit index when indexing
data[1]

# %%
# implicit index when slicing
data[1:3]

# %%
data.loc[1]

# %%
data.loc[1:3]

# %%
data.iloc[1]

# %%
data.iloc[1:3]

# %%
area = pd.Series({'California': 423967, 'Texas': 695662,
                  'Florida': 170312, 'New York': 141297,
                  'Pennsylvania': 119280})
pop = pd.Series({'California': 39538223, 'Texas': 29145505,
                 'Florida': 21538187, 'New York': 20201249,
                 'Pennsylvania': 13002700})
data = pd.DataFrame({'area':area, 'pop':pop})
data

# %%
data['area']

# %%
data.area

# %%
data.pop is data["pop"]

# %%
data['density'] = data['pop'] / data['area']
data

# %%
data.values

# %%
data.T

# %%
data.values[0]

# %%
data['area']

# %%
data.iloc[:3, :2]

# %%
data.loc[:'Florida', :'pop']

# %%
data.loc[data.density > 120, ['pop', 'density']]

# %%
data.iloc[0, 2] = 90
data

# %%
data['Florida':'New York']

# %%
data[1:3]

# %%
data[data.density > 120]
