"""Run each step in the calling thread, at submission: one after another."""

from __future__ import annotations

from concurrent.futures import Future

from ..contract import BackendRun, Outcome, Report, Task
from ..worker import execute_all, stop_processes, thread_children


class InlineBackend:
    name = "inline"
    workers = 1
    worker_prefix = "kernel"
    inline = True  # the loop's thread runs the units, inside submit
    isolated = False
    shared_fate = False
    grace = 0.0
    late = (
        "an inline step is stopped by an alarm between Python lines, which C code that holds the GIL does "
        "not reach, and in a --background run it has no alarm"
    )

    def __init__(self, workers: int = 1) -> None:
        pass  # one worker: the calling thread

    def open_run(self, report: Report) -> BackendRun:
        return BackendRun(report)

    def submit(self, tasks: list[Task], run: BackendRun) -> Future[list[Outcome]]:
        """Run `tasks` now. A step stopped by Ctrl-C takes the processes it
        started with it (those its timeout stops: see worker.execute); the
        thread is the kernel's, which started others before: those stay."""
        future: Future[list[Outcome]] = Future()
        before = thread_children()
        try:
            future.set_result(execute_all(tasks, "kernel", run.report))
        except BaseException:
            stop_processes(thread_children() - before)
            raise
        return future

    def stop_worker(self, worker: str) -> bool:
        return False  # the kernel itself

    def abandon(self, future: Future[list[Outcome]]) -> None:
        pass  # an inline unit is done when its submit returns

    def warm_up(self) -> None:
        pass  # nothing to start

    def stop(self, run: BackendRun) -> None:
        pass  # nothing runs between submissions

    def close_run(self, run: BackendRun) -> None:
        run.closed = True  # nothing is held for a run

    def shutdown(self) -> None:
        pass
