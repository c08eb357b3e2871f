"""The work of bench.py's workloads: plain module-level functions.

Every tool runs these same functions, and every tool's workers import them
from here (bench.py puts this folder on PYTHONPATH before any pool starts),
so cloudpickle, pickle and dask all send them by reference. Only the
standard library is imported at module level; NumPy is imported by the
functions that use it.
"""

from __future__ import annotations

from typing import Any

CHUNK = 1 << 20  # array reductions go through the array in chunks of 8 MB: no array-sized temporaries


def spin(seed: int, loops: int) -> int:
    """`loops` steps of a linear congruential generator: pure-Python CPU, deterministic."""
    x = seed
    for _ in range(loops):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def crunch(item: tuple[int, int]) -> int:
    """One slice's item: (seed, loops) -> spin(seed, loops)."""
    seed, loops = item
    return spin(seed, loops)


def narrow(loops: int, *parts: int) -> int:
    """A step that reads several earlier results and does `loops` of CPU work on them."""
    return spin(sum(parts) % 997 + 1, loops)


def double(i: int) -> int:
    return i * 2


def link(previous: int, k: int) -> int:
    """One step of the chain: depends on the previous step's value (and on the order)."""
    return (previous * 31 + k) % 1_000_003


def join_sum(*values: Any) -> Any:
    """The join of every workload: the sum of its inputs."""
    return sum(values)


def join_slices(*slices: dict[str, int]) -> int:
    """kedro-partitioned's join: the sum of the values of the slices' dicts."""
    return sum(v for s in slices for v in s.values())


def make_array(n: int) -> Any:
    """n float64 values in [0, 1): 8 n bytes (25,000,000 values: 200 MB)."""
    import numpy as np

    return np.random.default_rng(0).random(n)


def _reduce(a: Any, f: Any) -> float:
    return float(sum(f(a[i : i + CHUNK]).sum() for i in range(0, len(a), CHUNK)))


def sum_plain(a: Any) -> float:
    return _reduce(a, lambda c: c)


def sum_square(a: Any) -> float:
    return _reduce(a, lambda c: c * c)


def sum_sqrt(a: Any) -> float:
    import numpy as np

    return _reduce(a, np.sqrt)


def sum_exp(a: Any) -> float:
    import numpy as np

    return _reduce(a, np.exp)


REDUCTIONS = ["sum_plain", "sum_square", "sum_sqrt", "sum_exp"]


def make_frame(n: int) -> Any:
    """A pandas frame of n rows as a notebook has them without pyarrow: numeric
    columns, a text column of Python `str` objects (dtype object, ~n/25 distinct
    customers, each row its own object as when read from a file), a categorical
    and a datetime column."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    customers = rng.integers(0, max(1, n // 25), n)
    return pd.DataFrame(
        {
            "amount": rng.random(n),
            "count": rng.integers(0, 100, n),
            "customer": [f"cust-{k:06d}" for k in customers.tolist()],
            "segment": pd.Categorical.from_codes(rng.integers(0, 8, n), [f"seg-{k}" for k in range(8)]),
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s"),
        }
    )


def frame_by_customer(df: Any) -> float:
    return float(df.groupby("customer")["amount"].mean().sum())


def frame_by_segment(df: Any) -> float:
    return float(df.groupby("segment", observed=True)["count"].mean().sum())


def frame_by_month(df: Any) -> float:
    return float(df.groupby(df["when"].dt.month)["amount"].max().sum())


def frame_by_weekday(df: Any) -> float:
    return float(df.groupby(["segment", df["when"].dt.dayofweek], observed=True)["amount"].std().sum())


FRAME_GROUPS = ["frame_by_customer", "frame_by_segment", "frame_by_month", "frame_by_weekday"]


def identity(x: Any) -> Any:
    """What kedro-partitioned hands a slice: a partition's loader (here it returns the item itself)."""
    return x


def timed_spin(loops: int) -> float:
    import time

    t0 = time.perf_counter()
    spin(1, loops)
    return time.perf_counter() - t0
