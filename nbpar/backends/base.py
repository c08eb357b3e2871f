"""The interface between the scheduler and a backend."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Protocol

from ..worker import Outcome, Report, Task

__all__ = ["Backend", "Report", "WorkerCrash"]


class WorkerCrash(Exception):
    """A worker process died while running steps (segfault, out of memory,
    os._exit). Raised through the futures of every step in flight; its
    message says how the worker ended and what that usually means."""

    def __init__(self, message: str, last_words: str = "") -> None:
        super().__init__(message)
        self.last_words = last_words  # what faulthandler wrote as the worker died, if anything


class Backend(Protocol):
    name: str
    workers: int

    def submit(self, tasks: list[Task], report: Report) -> Future[list[Outcome]]:
        """Start `tasks`, to run one after another in one worker (see
        worker.execute_all); the future resolves to their Outcomes. A failing
        step is an Outcome with `error`, never an exception; the future raises
        only for WorkerCrash or an error of nbpar itself."""
        ...

    def warm_up(self) -> None:
        """Start the workers now, so the first step does not wait for them."""
        ...

    def stop(self) -> None:
        """Stop every task in flight now (a cancelled run): kill or abandon."""
        ...

    def release(self) -> None:
        """The run that used this backend is over: let go of what it held
        for the run (a process pool: see process.py)."""
        ...

    def shutdown(self) -> None:
        """Release the workers (extension unloaded, interpreter exit)."""
        ...
