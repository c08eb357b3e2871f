"""Run each step in the calling thread, at submission: one after another."""

from __future__ import annotations

from concurrent.futures import Future
from functools import partial

from ..worker import Outcome, Task, execute
from .base import LogCallback


class InlineBackend:
    name = "inline"
    workers = 1

    def submit(self, task: Task, on_log: LogCallback) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        future.set_result(execute(task, "kernel", partial(on_log, task.step)))
        return future

    def warm_up(self) -> None:
        pass  # threads start in no time

    def stop(self) -> None:
        pass  # nothing runs between submissions

    def shutdown(self) -> None:
        pass
