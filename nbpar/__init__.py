"""nbpar: run a notebook's independent cells in parallel.

In a notebook: ``%load_ext nbpar``, mark cells with ``%%step NAME``, run
them with ``%parrun``. In a script: `Pipeline`. Plugins: `subscribe` to the
events of every run (`nbpar.events`).

The public names are imported when first used: a worker process imports
`nbpar.worker` only, and starts faster without the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .errors import PlanError, RunError
    from .events import (
        Event,
        RunFinished,
        RunStarted,
        SliceFinished,
        SliceStarted,
        StepFinished,
        StepLog,
        StepStarted,
        Subscription,
        subscribe,
    )
    from .graph import GraphError
    from .options import RunOptions, run_defaults
    from .partition import MergeError, SliceError
    from .partitioned import Partition, partitions
    from .pipeline import Pipeline, last_run
    from .pmap import pmap
    from .records import RunResult, SliceRecord, StepRecord

_HOMES = {
    "PlanError": "errors",
    "RunError": "errors",
    "Event": "events",
    "RunFinished": "events",
    "RunStarted": "events",
    "SliceFinished": "events",
    "SliceStarted": "events",
    "StepFinished": "events",
    "StepLog": "events",
    "StepStarted": "events",
    "Subscription": "events",
    "subscribe": "events",
    "GraphError": "graph",
    "RunOptions": "options",
    "run_defaults": "options",
    "MergeError": "partition",
    "SliceError": "partition",
    "Partition": "partitioned",
    "partitions": "partitioned",
    "Pipeline": "pipeline",
    "last_run": "pipeline",
    "pmap": "pmap",
    "RunResult": "records",
    "SliceRecord": "records",
    "StepRecord": "records",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'nbpar' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Event",
    "GraphError",
    "MergeError",
    "Partition",
    "Pipeline",
    "PlanError",
    "RunError",
    "RunFinished",
    "RunOptions",
    "RunResult",
    "RunStarted",
    "SliceError",
    "SliceFinished",
    "SliceRecord",
    "SliceStarted",
    "StepFinished",
    "StepLog",
    "StepRecord",
    "StepStarted",
    "Subscription",
    "last_run",
    "partitions",
    "pmap",
    "run_defaults",
    "subscribe",
]


def load_ipython_extension(ip: InteractiveShell) -> None:
    from .extension import load

    load(ip)


def unload_ipython_extension(ip: InteractiveShell) -> None:
    from .extension import unload

    unload(ip)
