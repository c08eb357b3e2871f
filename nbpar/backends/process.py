"""Run steps in worker processes: loky's reusable executor, kept warm.

Tasks and outcomes cross as bytes that `worker.dump_task`/`dump_outcome`
made with cloudpickle, so pickling errors name the variable. The pool's
idle timeout is long, so a notebook's second `%parrun` finds its workers
warm. When a worker dies, loky fails every future in flight with
TerminatedWorkerError; we turn that into `WorkerCrash` and the scheduler
decides what to resubmit. Stopping kills the workers (a running task can
only be stopped that way); the next submission starts a fresh pool.
"""

from __future__ import annotations

from concurrent.futures import Future

import cloudpickle
import loky
from loky.process_executor import TerminatedWorkerError

from ..worker import Outcome, Task, dump_task, ignore_sigint, run_in_process
from .base import LogCallback, WorkerCrash

IDLE_TIMEOUT = 3600  # seconds an idle worker stays alive (loky's default: 10)


class ProcessBackend:
    name = "process"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._last: loky.ProcessPoolExecutor | None = None

    def _executor(self) -> loky.ProcessPoolExecutor:
        self._last = loky.get_reusable_executor(
            max_workers=self.workers, timeout=IDLE_TIMEOUT, initializer=ignore_sigint
        )
        return self._last

    def warm_up(self) -> None:
        """Start the workers now, so the first step does not wait for them."""
        ex = self._executor()
        for f in [ex.submit(int) for _ in range(self.workers)]:
            f.result()

    def submit(self, task: Task, on_log: LogCallback) -> Future[Outcome]:
        payload = dump_task(task)  # raises PicklingProblem naming the input
        inner = self._executor().submit(run_in_process, payload)
        outer: Future[Outcome] = Future()

        def relay(f: Future[bytes]) -> None:
            if f.cancelled():
                outer.cancel()
                return
            exc = f.exception()
            if isinstance(exc, TerminatedWorkerError):
                outer.set_exception(WorkerCrash(str(exc)))
            elif exc is not None:
                outer.set_exception(exc)
            else:
                try:
                    outer.set_result(cloudpickle.loads(f.result()))
                except Exception as e:  # an output whose class the kernel cannot load
                    outer.set_exception(e)

        inner.add_done_callback(relay)
        return outer

    def stop(self) -> None:
        if self._last is not None:
            self._last.shutdown(wait=False, kill_workers=True)

    def shutdown(self) -> None:
        if self._last is not None:
            self._last.shutdown(wait=True, kill_workers=True)
            self._last = None
