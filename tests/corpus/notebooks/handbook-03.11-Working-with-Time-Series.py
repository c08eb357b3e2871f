# Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,
# https://github.com/jakevdp/PythonDataScienceHandbook, notebooks/03.11-Working-with-Time-Series.ipynb at commit d66231454ef753818dc9213c9b5942e067266966.
# License: MIT (code only: see tests/corpus/LICENSES.md); the book's text (CC BY-NC-ND) is left out.
# Edit: code cell 20: frequency 'H' is 'h', 'T' is 'min'
# Edit: code cell 22: frequency 'H' is 'h', 'T' is 'min'
# Edit: code cell 23: frequency 'H' is 'h', 'T' is 'min'
# Edit: code cell 25 left out: reads a data file the corpus does not hold
# Edit: code cell 26 left out: reads a data file the corpus does not hold
# Edit: code cell 27 left out: reads a data file the corpus does not hold
# Edit: code cell 28 left out: reads a data file the corpus does not hold
# Edit: code cell 29 left out: reads a data file the corpus does not hold
# Edit: code cell 30 left out: reads a data file the corpus does not hold
# Edit: code cell 31 left out: reads a data file the corpus does not hold
# Edit: code cell 32 left out: reads a data file the corpus does not hold
# Edit: code cell 33 left out: reads a data file the corpus does not hold
# Edit: code cell 34 left out: reads a data file the corpus does not hold
# Edit: code cell 35 left out: reads a data file the corpus does not hold
# Edit: code cell 36 left out: reads a data file the corpus does not hold
# Edit: code cell 37 left out: reads a data file the corpus does not hold
# Edit: code cell 38 left out: reads a data file the corpus does not hold
# Edit: code cell 39 left out: reads a data file the corpus does not hold
# Edit: code cell 40 left out: reads a data file the corpus does not hold
# Edit: code cell 41 left out: reads a data file the corpus does not hold
# Edit: code cell 42 left out: reads a data file the corpus does not hold
# Edit: code cell 43 left out: reads a data file the corpus does not hold

# %%
from datetime import datetime
datetime(year=2021, month=7, day=4)

# %%
from dateutil import parser
date = parser.parse("4th of July, 2021")
date

# %%
date.strftime('%A')

# %%
import numpy as np
date = np.array('2021-07-04', dtype=np.datetime64)
date

# %%
date + np.arange(12)

# %%
np.datetime64('2021-07-04')

# %%
np.datetime64('2021-07-04 12:00')

# %%
np.datetime64('2021-07-04 12:59:59.50', 'ns')

# %%
import pandas as pd
date = pd.to_datetime("4th of July, 2021")
date

# %%
date.strftime('%A')

# %%
date + pd.to_timedelta(np.arange(12), 'D')

# %%
index = pd.DatetimeIndex(['2020-07-04', '2020-08-04',
                          '2021-07-04', '2021-08-04'])
data = pd.Series([0, 1, 2, 3], index=index)
data

# %%
data['2020-07-04':'2021-07-04']

# %%
data['2021']

# %%
dates = pd.to_datetime([datetime(2021, 7, 3), '4th of July, 2021',
                       '2021-Jul-6', '07-07-2021', '20210708'])
dates

# %%
dates.to_period('D')

# %%
dates - dates[0]

# %%
pd.date_range('2015-07-03', '2015-07-10')

# %%
pd.date_range('2015-07-03', periods=8)

# %%
pd.date_range('2015-07-03', periods=8, freq='h')

# %%
pd.period_range('2015-07', periods=8, freq='M')

# %%
pd.timedelta_range(0, periods=6, freq='h')

# %%
pd.timedelta_range(0, periods=6, freq="2h30min")

# %%
from pandas.tseries.offsets import BDay
pd.date_range('2015-07-01', periods=6, freq=BDay())
