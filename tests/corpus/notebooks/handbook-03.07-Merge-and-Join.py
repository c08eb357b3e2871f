# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/03.07-Merge-and-Join.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.
# Edit: code cell 20 left out: reads a data file the corpus does not hold
# Edit: code cell 21 left out: reads a data file the corpus does not hold
# Edit: code cell 22 left out: reads a data file the corpus does not hold
# Edit: code cell 23 left out: reads a data file the corpus does not hold
# Edit: code cell 24 left out: reads a data file the corpus does not hold
# Edit: code cell 25 left out: reads a data file the corpus does not hold
# Edit: code cell 26 left out: reads a data file the corpus does not hold
# Edit: code cell 27 left out: reads a data file the corpus does not hold
# Edit: code cell 28 left out: reads a data file the corpus does not hold
# Edit: code cell 29 left out: reads a data file the corpus does not hold
# Edit: code cell 30 left out: reads a data file the corpus does not hold
# Edit: code cell 31 left out: reads a data file the corpus does not hold
# Edit: code cell 32 left out: reads a data file the corpus does not hold
# Edit: code cell 33 left out: reads a data file the corpus does not hold

# %%
import pandas as pd
import numpy as np

class display(object):
    """Display HTML representation of multiple objects"""
    template = """<div style="float: left; padding: 10px;">
    <p style='font-family:"Courier New", Courier, monospace'>{0}</p>{1}
    </div>"""
    def __init__(self, *args):
        self.args = args
        
    def _repr_html_(self):
        return '\n'.join(self.template.format(a, eval(a)._repr_html_())
                         for a in self.args)
    
    def __repr__(self):
        return '\n\n'.join(a + '\n' + repr(eval(a))
                           for a in self.args)

# %%
df1 = pd.DataFrame({'employee': ['Bob', 'Jake', 'Lisa', 'Sue'],
                    'group': ['Accounting', 'Engineering',
                              'Engineering', 'HR']})
df2 = pd.DataFrame({'employee': ['Lisa', 'Bob', 'Jake', 'Sue'],
                    'hire_date': [2004, 2008, 2012, 2014]})
display('df1', 'df2')

# %%
df3 = pd.merge(df1, df2)
df3

# %%
df4 = pd.DataFrame({'group': ['Accounting', 'Engineering', 'HR'],
                    'supervisor': ['Carly', 'Guido', 'Steve']})
display('df3', 'df4', 'pd.merge(df3, df4)')

# %%
df5 = pd.DataFrame({'group': ['Accounting', 'Accounting',
                              'Engineering', 'Engineering', 'HR', 'HR'],
                    'skills': ['math', 'spreadsheets', 'software', 'math',
                               'spreadsheets', 'organization']})
display('df1', 'df5', "pd.merge(df1, df5)")

# %%
display('df1', 'df2', "pd.merge(df1, df2, on='employee')")

# %%
df3 = pd.DataFrame({'name': ['Bob', 'Jake', 'Lisa', 'Sue'],
                    'salary': [70000, 80000, 120000, 90000]})
display('df1', 'df3', 'pd.merge(df1, df3, left_on="employee", right_on="name")')

# %%
pd.merge(df1, df3, left_on="employee", right_on="name").drop('name', axis=1)

# %%
df1a = df1.set_index('employee')
df2a = df2.set_index('employee')
display('df1a', 'df2a')

# %%
display('df1a', 'df2a',
        "pd.merge(df1a, df2a, left_index=True, right_index=True)")

# %%
df1a.join(df2a)

# %%
display('df1a', 'df3', "pd.merge(df1a, df3, left_index=True, right_on='name')")

# %%
df6 = pd.DataFrame({'name': ['Peter', 'Paul', 'Mary'],
                    'food': ['fish', 'beans', 'bread']},
                   columns=['name', 'food'])
df7 = pd.DataFrame({'name': ['Mary', 'Joseph'],
                    'drink': ['wine', 'beer']},
                   columns=['name', 'drink'])
display('df6', 'df7', 'pd.merge(df6, df7)')

# %%
pd.merge(df6, df7, how='inner')

# %%
display('df6', 'df7', "pd.merge(df6, df7, how='outer')")

# %%
display('df6', 'df7', "pd.merge(df6, df7, how='left')")

# %%
df8 = pd.DataFrame({'name': ['Bob', 'Jake', 'Lisa', 'Sue'],
                    'rank': [1, 2, 3, 4]})
df9 = pd.DataFrame({'name': ['Bob', 'Jake', 'Lisa', 'Sue'],
                    'rank': [3, 1, 4, 2]})
display('df8', 'df9', 'pd.merge(df8, df9, on="name")')

# %%
pd.merge(df8, df9, on="name", suffixes=["_L", "_R"])

# %%
# Following are commands to download the data
# repo = "https://raw.githubusercontent.com/jakevdp/data-USstates/master"
# !cd data && curl -O {repo}/state-population.csv
# !cd data && curl -O {repo}/state-areas.csv
# !cd data && curl -O {repo}/state-abbrevs.csv
