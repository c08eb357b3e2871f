"""Where the time goes when process steps read a pandas frame with a text column.

    PYTHONPATH=. .venv/bin/python benchmarks/frame_readers.py [--rows N] [--readers K] [--runs R]

A `nbpar.Pipeline` whose K (4) no-op steps (`r_k = len(df)`) read `df`, a
frame of N (1,000,000) rows with an int column and a column of Python `str`
(pandas' default text dtype without pyarrow), on the process backend with 2
workers, `force=True`, R (5) warm runs after one to start the pool. Printed
per run: the wall time, and the kernel's time in the check that the inputs
can be pickled (`pickle_problem`), in pickling the tasks (`dump_tasks`) and
in fingerprinting the versions (`fingerprint`), measured by wrapping those
functions; then the medians. Two variants: `df` from the notebook, and `df`
made by a step (`df = make()`) and read by the K steps.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

import nbpar
import nbpar.backends.process as process
from nbpar import fingerprint, pipeline

SPENT: dict[str, float] = {}


def wrap(module: Any, name: str, label: str) -> None:
    inner = getattr(module, name)

    @functools.wraps(inner)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            SPENT[label] = SPENT.get(label, 0.0) + time.perf_counter() - start

    setattr(module, name, timed)


def frame(rows: int) -> Any:
    return pd.DataFrame({"x": np.arange(rows), "s": [f"s{i}" for i in range(rows)]})


def measure(made: bool, rows: int, readers: int, runs: int) -> None:
    namespace: dict[str, Any] = {"make": functools.partial(frame, rows)} if made else {"df": frame(rows)}
    p = nbpar.Pipeline(namespace=namespace)
    if made:
        p.add_step(name="make", source="df = make()")
    for k in range(readers):
        p.add_step(name=f"r{k}", source=f"r{k} = len(df)")
    p.run(workers=2, backend="process", force=True)
    walls: list[float] = []
    kernel: dict[str, list[float]] = {}
    print(f"df {'made by a step' if made else 'from the notebook'}, {rows:,} rows, {readers} readers:")
    for _ in range(runs):
        SPENT.clear()
        start = time.perf_counter()
        p.run(workers=2, backend="process", force=True)
        walls.append(time.perf_counter() - start)
        for label in ("check", "dump_tasks", "fingerprint"):
            kernel.setdefault(label, []).append(SPENT.get(label, 0.0))
        print(f"  wall {walls[-1]:.3f} s; kernel: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in kernel.items()))
    print(
        f"  median wall {statistics.median(walls):.3f} s; kernel: "
        + ", ".join(f"{k} {statistics.median(v):.3f} s" for k, v in kernel.items())
    )
    p.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    wrap(pipeline, "pickle_problem", "check")
    wrap(process, "dump_tasks", "dump_tasks")
    wrap(fingerprint, "fingerprint", "fingerprint")
    for made in (False, True):
        measure(made, args.rows, args.readers, args.runs)


if __name__ == "__main__":
    main()
