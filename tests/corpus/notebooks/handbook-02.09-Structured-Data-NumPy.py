# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/02.09-Structured-Data-NumPy.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.
# Edit: code cell 17: %timeit left out

# %%
import numpy as np

# %%
name = ['Alice', 'Bob', 'Cathy', 'Doug']
age = [25, 45, 37, 19]
weight = [55.0, 85.5, 68.0, 61.5]

# %%
x = np.zeros(4, dtype=int)

# %%
# Use a compound data type for structured arrays
data = np.zeros(4, dtype={'names':('name', 'age', 'weight'),
                          'formats':('U10', 'i4', 'f8')})
print(data.dtype)

# %%
data['name'] = name
data['age'] = age
data['weight'] = weight
print(data)

# %%
# Get all names
data['name']

# %%
# Get first row of data
data[0]

# %%
# Get the name from the last row
data[-1]['name']

# %%
# Get names where age is under 30
data[data['age'] < 30]['name']

# %%
np.dtype({'names':('name', 'age', 'weight'),
          'formats':('U10', 'i4', 'f8')})

# %%
np.dtype({'names':('name', 'age', 'weight'),
          'formats':((np.str_, 10), int, np.float32)})

# %%
np.dtype([('name', 'S10'), ('age', 'i4'), ('weight', 'f8')])

# %%
np.dtype('S10,i4,f8')

# %%
tp = np.dtype([('id', 'i8'), ('mat', 'f8', (3, 3))])
X = np.zeros(1, dtype=tp)
print(X[0])
print(X['mat'][0])

# %%
data['age']

# %%
data_rec = data.view(np.recarray)
data_rec.age
