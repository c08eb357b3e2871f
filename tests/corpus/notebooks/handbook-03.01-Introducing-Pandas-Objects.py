# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/03.01-Introducing-Pandas-Objects.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.
# Edit: code cell 34 left out: raises, as the book shows

# %%
import numpy as np
import pandas as pd

# %%
data = pd.Series([0.25, 0.5, 0.75, 1.0])
data

# %%
data.values

# %%
data.index

# %%
data[1]

# %%
data[1:3]

# %%
data = pd.Series([0.25, 0.5, 0.75, 1.0],
                 index=['a', 'b', 'c', 'd'])
data

# %%
data['b']

# %%
data = pd.Series([0.25, 0.5, 0.75, 1.0],
                 index=[2, 5, 3, 7])
data

# %%
data[5]

# %%
population_dict = {'California': 39538223, 'Texas': 29145505,
                   'Florida': 21538187, 'New York': 20201249,
                   'Pennsylvania': 13002700}
population = pd.Series(population_dict)
population

# %%
population['California']

# %%
population['California':'Florida']

# %%
pd.Series([2, 4, 6])

# %%
pd.Series(5, index=[100, 200, 300])

# %%
pd.Series({2:'a', 1:'b', 3:'c'})

# %%
pd.Series({2:'a', 1:'b', 3:'c'}, index=[1, 2])

# %%
area_dict = {'California': 423967, 'Texas': 695662, 'Florida': 170312, 
             'New York': 141297, 'Pennsylvania': 119280}
area = pd.Series(area_dict)
area

# %%
states = pd.DataFrame({'population': population,
                       'area': area})
states

# %%
states.index

# %%
states.columns

# %%
states['area']

# %%
pd.DataFrame(population, columns=['population'])

# %%
data = [{'a': i, 'b': 2 * i}
        for i in range(3)]
pd.DataFrame(data)

# %%
pd.DataFrame([{'a': 1, 'b': 2}, {'b': 3, 'c': 4}])

# %%
pd.DataFrame({'population': population,
              'area': area})

# %%
pd.DataFrame(np.random.rand(3, 2),
             columns=['foo', 'bar'],
             index=['a', 'b', 'c'])

# %%
A = np.zeros(3, dtype=[('A', 'i8'), ('B', 'f8')])
A

# %%
pd.DataFrame(A)

# %%
ind = pd.Index([2, 3, 5, 7, 11])
ind

# %%
ind[1]

# %%
ind[::2]

# %%
print(ind.size, ind.shape, ind.ndim, ind.dtype)

# %%
indA = pd.Index([1, 3, 5, 7, 9])
indB = pd.Index([2, 3, 5, 7, 11])

# %%
indA.intersection(indB)

# %%
indA.union(indB)

# %%
indA.symmetric_difference(indB)
