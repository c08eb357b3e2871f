"""Where steps run. Every backend has the same small interface, so the
scheduler has one loop for all of them (see `base.Backend`).

- `inline`: in the calling thread, one step after another (for debugging);
- `thread`: a thread pool in the kernel (no pickling; a step cannot be killed);
- `process`: loky's reusable process pool, kept warm between runs.
"""

from __future__ import annotations

from .base import Backend, Report, WorkerCrash
from .inline import InlineBackend
from .process import ProcessBackend, kill_worker
from .thread import ThreadBackend

__all__ = ["Backend", "Report", "WorkerCrash", "kill_worker", "make_backend"]


def make_backend(name: str, workers: int) -> Backend:
    if name == "process":
        return ProcessBackend(workers)
    if name == "thread":
        return ThreadBackend(workers)
    if name == "inline":
        return InlineBackend()
    raise ValueError(f"unknown backend {name!r}: choose process, thread or inline")
