"""Exit at once after `%load_ext nbpar`: no noise and no orphan, ever (issue 13, item 7).

`%load_ext nbpar` spawns the worker pool, so that the first `%parrun`
finds its workers warm (it did so in a thread until issue 15). An
interpreter that exits while the workers are starting used to print loky's tracebacks (`FileNotFoundError` in
`_SemLock._rebuild`, `EOFError` in a worker that never got its start-up
data), `resource_tracker: There appear to be N leaked semlock objects`, or
`restarting the worker pool: it was broken`, and once left workers and
resource trackers orphaned under PID 1.

Each of the first four tests starts 20 real processes, a few at a time: a
terminal IPython (`ipython -c`) that loads nbpar and exits, with and without
a tiny `%parrun`, and a Jupyter kernel that loads nbpar and is shut down as
nbclient does at the end of a notebook; then 3 kernels whose step killed its
worker. Each child's environment carries a marker; after each exit no
process carrying it may be left (workers, resource trackers), and what the
child wrote must hold no loky or nbpar noise.

A kernel's shutdown stops loky's resource tracker, which then warns of every
semaphore still registered ("leaked"), and a semaphore freed later starts a
new tracker that prints a `KeyError` for it. The last tests take the causes
found one at a time, each deterministic: workers killed by the interrupt
jupyter_client sends before a shutdown, and semaphores of a stopped pool
still alive when `stop_pool()` returned.
"""

from __future__ import annotations

import gc
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from jupyter_client.manager import KernelManager

from .conftest import ROOT

TIMES = 20
AT_ONCE = 3
MARK = "NBPAR_EXIT_TEST"
LEFT_WITHIN = 5.0  # seconds for a marked process to be gone after its kernel exits
NOISE = re.compile(r"Traceback|loky|resource_tracker|leaked|KeyError|Error|Warning|restarting the worker pool")
IPYTHON = str(Path(sys.executable).with_name("ipython"))


def marked(mark: str) -> list[psutil.Process]:
    """The live processes whose environment carries `mark` (children of
    children included, orphans under PID 1 too)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def left_after(mark: str) -> list[str]:
    """The marked processes still there `LEFT_WITHIN` seconds after the exit."""
    deadline = time.monotonic() + LEFT_WITHIN
    while (left := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [f"{p.pid} (parent {p.ppid()}): {' '.join(p.cmdline())[:100]}" for p in left]


def environment(mark: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{MARK: mark})
    env.pop("NBPAR_WORKERS", None)  # the warm-up starts the default pool
    return env


def ipython(code: str) -> Callable[[], tuple[str, list[str]]]:
    def once() -> tuple[str, list[str]]:
        mark = uuid.uuid4().hex
        done = subprocess.run(
            [IPYTHON, "--no-banner", "--colors=nocolor", "--HistoryManager.enabled=False", "-c", code],
            capture_output=True,
            text=True,
            env=environment(mark),
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr, left_after(mark)

    return once


def kernel(kernel_name: str, code: str) -> Callable[[], tuple[str, list[str]]]:
    def once() -> tuple[str, list[str]]:
        mark = uuid.uuid4().hex
        with tempfile.TemporaryFile("w+") as out:
            km = KernelManager(kernel_name=kernel_name)
            km.start_kernel(env=environment(mark), stdout=out, stderr=out)
            client = km.client()
            client.start_channels()
            try:
                client.wait_for_ready(timeout=60)
                reply = client.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
                assert reply["content"]["status"] == "ok", reply["content"]
            finally:
                client.stop_channels()
                km.shutdown_kernel(now=False)  # as nbclient does at a notebook's end
            left = left_after(mark)
            out.seek(0)
            return out.read(), left

    return once


def check(once: Callable[[], tuple[str, list[str]]], times: int = TIMES) -> None:
    with ThreadPoolExecutor(AT_ONCE) as pool:
        results = list(pool.map(lambda _: once(), range(times)))
    noisy = [text for text, _ in results if NOISE.search(text)]
    orphans = [left for _, left in results if left]
    assert not noisy, f"{len(noisy)} of {times} exits wrote noise; the first:\n{noisy[0]}"
    assert not orphans, f"{len(orphans)} of {times} exits left processes behind; the first: {orphans[0]}"


LOAD = "%load_ext nbpar"
RUN = "%load_ext nbpar\nget_ipython().run_cell('%%step s\\nx = 1')\n%parrun --no-widget"


@pytest.mark.slow
def test_ipython_exiting_right_after_load_ext_is_silent_and_leaves_nothing():
    check(ipython(LOAD))


@pytest.mark.slow
def test_ipython_exiting_right_after_a_tiny_parrun_is_silent_and_leaves_nothing():
    check(ipython(RUN))


@pytest.mark.slow
def test_a_kernel_shut_down_right_after_load_ext_is_silent_and_leaves_nothing(kernel_name):
    check(kernel(kernel_name, LOAD))


@pytest.mark.slow
def test_a_kernel_shut_down_right_after_a_tiny_parrun_is_silent_and_leaves_nothing(kernel_name):
    check(kernel(kernel_name, RUN))


CRASH = (
    "%load_ext nbpar\n"
    "get_ipython().run_cell('%%step s\\nimport os, signal\\nos.kill(os.getpid(), signal.SIGKILL)')\n"
    "get_ipython().run_cell('%parrun --no-widget')"  # (its error is the cell's output, not the reply's)
)


@pytest.mark.slow
def test_a_kernel_shut_down_after_a_worker_died_is_silent_and_leaves_nothing(kernel_name):
    """A step that kills its worker, then the kernel's shutdown: loky's
    resource tracker warned of 7 leaked semaphores in every such kernel (the
    broken pool's queues and locks, which its manager thread kept, itself
    kept by ipykernel for having written to stderr; and the dead worker's
    exit lock, kept by multiprocessing's list of children)."""
    check(kernel(kernel_name, CRASH), times=3)


# -- the causes, one at a time ------------------------------------------------------

INTERRUPTED = """
import os, signal
from nbpar.backends import process

signal.signal(signal.SIGINT, lambda *_: None)  # (a handler, not SIG_IGN: workers do not inherit it)
process.ProcessBackend(2).warm_up()  # the workers are spawned, not yet started
os.killpg(0, signal.SIGINT)  # jupyter_client's interrupt of the kernel's group, before a shutdown
pool = process._pools[2]
pool.submit(os.getpid).result(timeout=60)  # (TerminatedWorkerError if a worker died of it)
process.stop_pool()
"""


@pytest.mark.slow
def test_workers_still_starting_when_the_kernels_group_is_interrupted_live_on_silently():
    """Workers are born with SIGINT blocked. CPython 3.11's multiprocessing
    resource tracker, which loky starts as it spawns a process's first
    worker, unblocked SIGINT in the spawning thread (SIG_UNBLOCK, not the
    previous mask): every worker of a kernel's first pool was born without
    it, and died of the interrupt, silently or with a KeyboardInterrupt
    traceback, as it imported."""
    mark = uuid.uuid4().hex
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED],
        capture_output=True,
        text=True,
        env=environment(mark),
        timeout=120,
        start_new_session=True,  # a group of its own, as a kernel's
    )
    assert done.returncode == 0 and not NOISE.search(done.stderr), done.stdout + done.stderr
    assert not left_after(mark)


def _semaphores() -> set[str]:
    """The names of loky's semaphores alive in this process (each one is
    registered with loky's resource tracker until it is freed)."""
    from loky.backend.synchronize import SemLock

    gc.collect()
    return {o._semlock.name for o in gc.get_objects() if isinstance(o, SemLock)}


def test_a_stopped_pool_frees_its_semaphores_though_its_thread_is_kept():
    """After `stop_pool()`, a pool broken by a worker's death holds no
    semaphore any more, though its manager thread is still referenced (as
    ipykernel keeps for 10 s a thread that wrote to stdout or stderr) and
    loky did not join the dead worker. Else they are freed at the
    interpreter's exit, after a kernel's shutdown stopped the tracker, which
    then warns that they leaked."""
    from nbpar import folders
    from nbpar.backends import process

    before = _semaphores()
    pool = process._get_pool(1)
    try:
        worker = pool.submit(os.getpid).result(timeout=60)
        folders.kill_worker(worker)
        deadline = time.monotonic() + 30
        while pool._flags.broken is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool._flags.broken is not None
        kept = pool._executor_manager_thread  # as ipykernel's IOPubThread._event_pipes does
    finally:
        process._release(pool)
    process.stop_pool()
    del pool
    assert not kept.is_alive()
    assert _semaphores() <= before


def test_stopping_a_pool_waits_for_its_queue_thread_and_frees_its_semaphores():
    """`stop_pool()` returns once the pool's call queue has no thread left:
    its feeder thread holds the queue's semaphores until it ends, which on a
    busy machine was after a kernel's shutdown had stopped the tracker.
    Here the feeder is made slow, as on a busy machine."""
    from nbpar.backends import process

    before = _semaphores()
    pool = process._get_pool(1)
    try:
        queue, flags = pool._call_queue, pool._flags
        send = queue._send_bytes
        sent: list[bytes] = []
        sending = threading.Event()

        def slowly(data: bytes) -> None:
            if sent:  # the second task: the feeder is still sending it a second after the pool stops
                sending.set()
                while not flags.shutdown:
                    time.sleep(0.01)
                time.sleep(1.0)
            sent.append(data)
            send(data)

        queue._send_bytes = slowly  # (before the first put, which starts the feeder thread)
        pool.submit(int).result(timeout=60)
        pool.submit(time.sleep, 10)
        assert sending.wait(30)
    finally:
        process._release(pool)
    feeder = queue._thread
    process.stop_pool()
    del pool, queue
    assert feeder is not None and not feeder.is_alive()
    assert _semaphores() <= before


def test_stopping_a_pool_ends_its_queue_thread_blocked_on_a_big_task():
    """A task larger than the pipe holds (a big input) waits in the call
    queue's feeder thread, writing, until a worker reads it. When the pool
    stopped meanwhile (its workers killed), that write never ended, and the
    thread kept the queue's semaphores until the interpreter's exit: after
    a kernel's shutdown had stopped the tracker, which warned of them."""
    from nbpar.backends import process

    before = _semaphores()
    pool = process._get_pool(1)
    try:
        pool.submit(time.sleep, 30)  # the only worker is busy
        pool.submit(len, b"x" * 10_000_000)
        queue = pool._call_queue
        deadline = time.monotonic() + 30
        while select.select([], [queue._writer], [], 0)[1] and time.monotonic() < deadline:
            time.sleep(0.01)  # until the pipe is full: the feeder is blocked, writing the big task
        assert not select.select([], [queue._writer], [], 0)[1]
    finally:
        process._release(pool)
    feeder = queue._thread
    process.stop_pool()
    del pool, queue
    assert feeder is not None and not feeder.is_alive()
    assert _semaphores() <= before
