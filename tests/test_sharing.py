"""Large arrays cross to and from worker processes through shared files, not
pickles (nbpar/sharing.py): no copy on either side, private to each step,
and every file gone once no live array needs it, after crashes and cancels
too. Real process pool, `nbpar.Pipeline`."""

from __future__ import annotations

import _thread
import gc
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

import nbpar
from nbpar import Pipeline, RunError, sharing

np = pytest.importorskip("numpy")
psutil = pytest.importorskip("psutil")

MB = 2**20
WORKERS = 2  # one pool size for every test: no pool restarts between them


def files() -> set[str]:
    folder = sharing.directory()
    return {os.path.join(folder, name) for name in os.listdir(folder)}


def backing(values: Iterable[Any]) -> set[str]:
    return {path for v in values if (path := sharing.backing_file(v)) is not None}


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def arrays(p: Pipeline) -> list[Any]:
    return [v for v in p.namespace.values() if isinstance(v, np.ndarray)]


def assert_only_its_arrays_files_left(p: Pipeline, before: set[str]) -> None:
    """Of the files made since `before`, soon only those backing an array in `p`'s namespace are left."""
    needed = backing(arrays(p))
    assert eventually(lambda: files() - before <= needed), (files() - before, needed)


def test_an_array_goes_to_readers_by_reference_without_a_copy():
    sharing.reset_stats()
    p = Pipeline({"np": np})
    p.add_step("make", "a = np.arange(8 * 2**20, dtype=np.float64)")  # 64 MB
    for k in range(3):
        p.add_step(
            f"read{k}",
            f"from nbpar import sharing\n"
            f"s{k} = float(a[{k}::3].sum())\n"
            f"shared{k} = sharing.backing_file(a)\n"
            f"writable{k} = a.flags.writeable",
        )
    p.add_step("join", "total = s0 + s1 + s2")
    assert p.run(workers=WORKERS).ok
    ns = p.namespace
    expected = float(np.arange(8 * MB, dtype=np.float64).sum())
    assert ns["total"] == expected
    a = ns["a"]
    path = sharing.backing_file(a)
    assert path is not None and os.path.dirname(path) == sharing.directory()
    for k in range(3):  # each reader had the array on the kernel's file, mapped, not unpickled
        assert ns[f"shared{k}"] == path and ns[f"writable{k}"] is True
    counts = sharing.stats()
    print("kernel counters:", counts)
    assert counts["written"] == 0  # the worker wrote it once; the kernel forwarded that file
    assert counts["forwarded"] >= 3 * a.nbytes
    assert counts["inband"] < 1 * MB  # the pickles themselves stay small
    assert a.flags.writeable and not a.flags.owndata
    a[0] = 1.0  # the kernel's array is an ordinary (private copy-on-write) array
    del a


def test_slices_of_a_shared_array_go_by_reference():
    sharing.reset_stats()
    p = Pipeline({"np": np})
    p.add_step("make", "a = np.arange(4 * 2**20, dtype=np.float64)")  # 32 MB
    p.add_step(
        "double",
        "from nbpar import sharing\nb = a * 2\non_file = [sharing.backing_file(a) is not None]",
        over="a",
        slices=4,
    )
    assert p.run(workers=WORKERS).ok
    ns = p.namespace
    assert np.array_equal(ns["b"], np.arange(4 * MB, dtype=np.float64) * 2)
    assert ns["on_file"] == [True] * 4
    counts = sharing.stats()
    assert counts["written"] == 0 and counts["forwarded"] == ns["a"].nbytes  # each slice: a piece of a's file


def test_changes_in_place_are_new_versions_and_leave_the_ones_they_changed():
    n = 2 * MB  # 16 MB
    p = Pipeline({"np": np, "n": n, "x": np.ones(n)})  # x: a kernel array
    p.add_step("make", "y = np.ones(n)")  # y: made in a worker, on a shared file
    p.add_step("mutate", "x[:] = -1\ny[:] = -1\nmutated = float(x.sum() + y.sum())\nz = y")
    p.add_step("sibling", "seen = (float(x.sum()), float(y.sum()))", after=["mutate"])
    assert p.run(workers=WORKERS).ok
    ns = p.namespace
    assert ns["mutated"] == -2 * n
    assert ns["seen"] == (-n, -n)  # the step below reads mutate's versions, as top to bottom
    assert float(ns["x"].sum()) == -n and float(ns["y"].sum()) == -n and float(ns["z"].sum()) == -n  # mutate's
    assert float(p.version("make", "y").sum()) == n  # make's version, on its file, is untouched
    assert sharing.backing_file(ns["y"]) != sharing.backing_file(p.version("make", "y"))

    # changed in the kernel: the next step sees the change, not the file's old bytes
    ns["y"][5] = 7.0
    p.add_step("again", "fifth = float(y[5])")
    assert p.run(["again"], workers=WORKERS).ok
    assert ns["fifth"] == 7.0


def test_a_dataframe_round_trips_on_shared_files():
    pd = pytest.importorskip("pandas")
    n = 300_000
    df = pd.DataFrame({"a": np.arange(n, dtype=np.float64), "b": np.ones(n), "c": np.arange(n)})
    p = Pipeline({"df": df})
    p.add_step(
        "double",
        "from nbpar import sharing\n"
        "doubled = df * 2\n"
        "total = int(df['c'].sum())\n"
        "shared = sharing.backing_file(df['a'].to_numpy())",
    )
    assert p.run(workers=WORKERS).ok
    ns = p.namespace
    pd.testing.assert_frame_equal(ns["doubled"], df * 2)
    assert ns["total"] == int(df["c"].sum())
    assert ns["shared"] is not None  # the frame's float block was mapped in the worker
    assert sharing.backing_file(ns["doubled"]["a"].to_numpy()) is not None


def test_small_arrays_stay_in_the_pickle():
    sharing.reset_stats()
    p = Pipeline({"np": np, "small": np.arange(1000.0)})
    p.add_step("twice", f"bigger = small * 2\nunder = np.zeros({sharing.THRESHOLD // 8 - 1})")
    before = files()
    assert p.run(workers=WORKERS).ok
    assert float(p.namespace["bigger"].sum()) == 2 * float(np.arange(1000.0).sum())
    assert sharing.backing_file(p.namespace["bigger"]) is None
    assert sharing.backing_file(p.namespace["under"]) is None
    counts = sharing.stats()
    assert counts["written"] == counts["mapped"] == counts["forwarded"] == 0
    assert files() <= before


def test_files_go_when_no_array_needs_them():
    before = files()
    p = Pipeline({"np": np, "kernel_array": np.ones(2 * MB)})
    p.add_step("make", "a = np.ones(2 * 2**20)")
    p.add_step("use", "b = a + kernel_array\nc = kernel_array[: 2**20]")
    assert p.run(workers=WORKERS).ok
    # the kernel array was written for the run, and is gone with it
    new = files() - before
    assert new == backing(arrays(p)), (new, backing(arrays(p)))
    a_file = sharing.backing_file(p.namespace["a"])
    del p.namespace["a"]
    assert a_file in files()  # the steps' records (what they read and wrote) still hold it
    p.forget("make")
    p.forget("use")
    assert eventually(lambda: a_file not in files())
    del p
    assert eventually(lambda: files() <= before), files() - before


def test_files_go_after_a_worker_dies_while_sending_them():
    """A worker killed halfway through writing its outputs: what it wrote goes."""
    before = files()
    p = Pipeline({"np": np})
    p.add_step("make", "a = np.ones(2 * 2**20)")
    p.add_step(
        "dies",
        "import os\n"
        "class Bomb:\n"
        "    def __reduce__(self):\n"
        "        os._exit(3)\n"
        "big = a * 2\n"  # pickled (written to a file) before `zbomb`
        "zbomb = Bomb()",
    )
    with pytest.raises(RunError) as info:
        p.run(workers=WORKERS)
    assert "exited with code 3" in (info.value.result.steps["dies"].error or "")
    assert_only_its_arrays_files_left(p, before)
    del p, info  # the traceback's frames hold the pipeline
    assert eventually(lambda: files() <= before), files() - before


def test_files_go_after_a_worker_crashes_mid_step():
    before = files()
    p = Pipeline({"np": np, "kernel_array": np.ones(2 * MB)})
    p.add_step("make", "a = np.ones(2 * 2**20)")
    p.add_step("crash", "import os\ns = float(a.sum() + kernel_array.sum())\nos._exit(4)")
    with pytest.raises(RunError):
        p.run(workers=WORKERS)
    assert_only_its_arrays_files_left(p, before)
    del p
    assert eventually(lambda: files() <= before), files() - before


def test_files_go_after_a_cancelled_run():
    before = files()
    p = Pipeline({"np": np, "kernel_array": np.ones(2 * MB)})
    p.add_step("make", "a = np.ones(2 * 2**20)")
    for k in range(2):
        p.add_step(f"slow{k}", f"import time\nb{k} = a + kernel_array\ntime.sleep(30)")
    run = p.start(workers=WORKERS)
    deadline = time.monotonic() + 20
    while run.result.steps["slow0"].status != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    run.cancel()
    result = run.wait(timeout=20, check=False)
    assert result.cancelled
    assert_only_its_arrays_files_left(p, before)
    del p, run
    assert eventually(lambda: files() <= before), files() - before


def test_files_go_after_an_interrupted_run():
    """The stop button (Ctrl-C) in the middle of a blocking run."""
    before = files()
    p = Pipeline({"np": np, "kernel_array": np.ones(2 * MB)})
    p.add_step("make", "a = np.ones(2 * 2**20)")
    p.add_step("slow", "import time\nb = a + kernel_array\ntime.sleep(30)")

    def press_stop() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            run = nbpar.last_run()
            if run is not None and "slow" in run.steps and run.steps["slow"].status == "running":
                break
            time.sleep(0.02)
        _thread.interrupt_main()

    threading.Thread(target=press_stop, daemon=True).start()
    with pytest.raises(RunError) as info:
        p.run(workers=WORKERS)
    assert info.value.result.interrupted
    del info
    assert_only_its_arrays_files_left(p, before)
    del p
    assert eventually(lambda: files() <= before), files() - before


def _anon_kb(pid: int) -> int:
    """Private anonymous memory of a process (heap copies; not the shared files' pages)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _footprint() -> tuple[int, int, int]:
    """(anonymous memory of the kernel and its workers, bytes of shared
    files, their RSS as the OS counts it), all in bytes."""
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    anon = sum(_anon_kb(p.pid) for p in procs) * 1024
    folder = sharing.directory()
    shared = 0
    for name in os.listdir(folder):
        try:
            shared += os.stat(os.path.join(folder, name)).st_blocks * 512
        except OSError:
            pass
    rss = 0
    for proc in procs:
        try:
            rss += proc.memory_info().rss
        except psutil.Error:
            pass
    return anon, shared, rss


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_memory_of_a_run_stays_near_one_copy():
    size = 200 * MB
    p = Pipeline({"np": np, "n": size // 8})
    p.add_step("make", "a = np.arange(n, dtype=np.float64)")
    for k in range(4):
        p.add_step(f"read{k}", f"s{k} = float(a.sum()) + {k}")
    p.add_step("join", "total = s0 + s1 + s2 + s3")
    nbpar.pmap(abs, range(WORKERS), workers=WORKERS)  # the pool is warm
    gc.collect()
    base_anon, base_shared, base_rss = _footprint()
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            anon, shared, _ = _footprint()
            peak[0] = max(peak[0], anon - base_anon + shared - base_shared)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        assert p.run(workers=WORKERS).ok
    finally:
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    anon, shared, rss = _footprint()
    after = anon - base_anon + shared - base_shared
    print(
        f"\n200 MB array -> 4 readers -> join in {wall:.2f}s: memory beyond the idle pool: peak "
        f"{peak[0] / MB:.0f} MB, after the run {after / MB:.0f} MB ({(anon - base_anon) / MB:.0f} MB "
        f"private + {(shared - base_shared) / MB:.0f} MB shared files); RSS as the OS sums it "
        f"{(rss - base_rss) / MB:.0f} MB (shared pages counted once per process mapping them)"
    )
    assert p.namespace["total"] == 4 * float(np.arange(size // 8, dtype=np.float64).sum()) + 6
    assert after < 1.5 * size
    assert peak[0] < 3 * size


def test_reset_ends_runs_and_flights_and_keeps_what_arrays_live_on():
    """sharing.reset(): the state of a fresh process, between tests. A run's
    written file and a flight's file go; a file an array is mapped from stays
    while the array lives (and goes with it); counters are zero."""

    class Run:  # a run is any object; a weak-referenceable one here
        pass

    run, other, kept = Run(), Run(), np.arange(2 * MB, dtype=np.uint8)
    before = files()
    sharing.dumps(np.ones(2 * MB), run=run)  # written for the run, pinned by it
    token = sharing.new_token()
    folder, _ = sharing.reply_to(token)
    flight = os.path.join(folder, f"o{token}-{os.getpid()}-0.buf")
    with open(flight, "wb") as f:  # what a worker of that flight wrote
        f.write(b"x")
    mapped = sharing.loads(sharing.dumps(kept, run=other))  # on a file of its own, mapped here
    mapped_file = sharing.backing_file(mapped)
    assert mapped_file is not None and len(files() - before) == 3
    sharing.reset()
    assert files() - before == {mapped_file}
    assert set(sharing.stats().values()) == {0}
    del mapped
    assert eventually(lambda: files() <= before)
