"""Run steps in worker processes: one loky process pool, kept warm.

Tasks and outcomes cross as bytes that `worker.dump_tasks`/`dump_outcomes`
made with cloudpickle, so pickling errors name the variable. The pool's
idle timeout is long, so a notebook's second `%parrun` finds its workers
warm. The pool is this module's, shared by every pipeline and thread of the
process (loky's own `get_reusable_executor` keeps one pool per thread, and a
background run or the warm-up thread would start pools of their own).

When a worker dies, loky fails every future in flight with
TerminatedWorkerError; we turn that into `WorkerCrash` and the scheduler
decides what to resubmit; the broken pool is replaced at the next
submission. Stopping kills the workers (a running task can only be stopped
that way).
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import Future

import cloudpickle
import loky
from loky.process_executor import BrokenProcessPool, ShutdownExecutorError, TerminatedWorkerError

from ..channel import Message, kernel_channel
from ..worker import Outcome, Report, Task, dump_tasks, init_worker, run_in_process
from .base import WorkerCrash

IDLE_TIMEOUT = 3600  # seconds an idle worker stays alive (loky's default: 10)

_lock = threading.Lock()  # guards _pool and _pool_workers
_pool: loky.ProcessPoolExecutor | None = None
_pool_workers = 0


def _get_pool(workers: int, fresh: bool = False, keep: bool = False) -> loky.ProcessPoolExecutor:
    """The shared pool with `workers` processes, started if need be (with
    `keep`, a pool of another size is kept as it is)."""
    global _pool, _pool_workers
    with _lock:
        if _pool is not None and (fresh or (_pool_workers != workers and not keep)):
            _pool.shutdown(wait=False, kill_workers=True)
            _pool = None
        if _pool is None:
            _pool = loky.ProcessPoolExecutor(max_workers=workers, timeout=IDLE_TIMEOUT, initializer=init_worker)
            _pool_workers = workers
        return _pool


_routes: dict[str, weakref.WeakMethod[Report]] = {}  # run token -> the run's report method


def _route(report: Report) -> str:
    """The token under which workers' messages reach `report` (a bound
    method of the run: held weakly, so a finished run's late lines drop)."""
    token = str(id(getattr(report, "__self__", report)))
    if token not in _routes:
        for old in [t for t, ref in _routes.items() if ref() is None]:
            del _routes[old]
        _routes[token] = weakref.WeakMethod(report)  # type: ignore[arg-type]
        kernel_channel().sink = _dispatch
    return token


def _dispatch(message: Message) -> None:
    token, kind, step, index, payload = message
    route = _routes.get(token)
    report = route() if route is not None else None
    if report is not None:
        report(kind, step, index, payload)


def _drop_pool(wait: bool) -> None:
    """Kill the shared pool's workers; the next submission starts a new one."""
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=wait, kill_workers=True)
            _pool = None


class ProcessBackend:
    name = "process"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def warm_up(self) -> None:
        """Start the workers now, so the first step does not wait for them;
        a pool already there (maybe busy, maybe sized by a run) is left alone."""
        pool = _get_pool(self.workers, keep=True)
        for f in [pool.submit(int) for _ in range(self.workers)]:
            f.result()

    def submit(self, tasks: list[Task], report: Report) -> Future[list[Outcome]]:
        payload = dump_tasks(tasks)  # raises PicklingProblem naming the input
        channel = (kernel_channel().address, _route(report))
        try:
            inner = _get_pool(self.workers).submit(run_in_process, payload, channel)
        except (BrokenProcessPool, ShutdownExecutorError, RuntimeError):
            inner = _get_pool(self.workers, fresh=True).submit(run_in_process, payload, channel)
        outer: Future[list[Outcome]] = Future()

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
        _drop_pool(wait=False)

    def shutdown(self) -> None:
        _drop_pool(wait=True)
