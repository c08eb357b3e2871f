"""`nbpar.pmap`: a parallel map for ordinary cells, on the steps' warm pool.

It is a one-step pipeline fanned out over the items, so it shares the
workers, the slicing, the pickling checks and the error reports of `%parrun`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .graph import BackendName
from .options import default_workers
from .pipeline import Pipeline

T = TypeVar("T")
R = TypeVar("R")

SLICES_PER_WORKER = 4  # more slices than workers, so idle workers take the rest


def pmap(
    func: Callable[[T], R],
    items: Iterable[T],
    workers: int | None = None,
    backend: BackendName = "process",
    slices: int | None = None,
) -> list[R]:
    """`[func(x) for x in items]`, computed in parallel; results in input order.

    A failure raises `nbpar.RunError` naming the slice (its index and first
    and last item) with the traceback of `func`.
    """
    values = list(items)
    n = workers or default_workers()
    pipeline = Pipeline({"func": func, "items": values})
    pipeline.add_step(
        "pmap",
        "results = [func(item) for item in items]",
        over="items",
        slices=slices or max(1, min(len(values), n * SLICES_PER_WORKER)),
    )
    pipeline.run(workers=n, backend=backend)
    results: Any = pipeline.namespace["results"]
    return list(results)
