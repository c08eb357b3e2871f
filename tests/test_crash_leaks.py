"""A worker's crash frees what its run made at once, not at the next full
garbage collection (issue 13, item 1).

The out-of-memory killer is the most common crash, and each one used to pin
the run's outcomes, their shared files in /dev/shm and the old loky pool in
a reference cycle (loky re-raises one stored exception object, whose
traceback kept the submitting frame). The test runs a step that crashes
beside steps with large outputs, again and again, with the garbage
collector disabled: whatever is freed is freed by reference counting alone.
"""

from __future__ import annotations

import gc
import os
import weakref

import psutil
import pytest

from nbpar import sharing
from nbpar.backends import process

from .conftest import run_cell, run_cells

RUNS = 6
MIB = 2**20


@pytest.mark.parametrize("crash", ["import os\nos._exit(3)", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"])
def test_crashes_pin_no_outputs_files_or_pools_without_a_garbage_collection(shell, crash):
    run_cells(
        shell,
        "import numpy as np\nitems = list(range(2))",
        "%%step whole\nwhole = np.ones(8 * 2**20 // 8)",  # 8 MiB: a shared file
        "%%step fanned --over items --slices 2\nfanned = [np.ones(4 * 2**20 // 8) for _ in items]",  # 2 files
        f"%%step boom\n{crash}\nboom = 1",
    )
    directory = sharing.directory()
    me = psutil.Process()
    files: list[int] = []
    rss: list[float] = []
    pools: list[weakref.ref[object]] = []
    gc.collect()
    before = len(os.listdir(directory))  # (what earlier tests' values still hold)
    gc.disable()
    try:
        for _ in range(RUNS):
            run_cell(shell, "%parrun --force --workers 2 --no-widget")
            assert shell.user_ns["whole"].shape == (2**20,) and "boom" not in shell.user_ns
            files.append(len(os.listdir(directory)))
            rss.append(me.memory_info().rss / MIB)
            pool = process._pools.get(2)
            if pool is not None:
                pools.append(weakref.ref(pool))
            del pool
    finally:
        gc.enable()
    # The namespace's arrays live on 3 files (whole, and fanned's 2 slices,
    # merged into one list of arrays that stay on their pages).
    assert files[-1] <= files[0] <= before + 3, f"shared files before the runs: {before}, after each: {files}"
    assert rss[-1] - rss[1] < 16, f"kernel RSS (MiB) after each run: {[round(r) for r in rss]}"
    alive = [ref for ref in pools[:-1] if ref() is not None and ref() is not process._pools.get(2)]
    assert not alive, f"{len(alive)} of {len(pools) - 1} replaced loky pools still alive"


class _Run:
    def report(self, kind: str, step: str, index: int | None, payload: object) -> None:
        self.got = (kind, step)


def test_a_run_that_reuses_a_freed_runs_id_gets_its_workers_messages():
    """Runs are freed as soon as they end, so the next one often gets the
    same id: the new run must get a route of its own (the dead one's
    dropped its messages: no start, so no timeout enforced by the kernel,
    no live output), and the dead run's late messages must not reach it."""
    backend = process.ProcessBackend(1)
    try:
        first = backend.open_run(_Run().report)
        old = first.token  # type: ignore[attr-defined]
        address = id(first)
        backend.close_run(first)
        del first
        for _ in range(1000):  # the allocator hands the freed block out again
            receiver = _Run()
            second = backend.open_run(receiver.report)
            if id(second) == address:
                break
            backend.close_run(second)
        else:
            pytest.skip("no run got the freed run's id")
        token = second.token  # type: ignore[attr-defined]
        assert token != old and process._routes.get(token) is second
        process._dispatch((old, "start", "s", None, None))
        assert not hasattr(receiver, "got")
        process._dispatch((token, "start", "s", None, None))
        assert receiver.got == ("start", "s")
        backend.close_run(second)
        process._dispatch((token, "start", "t", None, None))  # a late line of a closed run drops
        assert receiver.got == ("start", "s")
    finally:
        backend.shutdown()
