"""`%parrun --background`: the kernel stays free while the run goes on."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from IPython.core.error import UsageError

import nbpar
from nbpar.errors import RunError
from nbpar.pipeline import RunHandle

from .conftest import run_cell, run_cells

SLOW = "import time\ntime.sleep({s})\n"
# A step that its timeout's alarm cannot reach: the kernel kills its worker.
BLOCKED_ALARM = "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\ntime.sleep(5)"


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_background_run_returns_at_once_and_fills_the_namespace(shell, capsys, backend):
    run_cells(
        shell,
        "%%step quick\nquick = 1",
        f"%%step slow\n{SLOW.format(s=1.0)}slow = 2",
        "%%step last\nlast = quick + slow",
        f"%parrun --background --backend {backend} --workers 2",
    )
    assert "running in the background" in capsys.readouterr().out
    assert "last" not in shell.user_ns
    run_cells(shell, "busy_meanwhile = sum(range(1000))")  # the kernel is free
    deadline = time.time() + 10
    steps = nbpar.last_run().steps
    while (steps["slow"].status, steps["quick"].status) != ("running", "done") and time.time() < deadline:
        time.sleep(0.05)
    assert shell.user_ns["quick"] == 1 and "last" not in shell.user_ns  # step by step
    run_cells(shell, "%parstatus")
    status = capsys.readouterr().out
    assert "run going on" in status and "running  slow" in status
    with pytest.raises(UsageError, match="a run is going on .*%parwait.*%parcancel"):
        shell.run_line_magic("parrun", "--backend thread")
    run_cells(shell, "%parwait")
    out = capsys.readouterr().out
    assert "done    last" in out  # the text display's lines, shown by %parwait
    assert shell.user_ns["last"] == 3 and nbpar.last_run().ok


def test_parwait_raises_the_error_of_a_failed_background_run(shell, capsys):
    run_cells(shell, "%%step bad\nboom = 1 / 0", "%parrun --background --backend thread")
    result = run_cell(shell, "%parwait")
    shown = capsys.readouterr().out
    assert isinstance(result.error_in_exec, RunError), shown
    assert 'File "<step bad>", line 2' in shown
    assert "boom" not in shell.user_ns


def test_parcancel_stops_the_run(shell, capsys):
    run_cells(
        shell,
        "%%step quick\nquick = 1",
        f"%%step slow --after quick\n{SLOW.format(s=30)}slow = 2",
        "%parrun --background --workers 2",
    )
    deadline = time.time() + 20
    steps = nbpar.last_run().steps
    while (steps["slow"].status, steps["quick"].status) != ("running", "done") and time.time() < deadline:
        time.sleep(0.05)
    run_cells(shell, "%parcancel")
    out = capsys.readouterr().out
    assert "run cancelled; 1 steps cancelled: slow" in out
    run = nbpar.last_run()
    assert run.cancelled and run.steps["slow"].status == "cancelled" and run.steps["quick"].status == "done"
    assert "slow" not in shell.user_ns and shell.user_ns["quick"] == 1
    result = run_cell(shell, "%parwait")
    assert isinstance(result.error_in_exec, RunError)  # as a blocking run would have ended
    run_cells(shell, "%parrun quick --backend thread")  # and a new run can start


def test_parwait_timeout_and_nothing_to_wait_for(shell, capsys):
    run_cells(shell, "%parwait")
    assert "no background run" in capsys.readouterr().out
    run_cells(shell, f"%%step slow\n{SLOW.format(s=1.0)}slow = 2", "%parrun --background --backend thread")
    with pytest.raises(UsageError, match="still going after 0.1s; it goes on"):
        shell.run_line_magic("parwait", "--timeout 0.1")
    run_cells(shell, "%parwait")
    assert shell.user_ns["slow"] == 2


def test_parstatus_before_any_run(shell, capsys):
    nbpar.pipeline._last_run = None
    run_cells(shell, "%parstatus", "%parcancel")
    out = capsys.readouterr().out
    assert "no run yet" in out and "no run is going on" in out


def test_the_monitors_cancel_button_stops_a_background_run():
    from nbpar import Pipeline
    from nbpar.ui.monitor import Monitor

    runs = []
    monitor = Monitor(on_cancel=lambda: runs[0].cancel())
    p = Pipeline()
    p.add_step("slow", "import time\ntime.sleep(30)\nx = 1")
    runs.append(p.start(backend="process", workers=1, listeners=[monitor]))
    deadline = time.time() + 20
    while runs[0].result.steps["slow"].status != "running" and time.time() < deadline:
        time.sleep(0.05)
    monitor.cancel_button.click()
    result = runs[0].wait(timeout=20, check=False)
    assert result.cancelled and result.steps["slow"].status == "cancelled" and "x" not in p.namespace
    assert monitor.cancel_button.disabled


def _interrupt_main_thread_in(seconds: float) -> threading.Timer:
    """A real Ctrl-C: SIGINT delivered to the main thread while it waits."""
    timer = threading.Timer(seconds, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    return timer


def _wait_until_running(*names: str) -> None:
    deadline = time.time() + 20
    last = nbpar.last_run()
    assert last is not None
    steps = last.steps
    while any(steps[n].status != "running" for n in names) and time.time() < deadline:
        time.sleep(0.05)


def test_ctrl_c_in_parwait_stops_that_wait_only(shell, capsys):
    run_cells(shell, f"%%step slow\n{SLOW.format(s=3)}slow = 2", "%parrun --background --backend thread")
    _wait_until_running("slow")
    _interrupt_main_thread_in(0.3)
    run_cells(shell, "%parwait")
    assert "stopped waiting; the run goes on" in capsys.readouterr().out
    assert shell.user_ns.get("slow") is None and nbpar.last_run().end is None
    run_cells(shell, "%parwait")  # waits again, and shows how the run ended
    assert "done    slow" in capsys.readouterr().out
    assert shell.user_ns["slow"] == 2 and nbpar.last_run().ok


def test_parcancel_after_ctrl_c_in_parwait_counts_the_cancelled_steps(shell, capsys):
    run_cells(
        shell,
        f"%%step one\n{SLOW.format(s=30)}one = 1",
        f"%%step two\n{SLOW.format(s=30)}two = 2",
        "%parrun --background --workers 2",
    )
    _wait_until_running("one", "two")
    _interrupt_main_thread_in(0.3)
    run_cells(shell, "%parwait")
    run_cells(shell, "%parcancel")
    assert "run cancelled; 2 steps cancelled: one, two" in capsys.readouterr().out
    assert nbpar.last_run().by_status("cancelled") == ["one", "two"]


def test_a_step_forgotten_while_it_runs_frees_its_output_when_the_run_ends(shell):
    from nbpar import sharing

    def shared_files() -> set[str]:
        return set(os.listdir(sharing.directory()))

    before = shared_files()
    run_cells(
        shell,
        "import numpy as np",
        f"%%step big\n{SLOW.format(s=1.0)}big = np.ones(2**21)",  # 16 MiB: a file in the shared folder
        "%parrun --background --workers 1",
    )
    _wait_until_running("big")
    run_cells(shell, "%parforget big", "%parwait")
    made = shared_files() - before
    assert shell.user_ns["big"].sum() == 2**21 and len(made) == 1  # its output stays in the namespace
    run_cells(shell, "del big")
    assert shared_files() - before == set()  # nbpar keeps nothing of it: freed at once, without gc
    assert "big" not in shell.magics_manager.registry["NbparMagics"].pipeline._durations  # (nor its timing)


@pytest.fixture
def no_pool_after() -> Iterator[None]:
    """Stop the pools a test made of other sizes: later tests expect the pool of their own."""
    from nbpar.backends import process

    yield
    process.stop_pool()


def _slow_pipeline(seconds: float) -> nbpar.Pipeline:
    p = nbpar.Pipeline()
    p.add_step("slow", f"{SLOW.format(s=seconds)}slow = 1")
    return p


def test_pmap_with_another_worker_count_leaves_a_background_runs_pool_alone(no_pool_after):
    from nbpar.backends import process

    run = _slow_pipeline(2.0).start(backend="process", workers=2)
    deadline = time.time() + 20
    while run.result.steps["slow"].status != "running" and time.time() < deadline:
        time.sleep(0.05)
    assert nbpar.pmap(abs, [-1, -2, -3], workers=3) == [1, 2, 3]  # a pool of 3 beside the run's pool of 2
    result = run.wait(timeout=20, check=False)
    assert result.ok, result.steps["slow"].error
    assert list(process._pools) == [3]  # the size asked for last stays warm; the other went once unused


def test_cancelling_a_run_stops_only_its_own_pool(no_pool_after):
    first = _slow_pipeline(2.0).start(backend="process", workers=2)
    second = _slow_pipeline(30).start(backend="process", workers=1)
    deadline = time.time() + 20
    statuses = {"waiting"}
    while statuses & {"waiting", "queued"} and time.time() < deadline:
        time.sleep(0.05)
        statuses = {first.result.steps["slow"].status, second.result.steps["slow"].status}
    assert statuses == {"running"}, statuses  # starting the second run left the first one's pool alone
    second.cancel()
    assert second.wait(timeout=20, check=False).cancelled
    result = first.wait(timeout=20, check=False)
    assert result.ok, result.steps["slow"].error


def _until_running(*runs: RunHandle) -> None:
    deadline = time.time() + 20
    while any(r.result.steps["slow"].status != "running" for r in runs) and time.time() < deadline:
        time.sleep(0.05)
    assert all(r.result.steps["slow"].status == "running" for r in runs)


def _once_exists(path: str, action: Callable[[], object]) -> None:
    """Do `action` in a thread as soon as the file `path` exists (a worker
    made it: the step that makes it has started)."""

    def wait() -> None:
        deadline = time.time() + 30
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.02)
        action()

    threading.Thread(target=wait, daemon=True).start()


@pytest.mark.parametrize("cancelled", ["first", "second"])
def test_cancelling_a_run_leaves_a_run_of_the_same_size_alone(no_pool_after, cancelled):
    """Two runs on 2 workers at once: one holds the shared pool, the other
    gets a pool of its own (it used to share it: cancelling one killed the
    other's steps with ShutdownExecutorError); the own pool goes with its
    run, the shared one stays warm unless its run was the one cancelled."""
    from nbpar.backends import process

    from .test_faults import worker_pids

    runs = {"first": _slow_pipeline(3.0).start(backend="process", workers=2)}
    runs["second"] = _slow_pipeline(3.0).start(backend="process", workers=2)
    _until_running(*runs.values())
    runs[cancelled].cancel()
    assert runs[cancelled].wait(timeout=20, check=False).cancelled
    other = runs["second" if cancelled == "first" else "first"]
    result = other.wait(timeout=20, check=False)
    assert result.ok, result.steps["slow"].error
    assert process._holders == {} and set(process._pools) <= {2}  # no run holds a pool once ended
    deadline = time.time() + 10
    while len(worker_pids()) > 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(worker_pids()) <= 2  # the pool of the run's own is gone (the shared one of 2 may stay)


@pytest.mark.parametrize(
    "fault, options",
    [
        ("import os\nos._exit(3)", {}),
        (BLOCKED_ALARM, {"timeout": 0.5}),
    ],
    ids=["crash", "timeout-kill"],
)
def test_a_worker_dying_in_one_run_leaves_a_run_of_the_same_size_alone(no_pool_after, fault, options):
    """A worker that dies breaks its whole pool: it used to fail the steps
    of a concurrent run on the same pool too, blamed on them ("the worker
    process running step 'slow' died")."""
    background = _slow_pipeline(3.0).start(backend="process", workers=2)
    _until_running(background)
    p = nbpar.Pipeline()
    p.add_step("faulty", f"{fault}\nvalue = 1")
    assert p.run(workers=2, check=False, **options).steps["faulty"].status == "failed"
    result = background.wait(timeout=20, check=False)
    assert result.ok, result.steps["slow"].error
    assert background.result.steps["slow"].status == "done"


def test_a_crash_in_pmap_leaves_a_background_run_of_the_same_size_alone(no_pool_after):
    background = _slow_pipeline(3.0).start(backend="process", workers=2)
    _until_running(background)

    def crash(x: int) -> int:
        os._exit(3)

    with pytest.raises(RunError, match="exited with code 3"):
        nbpar.pmap(crash, [1], workers=2)
    result = background.wait(timeout=20, check=False)
    assert result.ok, result.steps["slow"].error


def test_cancelling_a_background_run_leaves_a_pmap_of_the_same_size_alone(no_pool_after, tmp_path):
    background = _slow_pipeline(30).start(backend="process", workers=2)
    _until_running(background)
    started = str(tmp_path / "started")

    def slow_double(x: int) -> int:
        open(started, "w").close()
        time.sleep(1)
        return 2 * x

    _once_exists(started, background.cancel)  # while pmap's items run
    assert nbpar.pmap(slow_double, range(4), workers=2) == [0, 2, 4, 6]
    assert background.wait(timeout=20, check=False).cancelled


def test_ctrl_c_in_pmap_leaves_a_background_run_of_the_same_size_alone(no_pool_after, tmp_path):
    background = _slow_pipeline(3.0).start(backend="process", workers=2)
    _until_running(background)
    started = str(tmp_path / "started")

    def slow(x: int) -> int:
        open(started, "w").close()
        time.sleep(30)
        return x

    _once_exists(started, lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGINT))
    with pytest.raises(RunError) as stopped:
        nbpar.pmap(slow, range(2), workers=2)
    assert stopped.value.result.interrupted
    result = background.wait(timeout=20, check=False)
    assert result.ok, result.steps["slow"].error


def test_a_run_keeps_its_pool_between_its_steps(no_pool_after, tmp_path):
    """Between two process steps of a run (here: while a thread step runs)
    nothing is in flight on the run's pool: a pmap of another size then used
    to retire it, and the run's next step started a cold pool. The run holds
    its pool until it ends."""
    from nbpar.backends import process

    gate = tmp_path / "gate"
    p = nbpar.Pipeline({"gate": str(gate)})
    p.add_step("a", "import os\na = os.getpid()")
    p.add_step("t", "import os, time\nwhile not os.path.exists(gate):\n    time.sleep(0.02)\nt = a", backend="thread")
    p.add_step("b", "import os\nb = os.getpid() + 0 * t")
    run = p.start(backend="process", workers=2)
    deadline = time.time() + 20
    while run.result.steps["t"].status != "running" and time.time() < deadline:
        time.sleep(0.05)
    workers = set(process._pools[2]._processes)  # the run's pool, idle
    assert nbpar.pmap(abs, [-1], workers=3) == [1]
    gate.touch()
    result = run.wait(timeout=20, check=False)
    assert result.ok, result.steps
    assert p.namespace["b"] in workers


def test_ctrl_c_in_parcancel_of_a_step_that_cannot_be_stopped_at_once(shell, capsys):
    # an inline step in a background run runs in the run's thread: it stops when it returns
    run_cells(shell, f"%%step slow --backend inline\n{SLOW.format(s=2)}slow = 2", "%parrun --background")
    _wait_until_running("slow")
    _interrupt_main_thread_in(0.3)
    run_cells(shell, "%parcancel")
    assert "stopped waiting; the run is cancelled and ends when slow stops (%parwait waits)" in capsys.readouterr().out
    result = run_cell(shell, "%parwait")
    assert isinstance(result.error_in_exec, RunError) and nbpar.last_run().cancelled


def test_a_pipelines_shutdown_leaves_another_pipelines_run_and_pool_alone(no_pool_after):
    import gc

    import psutil

    from nbpar.backends import process

    other = nbpar.Pipeline()
    other.add_step("tiny", "tiny = 1")
    other.run(backend="process", workers=2)  # `other` has a process backend of its own now
    mine = _slow_pipeline(2.0)
    run = mine.start(backend="process", workers=2)
    _until_running(run)
    other.shutdown()  # stopped every pool before, the run's included: ShutdownExecutorError
    result = run.wait(timeout=20, check=False)
    assert result.ok, result.steps["slow"].error
    assert run.result.steps["slow"].attempts == 1
    assert process._pools, "the shared pool went with another pipeline's shutdown"

    del other
    gc.collect()  # (pipelines of earlier tests that nobody holds any more)
    still = len(process._open) - 1  # open pipelines beside `mine`
    mine.shutdown()
    assert bool(process._pools) == bool(still), "the shared pool stays while, and only while, a pipeline is open"
    if not still:  # the last pipeline on processes: no worker is left
        workers = [c for c in psutil.Process().children() if "popen_loky_posix" in " ".join(c.cmdline())]
        assert not psutil.wait_procs(workers, timeout=5)[1]
