"""Things that go wrong beyond a raising step: values that cannot cross to a
process, workers that die, the user pressing stop. Each leaves a clear
message naming the step or variable and the namespace intact."""

from __future__ import annotations

import _thread
import threading

import pytest

import nbpar
from nbpar import Pipeline, PlanError, RunError, sharing

from .conftest import run_cell, run_cells


def test_unpicklable_input_refuses_the_run_before_anything_runs():
    """Checked when the run starts (as Kedro's ParallelRunner does), not when
    the step is dispatched after its upstream steps ran."""
    p = Pipeline({"lock": threading.Lock(), "n": 3})
    p.add_step("first", "import time\ntime.sleep(0.2)\nother = n")
    p.add_step("uses_lock", "held = lock.locked() or other")
    with pytest.raises(PlanError) as info:
        p.run(backend="process", workers=1)
    assert str(info.value).startswith("step 'uses_lock' reads `lock` (lock), which cannot be sent to a worker process")
    assert "--backend thread" in str(info.value)
    assert "other" not in p.namespace and "held" not in p.namespace  # nothing ran
    # on threads the same step works: nothing is pickled; so does a thread step in a process run
    assert p.run(backend="thread").ok and p.namespace["held"] == 3
    p.add_step("uses_lock", "held = lock.locked() or other", backend="thread")
    assert p.run(backend="process", workers=1, force=True).ok


def test_upfront_check_leaves_large_arrays_out():
    """The check pickles each notebook input once, without its large buffers."""
    np = pytest.importorskip("numpy")
    big = np.ones(64 << 20, dtype=np.uint8)
    p = Pipeline({"big": big, "small": [1, 2]})
    p.add_step("a", "x = int(big[0]) + len(small)")
    p.add_step("b", "y = int(big[-1]) + len(small)")
    sharing.reset_stats()
    p.run(backend="process", workers=1)
    assert p.namespace["x"] == p.namespace["y"] == 3
    assert sharing.stats()["written"] == big.nbytes  # the array went to a shared file once, not copied to check it
    assert 0 < sharing.stats()["checked"] < 1 << 20  # checked (both inputs), the array's bytes left out


def test_unpicklable_output_names_the_variable():
    p = Pipeline()
    p.add_step("makes_lock", "import threading\nguard = threading.Lock()\ncount = 1")
    with pytest.raises(RunError) as info:
        p.run(backend="process", workers=1)
    error = info.value.result.steps["makes_lock"].error
    assert "step 'makes_lock' writes `guard` (lock)" in error
    assert "`_guard`" in error
    assert "guard" not in p.namespace and "count" not in p.namespace


@pytest.mark.parametrize("where", ["step", "slice"])
def test_an_output_that_cannot_be_pickled_is_not_retried(where):
    """Pickling an output fails the same way on every attempt: --retries
    does not run the step again, and the error says why."""
    p = Pipeline({"rows": [1, 2]})
    over = {"over": "rows", "slices": 2} if where == "slice" else {}
    p.add_step("gen", "import time\ntime.sleep(0.01)\nvalues = (r for r in rows)", retries=3, **over)
    with pytest.raises(RunError) as info:
        p.run(backend="process", workers=1)
    record = info.value.result.steps["gen"]
    assert record.attempts == 1 if where == "step" else max(s.attempts for s in record.slices) == 1
    assert "writes `values` (generator)" in record.error
    assert "not retried: this failure would come again on every attempt" in record.error
    assert "retrying" not in record.output


def test_crashing_worker_is_named_and_innocent_steps_are_rerun():
    p = Pipeline()
    p.add_step("crash", "import os, time\ntime.sleep(0.5)\nos._exit(7)")
    p.add_step("innocent", "import time\ntime.sleep(1.0)\nsurvived = True")
    p.add_step("later", "after = survived")
    with pytest.raises(RunError) as info:
        p.run(backend="process", workers=2)
    result = info.value.result
    assert result.steps["crash"].status == "failed"
    assert "The worker process (pid " in result.steps["crash"].error
    assert "running step 'crash' died" in result.steps["crash"].error
    assert "exited with code 7" in result.steps["crash"].error
    assert result.steps["innocent"].status == "done" and result.steps["innocent"].attempts == 2
    assert p.namespace["after"] is True
    # the pool is usable again
    p.add_step("crash", "fine = 1")
    assert p.run(backend="process", workers=2).ok


def test_lone_crashing_step_fails_at_once():
    p = Pipeline()
    p.add_step("crash", "import os\nos._exit(1)")
    with pytest.raises(RunError):
        p.run(backend="process", workers=2)
    assert nbpar.last_run().steps["crash"].attempts == 1


def _interrupt_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


@pytest.mark.parametrize("backend", ["process", "thread", "inline"])
def test_interrupt_cancels_the_run_and_keeps_finished_outputs(shell, backend, capsys):
    run_cells(
        shell,
        "%%step quick\nquick = 1",
        "%%step slow --after quick\nimport time\nfor _ in range(40): time.sleep(0.05)\nslow = 2",
        "%%step after_slow\nlast = slow + 1",
    )
    _interrupt_after(0.8)
    result = run_cell(shell, f"%parrun --backend {backend} --workers 2")
    assert isinstance(result.error_in_exec, RunError)
    shown = capsys.readouterr().out
    assert "run interrupted" in shown and "Run %parrun again to resume" in shown
    run = nbpar.last_run()
    assert run.interrupted
    assert run.steps["quick"].status == "done" and shell.user_ns["quick"] == 1
    assert run.steps["slow"].status == "cancelled" and run.steps["after_slow"].status == "cancelled"
    assert "slow" not in shell.user_ns and "last" not in shell.user_ns
    # the next run resumes: quick is up to date, the rest runs
    run_cells(shell, f"%parrun --backend {backend} --workers 2")
    assert nbpar.last_run().steps["quick"].status == "up-to-date"
    assert shell.user_ns["last"] == 3


def test_a_crash_inside_a_chain_names_the_slice_and_spares_the_rest():
    p = Pipeline({"items": list(range(8))})
    p.add_step("features", "import time\ntime.sleep(0.2)\nfeats = [x * 2 for x in items]", over="items", slices=4)
    p.add_step("scores", "import os\nif 8 in feats:\n    os._exit(9)\nscores = [f + 1 for f in feats]", over="feats")
    with pytest.raises(RunError) as info:
        p.run(backend="process", workers=2)
    result = info.value.result
    assert result.steps["features"].status == "done" and p.namespace["feats"] == [x * 2 for x in range(8)]
    assert result.steps["scores"].status == "failed" and "scores" not in p.namespace
    error = result.steps["scores"].error
    assert "slice 2 of step 'scores' failed" in error and "running step 'scores' (slice 2) died" in error


def test_workers_exit_when_their_kernel_dies_without_shutting_down(tmp_path):
    """A kernel killed (OOM, SIGKILL) cannot shut its pool down: its workers
    must not idle on for the pool's hour-long timeout."""
    import signal
    import subprocess
    import sys

    import psutil

    script = tmp_path / "kernel.py"
    script.write_text(
        "import os, sys, time, nbpar\n"
        "p = nbpar.Pipeline()\n"
        "p.add_step('a', 'import os\\npid = os.getpid()')\n"
        "p.run(workers=1)\n"
        "print(p.namespace['pid'], flush=True)\n"
        "time.sleep(60)\n"
    )
    kernel = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = psutil.Process(int(kernel.stdout.readline()))
    kernel.send_signal(signal.SIGKILL)
    kernel.wait()
    worker.wait(timeout=15)  # raises psutil.TimeoutExpired if it lingers
    assert not worker.is_running()


def test_a_warm_up_that_lost_its_pool_to_a_run_leaves_the_runs_pool_alone():
    """The warm-up (started when the extension loads) fills a pool of the CPU
    count; a `--workers 1` run replaces it; the warm-up, refused by the pool
    it had, must not replace the run's pool too (that failed the run's step
    with ShutdownExecutorError)."""
    from nbpar.backends import process

    warm = process._get_pool(2, keep=True)
    runs = process._get_pool(1)
    assert process._get_pool(2, broken=warm, keep=True) is runs
    assert runs.submit(int).result() == 0


def test_a_worker_started_after_its_kernel_died_exits():
    """A pool started as the kernel exits (a warm-up finishing late) has
    workers whose parent is already gone: they exit (within a second), not
    idle for an hour."""
    import subprocess
    import time

    import loky
    from loky.process_executor import TerminatedWorkerError

    from nbpar.worker import init_worker

    gone = subprocess.Popen(["true"])
    gone.wait()  # a kernel that has died
    pool = loky.ProcessPoolExecutor(max_workers=1, initializer=init_worker, initargs=(None, gone.pid))
    try:
        with pytest.raises(TerminatedWorkerError, match="EXIT"):
            pool.submit(time.sleep, 10).result(timeout=8)
    finally:
        pool.shutdown(wait=True, kill_workers=True)


def test_a_worker_crash_is_logged_in_its_own_run_not_the_next(caplog):
    p = Pipeline()
    p.add_step("crash", "import os\nos._exit(3)")
    with caplog.at_level("WARNING", logger="nbpar"):
        assert not p.run(backend="process", workers=1, check=False).ok
        said = [r.getMessage() for r in caplog.records if r.name == "nbpar"]
        assert len(said) == 1 and said[0].startswith("nbpar: a worker process died: "), said
        assert said[0].endswith("; the worker pool is restarted for the steps that run next")
        caplog.clear()
        p.add_step("other", "x = 1")
        assert p.run(["other"], backend="process", workers=1).ok  # the pool is replaced here, silently
        assert [r.getMessage() for r in caplog.records if r.name == "nbpar"] == []
