"""Where steps run. Every backend keeps one contract (`nbpar.contract.Backend`),
so the scheduler has one loop for all of them and never asks which one it has.

- `inline`: in the calling thread, one step after another (for debugging);
- `thread`: a thread pool in the kernel (no pickling; a step cannot be killed);
- `process`: loky's reusable process pool, kept warm between runs.

A backend is one module here and one line in `_MODULES`; its module is
imported when a run first asks for it (the process backend loads loky and
cloudpickle: a run on threads never does). tests/test_backend_contract.py
is what every backend must pass.
"""

from __future__ import annotations

import importlib

from ..contract import Backend, BackendRun, Report, WorkerCrash

__all__ = ["Backend", "BackendRun", "Report", "WorkerCrash", "make_backend"]

_MODULES = {  # backend name -> (its module here, its class)
    "process": ("process", "ProcessBackend"),
    "thread": ("thread", "ThreadBackend"),
    "inline": ("inline", "InlineBackend"),
}


def make_backend(name: str, workers: int) -> Backend:
    """A new backend `name` with `workers` workers (its module imported now)."""
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}: choose {', '.join(_MODULES)}")
    module, cls = _MODULES[name]
    backend: Backend = getattr(importlib.import_module(f".{module}", __name__), cls)(workers)
    return backend
