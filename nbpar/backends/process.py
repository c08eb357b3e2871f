"""Run steps in worker processes: a loky process pool, kept warm.

Tasks and outcomes cross as bytes that `worker.dump_tasks`/`dump_outcomes`
made with cloudpickle, so pickling errors name the variable. The pool's
idle timeout is long, so a notebook's second `%parrun` finds its workers
warm. The pools are this module's, shared by every pipeline and thread of
the process (loky's own `get_reusable_executor` keeps one pool per thread,
and a background run or the warm-up thread would start pools of their own),
one per worker count, and each serves one run at a time: a run holds the
pool it first submits to until it ends (`ProcessBackend.release`), so that
a run's cancel, timeout or crash, which kill or break the whole pool (loky
cannot stop one task otherwise), never touch another run's steps. A run
that finds the shared pool of its size held by another run gets a pool of
its own, shut down when it ends. Each submission also reserves its pool
until its future is done (`_get_pool` .. `_release`), and a shared pool is
shut down only when nothing uses or holds it and another size was asked
for since (a `pmap(..., workers=3)` beside a background run on 2 workers
gets a pool of 3 and leaves the run's alone; the pool of 2 goes when the
run ends).

When a worker dies, loky fails every future in flight with
TerminatedWorkerError; we turn that into a `WorkerCrash` that says how it
ended (exit code or signal, and what that usually means) with what Python's
faulthandler wrote as it died (each worker writes to a file of its own, in
the kernel's private folder: folders.py),
and the scheduler decides what to resubmit. The crash is logged (logger
"nbpar") when it happens, so in the run it happened in, and the broken pool
is replaced at the next submission, maybe in a later run. Stopping kills the workers (a running task can only be stopped
that way).
"""

from __future__ import annotations

import collections
import glob
import itertools
import logging
import os
import re
import signal
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import loky
from loky.process_executor import BrokenProcessPool, ShutdownExecutorError, TerminatedWorkerError

from .. import folders, sharing
from ..channel import Message, kernel_channel
from ..worker import Outcome, Report, Task, dump_tasks, init_worker, run_in_process
from .base import WorkerCrash

IDLE_TIMEOUT = 3600  # seconds an idle worker stays alive (loky's default: 10)

log = logging.getLogger("nbpar")
_lock = threading.Lock()  # guards _pools, _holders, _users, _size and _broken
_pools: dict[int, loky.ProcessPoolExecutor] = {}  # the shared pools, by worker count
_holders: dict[loky.ProcessPoolExecutor, object] = {}  # the run (its backend) each pool serves, until it ends
_users: collections.Counter[loky.ProcessPoolExecutor] = collections.Counter()  # uses going on (_get_pool.._release)
_size = 0  # the worker count asked for last: its pool is the one kept warm
_broken = ""  # why a pool broke, until it is replaced


def _get_pool(
    workers: int, broken: loky.ProcessPoolExecutor | None = None, keep: bool = False, holder: object = None
) -> loky.ProcessPoolExecutor:
    """The shared pool with `workers` processes, started if need be, and
    reserved for one use until `_release(pool)`: a pool is never shut down
    while used, so asking for another size leaves it to the run using it
    (pools of other sizes go once nothing uses them). With `holder` (a run's
    backend), the pool that run holds, else the shared one if no other run
    holds it, else a pool of the run's own; the run holds it until
    `_let_go(holder)`. With `keep`, the pool kept warm serves whatever its
    size. With `broken` (a pool that refused a task), that pool is replaced
    if it is still the shared one or the holder's; if another thread
    replaced it meanwhile, the replacement is kept."""
    global _size, _broken
    with _lock:
        pool = next((p for p, h in _holders.items() if h is holder), None) if holder is not None else None
        own = pool is not None and pool is not _pools.get(workers)  # a pool of the run's own
        if pool is None:
            pool = _pools.get(workers)
            if keep and pool is None:
                pool = _pools.get(_size)
            if holder is not None and pool is not None and _holders.get(pool, holder) is not holder:
                pool, own = None, True  # held by another run
        if broken is not None and pool is broken:
            _shut_down(broken, wait=False)
            _holders.pop(broken, None)
            pool = None
            if not _broken:  # (a crash was said when it happened)
                log.warning("nbpar: restarting the worker pool: it was broken")
            _broken = ""
        if pool is None:
            _sweep_fault_files()
            pool = loky.ProcessPoolExecutor(
                max_workers=workers, timeout=IDLE_TIMEOUT, initializer=init_worker, initargs=(_faults(), os.getpid())
            )
            # At interpreter exit, kill the workers instead of waiting for the
            # steps they run (a script or terminal IPython quitting mid-run).
            pool._flags.kill_workers = True
            if not own:
                _pools[workers] = pool
        if holder is not None:
            _holders[pool] = holder
        if not keep or _size not in _pools:
            _size = workers
        _users[pool] += 1
        _retire_unused()
        return pool


def _release(pool: loky.ProcessPoolExecutor) -> None:
    """One use of `pool` (from `_get_pool`) is over."""
    with _lock:
        _users[pool] -= 1
        if _users[pool] <= 0:
            del _users[pool]
            _retire_unused()


def _let_go(holder: object, kill: bool) -> None:
    """The run of `holder` no longer holds its pool: a pool of its own is
    shut down, the shared one is left warm for the next run (with `kill`:
    shut down too, killing the run's tasks in flight)."""
    with _lock:
        for pool in [p for p, h in _holders.items() if h is holder]:
            del _holders[pool]
            workers = next((n for n, p in _pools.items() if p is pool), None)
            if kill or workers is None:
                if workers is not None:
                    del _pools[workers]
                _shut_down(pool, wait=False)
        _retire_unused()
        _sweep_fault_files()  # (of the workers the run's timeouts and crashes killed)


def _retire_unused() -> None:
    """Shut down the pools that are not of the size asked for last and that
    nothing uses or holds (under _lock)."""
    for workers, pool in list(_pools.items()):
        if workers != _size and pool not in _users and pool not in _holders:
            _shut_down(pool, wait=False)
            del _pools[workers]


# -- how a worker died ------------------------------------------------------


def _faults() -> str:
    """Where each worker's faulthandler writes (worker.init_worker makes the
    file): in the kernel's private folder, which goes with the kernel."""
    return os.path.join(folders.private(), "faults-{worker}.txt")


def _last_words() -> str:
    """What faulthandler wrote in this kernel's workers that have died; their
    files are removed."""
    words = []
    for path, worker in _fault_files():
        if folders.alive(worker):
            continue
        with open(path) as f:
            words.append(_users_frames(f.read()))
        os.remove(path)
    return "\n".join(w for w in words if w)


def _fault_files() -> list[tuple[str, int]]:
    """This kernel's fault files, with their workers' pids."""
    found = []
    for path in glob.glob(_faults().format(worker="*")):
        worker = os.path.basename(path).removeprefix("faults-").removesuffix(".txt")
        if worker.isdigit():
            found.append((path, int(worker)))
    return found


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


def _sweep_fault_files() -> None:
    """Remove the fault files of this kernel's workers that are gone (the
    folder, with the rest, goes with the kernel)."""
    for path, worker in _fault_files():
        if not folders.alive(worker):
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
    if kind == "EXIT" and code == "1":  # what loky's worker loop exits with when its own code fails
        return (
            "it exited with code 1: os._exit(1) or a C library calling exit() in the step, or the worker's own "
            "code failed after it, most often because the step replaced something of a module the worker needs "
            "(say `io.BytesIO = ...`): change library modules in an ordinary cell, not in a step"
        )
    if kind == "EXIT":
        return f"it exited with code {code}, without an exception: os._exit() or a C library calling exit() in the step"
    return _CAUSES.get(kind, f"it was ended by signal {kind} ({-int(code)})")


def kill_worker(pid: int) -> None:
    """Kill one worker process (a step past its timeout that did not stop)
    and the processes its steps started: its process group (init_worker)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
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
    """Kill the workers of every pool, the shared ones and those of runs'
    own; the next submission starts a new one. With `wait`, also wait for
    pools stopped before without waiting: the thread loky stops a pool with
    still cleans up after the workers are gone, and it starts a resource
    tracker anew if the kernel's exit has stopped it (one that ignores
    SIGTERM: the kernel could not exit)."""
    with _lock:
        pools = list({*_pools.values(), *_holders})
        _pools.clear()
        _holders.clear()
        if not wait:
            for pool in pools:
                _shut_down(pool, wait=False)
        stopping = list(_stopping) if wait else []
    for pool in pools if wait else []:  # not under _lock: loky's thread, which this joins, runs
        _shut_down(pool, wait=True)  # the futures' callbacks, and _release takes _lock
    for thread in stopping:
        thread.join(_STOP_WAIT)
        _stopping.discard(thread)


_STOP_WAIT = 10.0  # seconds to wait for a stopped pool's last clean-up
_stopping: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # threads of pools stopped without waiting


def _shut_down(pool: loky.ProcessPoolExecutor, wait: bool) -> None:
    """Shut `pool` down, killing its workers and what their steps started
    (under _lock, unless `wait`: see stop_pool)."""
    workers = list(getattr(pool, "_processes", None) or ())
    thread = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=wait, kill_workers=True)
    for pid in workers:  # (after: a pool shutting down is not broken by its workers' deaths)
        kill_worker(pid)
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
        A pool that refuses (broken, or shut down meanwhile: by the
        interpreter's exit) is not replaced here: the next submission does
        that, when a run needs it. The pool is in use until that task is done."""
        with _sigint_blocked():
            pool = _get_pool(self.workers, keep=True)
            offered = _offer(pool, int)
        if offered is None:
            _release(pool)
        else:
            offered.add_done_callback(lambda _: _release(pool))

    def submit(self, tasks: list[Task], report: Report) -> Future[list[Outcome]]:
        run = getattr(report, "__self__", report)  # the run (its scheduler): its kernel arrays are written once
        payload = dump_tasks(tasks, run)  # raises PicklingProblem naming the input
        channel = (kernel_channel().address, _route(report))
        token = sharing.new_token()  # names the files the worker writes for the outcomes
        reply = sharing.reply_to(token)
        held = False  # whether this submission holds `pool` (see _release)
        try:
            with _sigint_blocked():
                pool = _get_pool(self.workers, holder=self)
                held = True
                offered = _offer(pool, run_in_process, payload, channel, reply)
                if offered is None:  # broken by a crash, or shut down meanwhile
                    _release(pool)
                    held = False
                    pool = _get_pool(self.workers, broken=pool, holder=self)
                    held = True
                    offered = pool.submit(run_in_process, payload, channel, reply)
            inner = offered
        except BaseException:
            if held:
                _release(pool)
            sharing.finish(token)
            raise
        outer: Future[list[Outcome]] = Future()

        def relay(f: Future[bytes]) -> None:
            """Settle `outer` from loky's future; this use of the pool is
            over before the run sees the outcome (the run may end on it, and
            a pool it no longer uses is then retired at once)."""
            try:
                settle = _settle(f)
            finally:
                _release(pool)
            settle(outer)

        def _settle(f: Future[bytes]) -> Callable[[Future[list[Outcome]]], Any]:
            if f.cancelled():
                sharing.finish(token)
                return lambda out: out.cancel()
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
                    if _holders.get(pool) is self and not _broken:  # the reason of this pool's replacement
                        _broken = f"a worker process died: {reason}"
                        log.warning("nbpar: %s; the worker pool is restarted for the steps that run next", _broken)
                crash = WorkerCrash(reason, _last_words())
                return lambda out: out.set_exception(crash)
            if exc is not None:
                return lambda out: out.set_exception(exc)
            try:
                outcomes = sharing.loads(f.result())  # large outputs: mapped from the worker's files
            except Exception as e:  # an output whose class the kernel cannot load
                error = e.with_traceback(None)  # (its frames: this one, which holds `outer`)
                return lambda out: out.set_exception(error)
            finally:
                sharing.finish(token)  # what the outcomes do not use goes
            return lambda out: out.set_result(outcomes)

        inner.add_done_callback(relay)
        return outer

    def stop(self) -> None:
        """Kill the workers of the pool this backend's run holds (its tasks
        in flight with them); other runs' pools are left alone."""
        _let_go(self, kill=True)

    def release(self) -> None:
        _let_go(self, kill=False)

    def shutdown(self) -> None:
        stop_pool(wait=True)
