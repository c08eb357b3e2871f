# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/03.10-Working-With-Strings.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.
# Edit: code cell 17 left out: reads a data file the corpus does not hold
# Edit: code cell 18 left out: reads a data file the corpus does not hold
# Edit: code cell 19 left out: reads a data file the corpus does not hold
# Edit: code cell 20 left out: reads a data file the corpus does not hold
# Edit: code cell 21 left out: reads a data file the corpus does not hold
# Edit: code cell 22 left out: reads a data file the corpus does not hold
# Edit: code cell 23 left out: reads a data file the corpus does not hold
# Edit: code cell 24 left out: reads a data file the corpus does not hold
# Edit: code cell 25 left out: reads a data file the corpus does not hold
# Edit: code cell 26 left out: reads a data file the corpus does not hold
# Edit: code cell 27 left out: reads a data file the corpus does not hold

# %%
import numpy as np
x = np.array([2, 3, 5, 7, 11, 13])
x * 2

# %%
data = ['peter', 'Paul', 'MARY', 'gUIDO']
[s.capitalize() for s in data]

# %%
data = ['peter', 'Paul', None, 'MARY', 'gUIDO']
[s if s is None else s.capitalize() for s in data]

# %%
import pandas as pd
names = pd.Series(data)
names.str.capitalize()

# %%
monte = pd.Series(['Graham Chapman', 'John Cleese', 'Terry Gilliam',
                   'Eric Idle', 'Terry Jones', 'Michael Palin'])

# %%
monte.str.lower()

# %%
monte.str.len()

# %%
monte.str.startswith('T')

# %%
monte.str.split()

# %%
monte.str.extract('([A-Za-z]+)', expand=False)

# %%
monte.str.findall(r'^[^AEIOU].*[^aeiou]$')

# %%
monte.str[0:3]

# %%
monte.str.split().str[-1]

# %%
full_monte = pd.DataFrame({'name': monte,
                           'info': ['B|C|D', 'B|D', 'A|C',
                                    'B|D', 'B|C', 'B|C|D']})
full_monte

# %%
full_monte['info'].str.get_dummies('|')

# %%
# repo = "https://raw.githubusercontent.com/jakevdp/open-recipe-data/master"
# !cd data && curl -O {repo}/recipeitems.json.gz
# !gunzip data/recipeitems.json.gz
