"""Run steps on a pool of threads in this process.

Threads share the kernel's objects (no pickling, no copies) and cannot be
killed: a cancelled step is abandoned, it goes on to its end in the
background and its result is dropped.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ..worker import Outcome, Task, execute_all
from .base import Report


def _run(tasks: list[Task], report: Report) -> list[Outcome]:
    return execute_all(tasks, f"thread {threading.current_thread().name}", report)


class ThreadBackend:
    name = "thread"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="nbpar")

    def submit(self, tasks: list[Task], report: Report) -> Future[list[Outcome]]:
        return self._pool.submit(_run, tasks, report)

    def warm_up(self) -> None:
        pass  # threads start in no time

    def stop(self) -> None:
        # Abandon the running threads; later submissions get fresh ones.
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="nbpar")

    def release(self) -> None:
        pass  # the thread pool serves one pipeline: nothing is held for a run

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
