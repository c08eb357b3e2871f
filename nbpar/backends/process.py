"""Run steps in worker processes: a loky process pool, kept warm.

Tasks and outcomes cross as bytes that `worker.dump_tasks`/`dump_outcomes`
made with cloudpickle, so pickling errors name the variable. The pool's
idle timeout is long, so a notebook's second `%parrun` finds its workers
warm. The pools are this module's, shared by every pipeline and thread of
the process, one per worker count. (loky's own `get_reusable_executor`
keeps one executor, per thread in loky 3.7, so a background run would
start a pool of its own; process-wide under a lock
in loky 3.4 to 3.6, resized, or shut down and replaced, whenever another
size or initializer is asked for, under the steps it runs.) Each pool
serves one run at a time: a run holds the pool it first submits to until
it ends (`ProcessBackend.close_run`), so that a run's cancel, timeout or
crash, which kill or break the whole pool (loky cannot stop one task
otherwise), never touch another run's steps. A run that finds the shared
pool of its size held by another run gets a pool of its own, shut down
when it ends. Each submission also reserves its pool until its future is
done (`_get_pool` .. `_release`), and a shared pool is shut down only when
nothing uses or holds it and another size was asked for since (a
`pmap(..., workers=3)` beside a background run on 2 workers gets a pool of
3 and leaves the run's alone; the pool of 2 goes when the run ends). A pool
one of whose workers is spent (a step lowered a hard resource limit it
cannot raise again: worker.py) is retired: nothing more is submitted to it,
not by the run that holds it either (its next submission gets a fresh
pool), and it is shut down once its units in flight are back, so the steps
running beside it are not disturbed.

A run opened here (`open_run`) gets a route: the token under which its
workers' starts and printed lines reach its report through the kernel's
channel (channel.py), and the scope of the kernel arrays written once for
its tasks (sharing.py); `close_run` removes both, and lets go of its pool.

When a worker dies, loky fails every future in flight with
TerminatedWorkerError (`shared_fate`); we turn that into a `WorkerCrash`
that says how it ended (exit code or signal, and what that usually means)
with what Python's faulthandler wrote as it died (each worker writes to a
file of its own, in the kernel's private folder: folders.py), and the
scheduler decides what to resubmit. The crash is logged (logger "nbpar")
when it happens, so in the run it happened in, and the broken pool is
replaced at the next submission, maybe in a later run. Stopping kills the
workers (a running task can only be stopped that way); `stop_worker` kills
one, and loky then fails the pool's futures as for a crash.
"""

from __future__ import annotations

import collections
import glob
import itertools
import logging
import multiprocessing
import multiprocessing.resource_tracker
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
from ..contract import BackendRun, Outcome, Report, Task, WorkerCrash
from ..worker import dump_tasks, init_worker, run_in_process

IDLE_TIMEOUT = 3600  # seconds an idle worker stays alive (loky's default: 10)
GRACE = 1.0  # seconds a step past its timeout gets to stop itself (its worker's alarm) before it is killed

log = logging.getLogger("nbpar")
_lock = threading.Lock()  # guards _pools, _holders, _users, _retired, _size and _broken
_pools: dict[int, loky.ProcessPoolExecutor] = {}  # the shared pools, by worker count
_holders: dict[loky.ProcessPoolExecutor, object] = {}  # the run (its backend) each pool serves, until it ends
_users: collections.Counter[loky.ProcessPoolExecutor] = collections.Counter()  # uses going on (_get_pool.._release)
_retired: dict[loky.ProcessPoolExecutor, object] = {}  # pools with a spent worker -> the run that held them
_size = 0  # the worker count asked for last: its pool is the one kept warm
_broken = ""  # why a pool broke, until it is replaced
_open: weakref.WeakSet[ProcessBackend] = weakref.WeakSet()  # backends made and not shut down (their pipelines may run)


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
    """One use of `pool` (from `_get_pool`) is over; a retired pool's last
    one shuts it down."""
    with _lock:
        _users[pool] -= 1
        if _users[pool] <= 0:
            del _users[pool]
            if _retired.pop(pool, None) is not None:
                _shut_down(pool, wait=False)
            _retire_unused()


def _retire(pool: loky.ProcessPoolExecutor) -> None:
    """A worker of `pool` is spent: nothing more is submitted to it (the
    next submission, of the run that holds it too, gets a fresh pool); it is
    shut down by the last `_release` of its uses in flight, or at once by
    its run's `stop` (under _lock; called in a use of it, so not unused)."""
    for workers in [n for n, p in _pools.items() if p is pool]:
        del _pools[workers]
    holder = _holders.pop(pool, None)
    if holder is not None:  # (else stopped meanwhile: stop_pool, or its run's stop)
        _retired[pool] = holder


def _let_go(holder: object, kill: bool) -> None:
    """The run of `holder` no longer holds its pool: a pool of its own is
    shut down, the shared one is left warm for the next run (with `kill`:
    shut down too, killing the run's tasks in flight, and so is a pool of
    the run retired with tasks still in flight)."""
    with _lock:
        for pool in [p for p, h in _retired.items() if h is holder and kill]:
            del _retired[pool]
            _shut_down(pool, wait=False)
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


def _kill_group(pid: int) -> None:
    """Kill the process group of worker `pid` (init_worker made it one),
    even if the worker itself is dead: the processes its steps started are
    in it, and Linux does not reuse a pid still in use as a group id."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # no such group any more


class _ProcessRun(BackendRun):
    """A run on processes: `token` names its route (and its workers'
    messages); it is also the scope of the kernel arrays written once for
    its tasks (sharing.dumps)."""

    def __init__(self, report: Report) -> None:
        super().__init__(report)
        self.token = str(next(_serial))


# run token -> the run, while it is open (held weakly: a run its loop
# dropped without closing it frees its report, and its late lines drop)
_routes: weakref.WeakValueDictionary[str, _ProcessRun] = weakref.WeakValueDictionary()
_serial = itertools.count()  # a new token for every run: a late line of a closed run never reaches another


def _dispatch(message: Message) -> None:
    """A worker's message, from the channel's threads: to its run's report."""
    token, kind, step, index, payload = message
    run = _routes.get(token)
    if run is not None:
        run.report(kind, step, index, payload)


def stop_pool(wait: bool = True) -> None:
    """Kill the workers of every pool, the shared ones and those of runs'
    own; the next submission starts a new one. With `wait`, also wait for
    pools stopped before without waiting: the threads loky stops a pool with
    still clean up after the workers are gone, and one starts a resource
    tracker anew if the kernel's exit has stopped it (one that ignores
    SIGTERM: the kernel could not exit). When this returns (with `wait`), no
    semaphore of a stopped pool is left (`_end`, `_reap`): a kernel's exit
    stops the tracker next, which warns of "leaked" semaphores still
    registered then."""
    with _lock:
        pools = list({*_pools.values(), *_holders, *_retired})
        _pools.clear()
        _holders.clear()
        _retired.clear()
        if not wait:
            for pool in pools:
                _shut_down(pool, wait=False)
        stopping = list(_stopping) if wait else []
    if not wait:
        return
    for pool in pools:  # not under _lock: loky's thread, which this joins, runs
        _shut_down(pool, wait=True)  # the futures' callbacks, and _release takes _lock
    for thread in stopping:
        _end(thread)
        _stopping.discard(thread)
    _reap()


_STOP_WAIT = 10.0  # seconds to wait for a stopped pool's last clean-up
_stopping: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # threads of pools stopped without waiting
# What loky's manager thread keeps of its pool after it ended: the queues and
# the lock, with their named semaphores, and the workers (their exit locks).
_MANAGER_STATE = ("call_queue", "result_queue", "processes_management_lock", "processes")


def _shut_down(pool: loky.ProcessPoolExecutor, wait: bool) -> None:
    """Shut `pool` down, killing its workers and what their steps started
    (under _lock, unless `wait`: see stop_pool). Its threads are waited for
    (`_end`) with `wait`, else by the next `stop_pool()`."""
    workers = list(getattr(pool, "_processes", None) or ())
    thread = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=wait, kill_workers=True)
    for pid in workers:  # (after: a pool shutting down is not broken by its workers' deaths)
        folders.kill_worker(pid)
    if thread is not None:
        if wait:
            _end(thread)
        else:
            _stopping.add(thread)


def _end(thread: threading.Thread) -> None:
    """Wait for a stopped pool's manager `thread` and for the feeder thread
    of its call queue, then drop what the manager still holds.

    The feeder thread holds its queue's semaphores until it ends, and loky
    does not join it (`join_thread()` does nothing in the process that made
    the queue): on a busy machine it ended after a kernel's shutdown had
    stopped the tracker, and one writing a task larger than the pipe holds
    (say, a big input) when the workers were killed never ended. Once the
    manager has ended, the workers are gone: this process's read end of the
    pipe is closed, so such a write fails (EPIPE, which the queue ignores).
    The manager keeps its pool's queues and lock as attributes after it
    ended, and ipykernel keeps a thread that wrote to stdout or stderr for
    up to 10 s (a crash's warning, written in that thread, is enough).
    Freed at the interpreter's exit, all these semaphores were "leaked"."""
    thread.join(_STOP_WAIT)
    if thread.is_alive():
        return
    queue = getattr(thread, "call_queue", None)
    feeder = getattr(queue, "_thread", None)
    if isinstance(feeder, threading.Thread) and feeder.is_alive():
        reader = getattr(queue, "_reader", None)
        if reader is not None:
            reader.close()
        feeder.join(_STOP_WAIT)
    for name in _MANAGER_STATE:
        thread.__dict__.pop(name, None)


def _reap() -> None:
    """Forget the workers that are gone. loky does not join a worker that
    died by itself (its kill finds the process already reaped, and returns
    before the join), so multiprocessing's list of children keeps it, and
    with it the worker's exit lock, a named semaphore, until a process
    starts or the interpreter exits; `active_children()` drops the ended."""
    multiprocessing.active_children()


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
    meanwhile is only delayed until the end.

    loky also starts multiprocessing's resource tracker as it spawns the
    first worker of a process, and CPython 3.11's unblocks SIGINT and
    SIGTERM in the calling thread once it started it (SIG_UNBLOCK, not the
    mask it found): every worker of a kernel's first pool was born without
    the block. So that tracker is started first, and the mask set again."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        multiprocessing.resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_SETMASK, old | {signal.SIGINT})
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class ProcessBackend:
    name = "process"
    worker_prefix = "pid "
    inline = False
    isolated = True
    shared_fate = True  # loky fails every future of a pool when one of its workers dies
    grace = GRACE
    late = f"it held off or caught the alarm (an `except BaseException`) and finished within the {GRACE:g}s grace"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        _open.add(self)

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

    def open_run(self, report: Report) -> BackendRun:
        """A route for the run's messages (see `_dispatch`)."""
        run = _ProcessRun(report)
        _routes[run.token] = run
        kernel_channel().sink = _dispatch
        return run

    def submit(self, tasks: list[Task], run: BackendRun) -> Future[list[Outcome]]:
        assert isinstance(run, _ProcessRun), "a run opened by another backend"
        payload = dump_tasks(tasks, run)  # raises PicklingProblem naming the input; run: its kernel arrays go once
        channel = (kernel_channel().address, run.token)
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
            workers = list(getattr(pool, "_processes", None) or ())  # (loky may clear it on a crash)
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
                for pid in set(workers) | set(getattr(pool, "_processes", None) or ()):
                    _kill_group(pid)  # what the dead worker's steps started dies with it
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
            if any(o.spent for o in outcomes):
                with _lock:
                    _retire(pool)
            return lambda out: out.set_result(outcomes)

        inner.add_done_callback(relay)
        return outer

    def stop_worker(self, worker: str) -> bool:
        """Kill worker "pid N" and what its steps started; loky then fails
        every future of its pool (a WorkerCrash each)."""
        if not worker.startswith(self.worker_prefix):
            return False
        folders.kill_worker(int(worker.removeprefix(self.worker_prefix)))
        return True

    def abandon(self, future: Future[list[Outcome]]) -> None:
        pass  # its worker was stopped (stop_worker): nothing of it runs on

    def stop(self, run: BackendRun) -> None:
        """Kill the workers of the pool this backend's run holds (its tasks
        in flight with them); other runs' pools are left alone."""
        _let_go(self, kill=True)

    def close_run(self, run: BackendRun) -> None:
        """The run is over: its route goes (its late lines drop), the pool
        it held is let go (the shared one stays warm), and the kernel
        arrays written for its tasks are no longer pinned (sharing.end_run)."""
        if run.closed:
            return
        run.closed = True
        if isinstance(run, _ProcessRun):
            _routes.pop(run.token, None)
        _let_go(self, kill=False)
        sharing.end_run(run)

    def shutdown(self) -> None:
        """This backend's pipeline is done with processes: the pool its run
        holds, if a run goes on, is stopped with that run's tasks; the shared
        pools only once no other pipeline's process backend is open (the
        magics', a `Pipeline` of the user's, pmap's), so that one pipeline's
        shutdown never stops the workers another one runs on or keeps warm.
        `stop_pool` stops every pool (`%unload_ext`, the process's exit)."""
        _open.discard(self)
        _let_go(self, kill=True)
        if not _open:
            stop_pool(wait=True)
