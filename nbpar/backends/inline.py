"""Run each step in the calling thread, at submission: one after another."""

from __future__ import annotations

from concurrent.futures import Future

from ..worker import Outcome, Task, execute_all
from .base import Report


class InlineBackend:
    name = "inline"
    workers = 1

    def submit(self, tasks: list[Task], report: Report) -> Future[list[Outcome]]:
        future: Future[list[Outcome]] = Future()
        future.set_result(execute_all(tasks, "kernel", report))
        return future

    def warm_up(self) -> None:
        pass  # threads start in no time

    def stop(self) -> None:
        pass  # nothing runs between submissions

    def release(self) -> None:
        pass  # nothing is held for a run

    def shutdown(self) -> None:
        pass
