"""Run steps on a pool of threads in this process.

Threads share the kernel's objects (no pickling, no copies) and cannot be
killed: a cancelled step is abandoned, it goes on to its end in the
background and its result is dropped. The processes it started (those of
its thread that were not there before it, and what they started) are
killed when it is abandoned, and those it starts after, when it ends.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from ..contract import BackendRun, Outcome, Report, Task
from ..worker import execute_all, stop_processes, thread_children


@dataclass
class _Unit:
    """A submission on a thread: the thread (a native id, once it runs), the
    processes that thread had started before, and whether it was abandoned."""

    thread: int | None = None
    before: set[int] = field(default_factory=set)
    done: bool = False
    abandoned: bool = False


class ThreadBackend:
    name = "thread"
    worker_prefix = "thread "
    inline = False
    isolated = False
    shared_fate = False
    grace = 0.0  # a thread has no alarm: abandoned at its deadline
    late = (
        "a thread cannot be stopped, and C code that holds the GIL (a long call into C) keeps the kernel "
        "from acting on the timeout until it returns"
    )

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="nbpar")
        self._units: dict[Future[list[Outcome]], _Unit] = {}  # submissions not done
        self._lock = threading.Lock()  # for the units' fields, set by their threads and by abandon

    def open_run(self, report: Report) -> BackendRun:
        return BackendRun(report)

    def submit(self, tasks: list[Task], run: BackendRun) -> Future[list[Outcome]]:
        unit = _Unit()
        future = self._pool.submit(self._run, tasks, run.report, unit)
        self._units[future] = unit
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[list[Outcome]]) -> None:
        self._units.pop(future, None)

    def _run(self, tasks: list[Task], report: Report, unit: _Unit) -> list[Outcome]:
        with self._lock:
            unit.thread, unit.before = threading.get_native_id(), thread_children()
        try:
            return execute_all(tasks, f"thread {threading.current_thread().name}", report)
        finally:
            with self._lock:
                unit.done = True
                if unit.abandoned:  # what it started after it was abandoned
                    stop_processes(thread_children() - unit.before)

    def stop_worker(self, worker: str) -> bool:
        return False  # a thread cannot be stopped: the loop abandons its unit

    def abandon(self, future: Future[list[Outcome]]) -> None:
        """The loop gives up on this submission (its timeout): kill the
        processes its steps started; it runs on, its result is dropped."""
        unit = self._units.get(future)
        if unit is None:
            return
        with self._lock:
            unit.abandoned = True
            if unit.thread is not None and not unit.done:
                stop_processes(thread_children(unit.thread) - unit.before)

    def warm_up(self) -> None:
        pass  # threads start in no time

    def stop(self, run: BackendRun) -> None:
        # Abandon the running threads; later submissions get fresh ones.
        self._pool.shutdown(wait=False, cancel_futures=True)
        for future in list(self._units):
            self.abandon(future)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="nbpar")

    def close_run(self, run: BackendRun) -> None:
        run.closed = True  # the thread pool serves one pipeline: nothing is held for a run

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
