"""nbpar: run a notebook's independent cells in parallel.

In a notebook: ``%load_ext nbpar``, mark cells with ``%%step NAME``, run
them with ``%parrun``. In a script: `Pipeline`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import RunError
from .graph import GraphError
from .partition import MergeError, Partition, SliceError, partitions
from .pipeline import Pipeline, PlanError, last_run
from .pmap import pmap
from .records import RunResult, SliceRecord, StepRecord

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "GraphError",
    "MergeError",
    "Partition",
    "Pipeline",
    "PlanError",
    "RunError",
    "RunResult",
    "SliceError",
    "SliceRecord",
    "StepRecord",
    "last_run",
    "partitions",
    "pmap",
]


def load_ipython_extension(ip: InteractiveShell) -> None:
    from .extension import load

    load(ip)


def unload_ipython_extension(ip: InteractiveShell) -> None:
    from .extension import unload

    unload(ip)
