"""Run steps in worker processes: one loky process pool, kept warm.

Tasks and outcomes cross as bytes that `worker.dump_tasks`/`dump_outcomes`
made with cloudpickle, so pickling errors name the variable. The pool's
idle timeout is long, so a notebook's second `%parrun` finds its workers
warm. The pool is this module's, shared by every pipeline and thread of the
process (loky's own `get_reusable_executor` keeps one pool per thread, and a
background run or the warm-up thread would start pools of their own).

When a worker dies, loky fails every future in flight with
TerminatedWorkerError; we turn that into a `WorkerCrash` that says how it
ended (exit code or signal, and what that usually means) with what Python's
faulthandler wrote as it died (each worker writes to a file of its own),
and the scheduler decides what to resubmit. The crash is logged (logger
"nbpar") when it happens, so in the run it happened in, and the broken pool
is replaced at the next submission, maybe in a later run. Stopping kills the workers (a running task can only be stopped
that way).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import logging
import os
import re
import signal
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import loky
from loky.process_executor import BrokenProcessPool, ShutdownExecutorError, TerminatedWorkerError

from .. import sharing
from ..channel import Message, kernel_channel
from ..worker import Outcome, Report, Task, dump_tasks, init_worker, run_in_process
from .base import WorkerCrash

IDLE_TIMEOUT = 3600  # seconds an idle worker stays alive (loky's default: 10)

log = logging.getLogger("nbpar")
_lock = threading.Lock()  # guards _pool, _pool_workers and _broken
_pool: loky.ProcessPoolExecutor | None = None
_pool_workers = 0
_broken = ""  # why the pool broke, until it is replaced


def _get_pool(
    workers: int, broken: loky.ProcessPoolExecutor | None = None, keep: bool = False
) -> loky.ProcessPoolExecutor:
    """The shared pool with `workers` processes, started if need be (with
    `keep`, a pool of another size is kept as it is). With `broken` (a pool
    that refused a task), that pool is replaced if it is still the shared
    one; if another thread replaced it meanwhile (a run resizing the pool
    the warm-up was filling), the replacement is kept."""
    global _pool, _pool_workers, _broken
    with _lock:
        fresh = broken is not None and _pool is broken
        if broken is not None and not fresh and _pool is not None:
            return _pool
        if _pool is not None and (fresh or (_pool_workers != workers and not keep)):
            _shut_down(_pool, wait=False)
            _pool = None
            if fresh:
                if not _broken:  # (a crash was said when it happened)
                    log.warning("nbpar: restarting the worker pool: it was broken")
                _broken = ""
        if _pool is None:
            _sweep_fault_files()
            _pool = loky.ProcessPoolExecutor(
                max_workers=workers, timeout=IDLE_TIMEOUT, initializer=init_worker, initargs=(_FAULTS, os.getpid())
            )
            # At interpreter exit, kill the workers instead of waiting for the
            # steps they run (a script or terminal IPython quitting mid-run).
            _pool._flags.kill_workers = True
            _pool_workers = workers
        return _pool


# -- how a worker died ------------------------------------------------------

_FAULTS = os.path.join(tempfile.gettempdir(), "nbpar-faults-{kernel}-{worker}.txt")  # what worker.init_worker opens


def _last_words() -> str:
    """What faulthandler wrote in this kernel's workers that have died; their
    files are removed."""
    words = []
    for path in glob.glob(_FAULTS.format(kernel=os.getpid(), worker="*")):
        worker = int(path.rsplit("-", 1)[1].removesuffix(".txt"))
        if sharing.alive(worker):
            continue
        with open(path) as f:
            words.append(_users_frames(f.read()))
        os.remove(path)
    return "\n".join(w for w in words if w)


def _users_frames(dump: str) -> str:
    """A faulthandler dump without the frames of nbpar, loky and Python's
    process machinery under the user's (most recent frames come first)."""
    kept = []
    for line in dump.strip().splitlines():
        if line.lstrip().startswith('File "') and not line.lstrip().startswith('File "<step '):
            if os.path.dirname(os.path.dirname(__file__)) in line:
                break  # nbpar's worker: the user's frames are above
        elif line.startswith("Extension modules:"):
            break
        kept.append(line)
    return "\n".join(kept).strip()


@atexit.register
def _remove_fault_files() -> None:
    _sweep_fault_files(mine=True)


def _sweep_fault_files(mine: bool = False) -> None:
    """Remove the fault files of workers that are gone (their kernel's or
    this kernel's), or, with `mine`, all of this kernel's."""
    for path in glob.glob(_FAULTS.format(kernel="*", worker="*")):
        kernel, worker = (int(part) for part in path.removesuffix(".txt").rsplit("-", 2)[1:])
        if (mine and kernel == os.getpid()) or not sharing.alive(kernel) or not sharing.alive(worker):
            try:
                os.remove(path)
            except OSError:
                pass


_CAUSES = {
    "SIGKILL": "it was killed (SIGKILL), most often by the operating system because the machine ran out of "
    "memory; use fewer --workers or smaller slices, or free memory",
    "SIGSEGV": "it crashed in native code (SIGSEGV, a segmentation fault), in a C extension the step called",
    "SIGBUS": "it crashed in native code (SIGBUS), often a memory-mapped file that changed or a full disk",
    "SIGABRT": "native code aborted it (SIGABRT), often a failed assertion in a C library",
    "SIGFPE": "it crashed in native code (SIGFPE, an arithmetic fault)",
    "SIGTERM": "it was terminated (SIGTERM) by something outside nbpar",
}


def explain_exit(loky_message: str) -> str:
    """How a worker ended, from loky's message ("... {EXIT(3)}", "{SIGKILL(-9)}"),
    in the user's terms."""
    endings = re.findall(r"\b(EXIT|SIG[A-Z]+)\((-?\d+)\)", loky_message)
    if not endings:
        return "it ended unexpectedly (loky: " + loky_message.strip().splitlines()[0] + ")"
    kind, code = endings[0]
    if kind == "EXIT":
        return f"it exited with code {code}, without an exception: os._exit() or a C library calling exit() in the step"
    return _CAUSES.get(kind, f"it was ended by signal {kind} ({-int(code)})")


def kill_worker(pid: int) -> None:
    """Kill one worker process (a step past its timeout that did not stop)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended meanwhile


_routes: dict[str, weakref.WeakMethod[Report]] = {}  # run token -> the run's report method
_tokens: dict[int, str] = {}  # id of a run -> its token
_serial = itertools.count()


def _route(report: Report) -> str:
    """The token under which workers' messages reach `report` (a bound
    method of the run: held weakly, so a finished run's late lines drop).
    A run is freed as soon as it ends, and the next one often gets its id:
    a token is the id and a serial number, so that the new run gets a route
    of its own (not the dead one's, which dropped its messages: no start
    reported, so no timeout the kernel enforces), and late lines of the old
    run never reach it."""
    run = getattr(report, "__self__", report)
    token = _tokens.get(id(run), "")
    route = _routes.get(token)
    if route is None or route() is None:
        for old in [t for t, ref in _routes.items() if ref() is None]:
            del _routes[old]
        for key in [k for k, t in _tokens.items() if t not in _routes]:
            del _tokens[key]
        token = _tokens[id(run)] = f"{id(run)}-{next(_serial)}"
        _routes[token] = weakref.WeakMethod(report)  # type: ignore[arg-type]
        kernel_channel().sink = _dispatch
    return token


def _dispatch(message: Message) -> None:
    token, kind, step, index, payload = message
    route = _routes.get(token)
    report = route() if route is not None else None
    if report is not None:
        report(kind, step, index, payload)


def stop_pool(wait: bool = True) -> None:
    """Kill the shared pool's workers; the next submission starts a new one.
    With `wait`, also wait for pools stopped before without waiting: the
    thread loky stops a pool with still cleans up after the workers are
    gone, and it starts a resource tracker anew if the kernel's exit has
    stopped it (one that ignores SIGTERM: the kernel could not exit)."""
    global _pool
    with _lock:
        if _pool is not None:
            _shut_down(_pool, wait)
            _pool = None
        stopping = list(_stopping) if wait else []
    for thread in stopping:
        thread.join(_STOP_WAIT)
        _stopping.discard(thread)


_STOP_WAIT = 10.0  # seconds to wait for a stopped pool's last clean-up
_stopping: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # threads of pools stopped without waiting


def _shut_down(pool: loky.ProcessPoolExecutor, wait: bool) -> None:
    """Shut `pool` down, killing its workers (under _lock)."""
    thread = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=wait, kill_workers=True)
    if not wait and thread is not None and thread.is_alive():
        _stopping.add(thread)


def _offer(pool: loky.ProcessPoolExecutor, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
    """`pool.submit(fn, *args)`, or None if the pool refuses: broken by a
    worker's death, shut down, or the interpreter is exiting.

    A broken loky pool raises the one exception object it stored
    (`raise self._flags.broken`), and every raise adds the frames it passes
    through to that object's traceback: ours (the caller's, with its tasks,
    outcomes and run) and loky's `submit` (with the pool, which holds the
    exception). A cycle that only a full garbage collection frees, with
    every shared file those outcomes map. So the flag is read first, and the
    traceback of an exception caught in the race is dropped."""
    if pool._flags.broken is not None:
        return None
    try:
        return pool.submit(fn, *args)
    except (BrokenProcessPool, ShutdownExecutorError, RuntimeError) as e:
        e.__traceback__ = None
        return None


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while loky may start processes: a new
    pool starts loky's resource tracker (once), a submission spawns the
    missing workers and the pool's thread, which spawns the later ones. A
    process inherits its creator's signal mask: a worker is born with SIGINT
    blocked and ignores it for good once `init_worker` has run. Else a
    Jupyter interrupt (jupyter_client sends one to the kernel's process
    group before every shutdown) that lands while a worker or the tracker
    still imports prints its KeyboardInterrupt traceback (and a tracker
    killed so warns of "leaked" semaphores). A Ctrl-C in the kernel
    meanwhile is only delayed until the end."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class ProcessBackend:
    name = "process"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def warm_up(self) -> None:
        """Start the workers now, so the first step does not wait for them;
        a pool already there (maybe busy, maybe sized by a run) is left alone.
        One task makes loky spawn every worker; this returns once they are
        spawned (the time of a fork and exec each), not when they are ready.
        A pool that refuses (broken, or shut down meanwhile: by a run that
        resized it, or by the interpreter's exit) is not replaced here: the
        next submission does that, when a run needs it."""
        with _sigint_blocked():
            _offer(_get_pool(self.workers, keep=True), int)

    def submit(self, tasks: list[Task], report: Report) -> Future[list[Outcome]]:
        run = getattr(report, "__self__", report)  # the run (its scheduler): its kernel arrays are written once
        payload = dump_tasks(tasks, run)  # raises PicklingProblem naming the input
        channel = (kernel_channel().address, _route(report))
        token = sharing.new_token()  # names the files the worker writes for the outcomes
        reply = sharing.reply_to(token)
        try:
            with _sigint_blocked():
                pool = _get_pool(self.workers)
                offered = _offer(pool, run_in_process, payload, channel, reply)
                if offered is None:  # broken by a crash, or shut down meanwhile
                    pool = _get_pool(self.workers, broken=pool)
                    offered = pool.submit(run_in_process, payload, channel, reply)
            inner = offered
        except BaseException:
            sharing.finish(token)
            raise
        outer: Future[list[Outcome]] = Future()

        def relay(f: Future[bytes]) -> None:
            if f.cancelled():
                sharing.finish(token)
                outer.cancel()
                return
            exc = f.exception()
            if isinstance(exc, (TerminatedWorkerError, ShutdownExecutorError)):
                # loky fails the futures, then kills the workers: one may be writing
                sharing.discard(token, writers=list(getattr(pool, "_processes", None) or ()))
            elif exc is not None:
                sharing.finish(token)
            if isinstance(exc, TerminatedWorkerError):
                global _broken
                reason = explain_exit(str(exc))
                with _lock:
                    if pool is _pool and not _broken:  # the reason of this pool's replacement
                        _broken = f"a worker process died: {reason}"
                        log.warning("nbpar: %s; the worker pool is restarted for the steps that run next", _broken)
                outer.set_exception(WorkerCrash(reason, _last_words()))
            elif exc is not None:
                outer.set_exception(exc)
            else:
                try:
                    outcomes = sharing.loads(f.result())  # large outputs: mapped from the worker's files
                except Exception as e:  # an output whose class the kernel cannot load
                    outer.set_exception(e.with_traceback(None))  # (its frames: this one, which holds `outer`)
                else:
                    outer.set_result(outcomes)
                finally:
                    sharing.finish(token)  # what the outcomes do not use goes

        inner.add_done_callback(relay)
        return outer

    def stop(self) -> None:
        stop_pool(wait=False)

    def shutdown(self) -> None:
        stop_pool(wait=True)
