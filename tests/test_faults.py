"""The fault table: what the user sees, and what is left, when a step goes wrong.

Each row injects one fault into the same small graph::

    fine:    good = 1        (independent; in flight while the fault happens)
    faulty:  the fault       (writes `value` when it works)
    after:   total = (good, value)

and asserts, on every backend where the fault applies:

- the message: the failed step is named, with the row's fragments (the
  exception, the exit code or signal, the variable, what to do);
- the namespace: `fine` wrote its output, `faulty` and `after` wrote nothing,
  what was there before is untouched;
- the pool (process backend): kept (the same worker processes serve on) or
  rebuilt (the old workers are gone, none left behind);
- the next run, after the user fixes the cell: only `faulty` and `after` run.

A notebook input that cannot be pickled (`refused`) stops the run before
anything runs: a PlanError with the same message, nothing written.

Faults of the run as a whole (the stop button, a second %parrun) are rows
further down, driven through the magics in a real shell; %parcancel, %unload_ext
and kernel shutdown with runs in flight are in test_lifecycle.py.
"""

from __future__ import annotations

import _thread
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
from IPython.core.error import UsageError

import nbpar
from nbpar import Pipeline, PlanError, RunError
from nbpar.graph import BackendName

from .conftest import run_cell, run_cells

SLEEPY = "import time\ntime.sleep(0.3)\ngood = 1"


@dataclass
class Fault:
    id: str
    code: str  # the faulty cell
    message: tuple[str, ...]  # in the step's error
    backends: tuple[str, ...] = ("process", "thread", "inline")
    pool: str = "kept"  # or "rebuilt"
    options: dict[str, Any] = field(default_factory=dict)  # of add_step
    inputs: Callable[[], dict[str, Any]] = dict  # the notebook's names
    fix: str = "value = 1"  # the fixed cell
    fix_options: dict[str, Any] = field(default_factory=dict)
    fixed_value: Any = 1
    refused: bool = False  # the run is refused before anything runs (PlanError)


FAULTS = [
    Fault("raises", 'raise ValueError("row 3 is bad")', ("ValueError: row 3 is bad", 'File "<step faulty>", line 1')),
    Fault(
        "slice-raises",
        "value = [10 // (x - 5) for x in items]",
        ("slice 2 (items 4 … 5) of step 'faulty' failed", "ZeroDivisionError"),
        options={"over": "items", "slices": 4},
        inputs=lambda: {"items": list(range(8))},
        fix="value = [x * 2 for x in items]",
        fix_options={"over": "items", "slices": 4},
        fixed_value=[x * 2 for x in range(8)],
    ),
    Fault("memory-error", "value = bytearray(1 << 46)", ("MemoryError",)),
    Fault(  # a broken builtin is the step's error, not nbpar's: put back before nbpar's own code needs it
        "breaks-len",
        "import builtins\nbuiltins.len = None\nvalue = len([1])",
        ("TypeError: 'NoneType' object is not callable", 'File "<step faulty>", line 3'),
    ),
    Fault(
        "os-exit",
        "import os\nos._exit(3)",
        ("running step 'faulty' died", "exited with code 3", "os._exit()"),
        backends=("process",),
        pool="rebuilt",
    ),
    Fault(  # what a worker needs to send a result back, broken by the step: its worker dies, and is replaced
        "breaks-the-worker",
        "import io\nio.BytesIO = None",
        ("running step 'faulty' died", "exited with code 1", "replaced something of a module the worker needs"),
        backends=("process",),
        pool="rebuilt",
        options={"backend": "process"},  # (a store into a module is a process-wide effect: else it runs in the kernel)
    ),
    Fault(
        "sigkill",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        ("running step 'faulty' died", "SIGKILL", "out of memory", "--workers"),
        backends=("process",),
        pool="rebuilt",
    ),
    Fault(
        "segfault",
        "import ctypes\nctypes.string_at(0)",
        ("running step 'faulty' died", "SIGSEGV", 'File "<step faulty>", line 2'),
        backends=("process",),
        pool="rebuilt",
    ),
    Fault(
        "generator-input",
        "value = sum(rows)",
        ("step 'faulty' reads `rows` (generator)", "--backend thread"),
        backends=("process",),
        inputs=lambda: {"rows": (i for i in range(3))},
        fix="value = sum(rows)",
        fix_options={"backend": "thread"},
        fixed_value=3,
        refused=True,
    ),
    Fault(
        "lock-input",
        "value = guard.locked()",
        ("step 'faulty' reads `guard` (lock)", "--backend thread"),
        backends=("process",),
        inputs=lambda: {"guard": threading.Lock()},
        fix="value = guard.locked()",
        fix_options={"backend": "thread"},
        fixed_value=False,
        refused=True,
    ),
    Fault(
        "connection-input",
        'value = db.execute("select 1").fetchone()[0]',
        ("step 'faulty' reads `db` (Connection)", "--backend thread"),
        backends=("process",),
        inputs=lambda: {"db": sqlite3.connect(":memory:", check_same_thread=False)},
        fix='value = db.execute("select 1").fetchone()[0]',
        fix_options={"backend": "thread"},
        refused=True,
    ),
    Fault(
        "file-input",  # a file open for reading would arrive as a copy of its content, not a file
        "value = handle.readable()",
        ("step 'faulty' reads `handle` (TextIOWrapper)", "cannot pickle an open file", "--backend thread"),
        backends=("process",),
        inputs=lambda: {"handle": open(__file__)},
        fix="value = handle.readable()",
        fix_options={"backend": "thread"},
        fixed_value=True,
        refused=True,
    ),
    Fault(
        "file-output",
        "import os\nvalue = open(os.devnull)",
        ("step 'faulty' writes `value` (TextIOWrapper)", "cannot pickle an open file", "--backend thread"),
        backends=("process",),
    ),
    Fault(
        "generator-output",
        "value = (i for i in range(3))",
        ("step 'faulty' writes `value` (generator)", "`_value`", "--backend thread"),
        backends=("process",),
    ),
    Fault(
        "connection-output",
        'import sqlite3\nvalue = sqlite3.connect(":memory:")',
        ("step 'faulty' writes `value` (Connection)", "--backend thread"),
        backends=("process",),
    ),
    Fault(
        "timeout",
        "import time\nfor _ in range(40):\n    time.sleep(0.05)\nvalue = 1",
        ("step 'faulty'", "timeout of 0.5s"),
        options={"timeout": 0.5},
    ),
    Fault(
        "timeout-gil",  # C code holding the GIL: nothing can stop it in time; its late result is not kept
        "import itertools\nvalue = sum(itertools.repeat(1, 3 * 10**8))",
        ("step 'faulty'", "timeout of 0.2s"),
        backends=("thread", "inline"),
        options={"timeout": 0.2},
    ),
    Fault(
        "timeout-ignored",  # the alarm cannot reach the step: the kernel kills its worker
        "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\ntime.sleep(3)\nvalue = 1",
        ("step 'faulty' did not finish within its timeout of 0.5s", "was killed"),
        backends=("process",),
        pool="rebuilt",
        options={"timeout": 0.5},
    ),
]


def worker_pids() -> set[int]:
    """The live loky worker processes of this process."""
    pids = set()
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "popen_loky" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


def gone(pids: set[int], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not pids & worker_pids():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "fault, backend",
    [pytest.param(f, b, id=f"{f.id}-{b}") for f in FAULTS for b in f.backends],
)
def test_fault(fault: Fault, backend: BackendName) -> None:
    sentinel = object()
    p = Pipeline({"before": sentinel, **fault.inputs()})
    p.add_step("fine", SLEEPY)
    code = fault.code if "value =" in fault.code else fault.code + "\nvalue = 1"  # a write for `after` to wait for
    p.add_step("faulty", code, **fault.options)
    p.add_step("after", "total = (good, value)")
    if backend == "process":
        sized = Pipeline()  # a warm pool of the size the run wants (a test before may have left another)
        sized.add_step("size", "x = 1")
        sized.run(backend="process", workers=2)
        before = worker_pids()

    # the message
    if fault.refused:
        with pytest.raises(PlanError) as refusal:
            p.run(backend=backend, workers=2)
        error = str(refusal.value)
    else:
        with pytest.raises(RunError) as info:
            p.run(backend=backend, workers=2)
        result = info.value.result
        error = result.steps["faulty"].error or ""
        assert "--- step 'faulty' failed" in str(info.value)
    for fragment in fault.message:
        assert fragment in error, f"{fragment!r} not in the error:\n{error}"
    assert "nbpar/" not in error.replace("nbpar/tests", ""), f"nbpar's own frames in:\n{error}"

    # the namespace
    if fault.refused:
        assert "good" not in p.namespace  # nothing ran
    else:
        assert [result.steps[s].status for s in ("fine", "faulty", "after")] == ["done", "failed", "skipped"]
        assert p.namespace["good"] == 1
    assert p.namespace["before"] is sentinel
    assert "value" not in p.namespace and "total" not in p.namespace

    # the pool
    if backend == "process":
        if fault.pool == "kept":
            assert worker_pids() == before, "the workers should have served on"
        else:
            assert gone(before), "the old workers should all be gone"

    # the next run, once the cell is fixed
    p.add_step("faulty", fault.fix, **fault.fix_options)
    again = p.run(backend=backend, workers=2)
    statuses = {name: record.status for name, record in again.steps.items()}
    assert statuses == {"fine": "done" if fault.refused else "up-to-date", "faulty": "done", "after": "done"}
    assert p.namespace["total"] == (1, fault.fixed_value)


# -- retries -------------------------------------------------------------------

FLAKY = """import os
_mark = os.path.join(folder, "{name}")
if not os.path.exists(_mark):
    open(_mark, "w").close()
    {fault}
value = 1
"""


@pytest.mark.parametrize("backend", ["process", "thread", "inline"])
def test_a_failed_attempt_is_retried(tmp_path, backend):
    p = Pipeline({"folder": str(tmp_path)})
    p.add_step("flaky", FLAKY.format(name="flaky", fault='raise OSError("the share is busy")'), retries=2)
    result = p.run(backend=backend, workers=2)
    record = result.steps["flaky"]
    assert record.status == "done" and record.attempts == 2 and p.namespace["value"] == 1
    assert "nbpar: attempt 1 of step 'flaky' failed (OSError: the share is busy); retrying" in record.output


def test_a_crashed_step_is_retried_on_a_fresh_worker(tmp_path):
    p = Pipeline({"folder": str(tmp_path)})
    p.add_step("crashy", FLAKY.format(name="crashy", fault="os._exit(5)") + "pid = os.getpid()", retries=1)
    result = p.run(backend="process", workers=2)
    record = result.steps["crashy"]
    assert record.status == "done" and record.attempts == 2
    assert "exited with code 5" in record.output
    assert p.namespace["pid"] in worker_pids()


def test_retries_run_out_and_the_error_says_so():
    p = Pipeline()
    p.add_step("broken", "raise KeyError('id')")
    with pytest.raises(RunError) as info:
        p.run(backend="thread", retries=2)
    record = info.value.result.steps["broken"]
    assert record.attempts == 3 and "(failed 3 attempts; this was the last)" in (record.error or "")
    assert record.output.count("retrying") == 2


def test_only_the_failed_slice_is_retried(tmp_path):
    p = Pipeline({"folder": str(tmp_path), "items": list(range(8))})
    code = (
        "import os\n"
        "if 5 in items and not os.path.exists(os.path.join(folder, 'x')):\n"
        "    open(os.path.join(folder, 'x'), 'w').close()\n"
        "    raise ValueError('once')\n"
        "doubled = [i * 2 for i in items]"
    )
    p.add_step("fan", code, over="items", slices=4, retries=1)
    result = p.run(backend="process", workers=2)
    assert p.namespace["doubled"] == [i * 2 for i in range(8)]
    assert [s.attempts for s in result.steps["fan"].slices] == [1, 1, 2, 1]
    assert result.steps["fan"].attempts == 2


def test_a_timed_out_attempt_is_retried(tmp_path):
    p = Pipeline({"folder": str(tmp_path)})
    p.add_step("slow_once", FLAKY.format(name="slow", fault="import time; time.sleep(5)"))
    result = p.run(backend="process", workers=2, timeout=0.5, retries=1)
    assert result.steps["slow_once"].attempts == 2 and p.namespace["value"] == 1
    assert "timeout of 0.5s" in result.steps["slow_once"].output


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_chain_of_slices_longer_than_the_timeout_is_held_to_each_units_timeout(backend):
    # Each slice of each step takes 0.5 s of a 1 s timeout; one worker runs a
    # slice's chain back to back (2.5 s, past the timeout and the process
    # backend's grace): no unit is past its timeout, nothing is stopped.
    p = Pipeline({"rows": [1, 2]})
    p.add_step("s0", "import time\ntime.sleep(0.5)\nr0 = list(rows)", over="rows", slices=2)
    for i in range(1, 5):
        p.add_step(
            f"s{i}", f"import time\ntime.sleep(0.5)\nr{i} = [x + 1 for x in r{i - 1}]", over=f"r{i - 1}", slices=2
        )
    assert p.plan((), True, 2).chained == {f"s{i}": f"s{i - 1}" for i in range(1, 5)}
    result = p.run(backend=backend, workers=2, timeout=1)
    assert result.ok and p.namespace["r4"] == [5, 6]


# -- steps that need the kernel -------------------------------------------------


def test_a_step_using_ipython_runs_in_the_kernel(shell, capsys):
    run_cells(
        shell,
        "%%step shell_out\nfiles = !echo a b\nwho = get_ipython().__class__.__name__",
        "%%step elsewhere\nimport os\npid = os.getpid()",
        "%parrun --workers 2 --no-widget",
    )
    record = nbpar.last_run().steps["shell_out"]
    assert record.backend == "inline" and record.worker == "kernel"
    assert shell.user_ns["files"] == ["a b"] and shell.user_ns["who"] == "InteractiveShell"
    assert nbpar.last_run().steps["elsewhere"].backend == "process"


def test_a_step_using_ipython_refuses_the_process_backend(shell):
    with pytest.raises(UsageError, match="step 'magic' uses IPython .* drop --backend process"):
        shell.run_cell_magic("step", "magic --backend process", "%time x = 1")
    assert "magic" not in shell.magics_manager.registry["NbparMagics"].pipeline.steps


# -- faults of a whole run -------------------------------------------------------


def test_the_stop_button_stops_every_worker_and_the_next_run_resumes(shell, capsys):
    run_cells(
        shell,
        "%%step quick\nquick = 1",
        "%%step slow_a --after quick\nimport os, time\npid_a = os.getpid()\ntime.sleep(20)\na = 1",
        "%%step slow_b --after quick\nimport os, time\npid_b = os.getpid()\ntime.sleep(20)\nb = 1",
        "%%step joined\nboth = (a, b)",
    )
    threading.Timer(1.5, _thread.interrupt_main).start()
    started = time.monotonic()
    result = run_cell(shell, "%parrun --workers 2 --no-widget")
    assert time.monotonic() - started < 10
    assert isinstance(result.error_in_exec, RunError)
    shown = "\n".join(result.error_in_exec._render_traceback_())
    assert "run interrupted" in shown and "Run %parrun again to resume" in shown
    record = nbpar.last_run()
    assert gone({int(record.steps[s].worker.removeprefix("pid ")) for s in ("slow_a", "slow_b")}, within=1.5)
    assert shell.user_ns["quick"] == 1 and not {"a", "b", "both", "pid_a"} & set(shell.user_ns)

    for name in ("slow_a", "slow_b"):  # the user shortens the slow steps and runs again
        run_cell(shell, f"%%step {name} --after quick\n{name[-1]} = 1")
    capsys.readouterr()
    run_cells(shell, "%parrun --workers 2 --no-widget")
    statuses = {n: r.status for n, r in nbpar.last_run().steps.items()}
    assert statuses == {"quick": "up-to-date", "slow_a": "done", "slow_b": "done", "joined": "done"}
    assert shell.user_ns["both"] == (1, 1)


def test_a_second_parrun_while_one_runs_is_refused(shell, capsys):
    run_cells(shell, "%%step slow\nimport time\ntime.sleep(1)\nslow = 1", "%parrun --background --no-widget")
    with pytest.raises(UsageError, match="a run is going on .* %parwait .* %parcancel"):
        shell.run_line_magic("parrun", "--no-widget")
    run_cells(shell, "%parwait")
    assert shell.user_ns["slow"] == 1 and nbpar.last_run().ok
    assert worker_pids(), "the pool stays warm"


# -- processes a step starts ----------------------------------------------------

SPAWNER = """import subprocess, time
_child = subprocess.Popen(["sleep", "120"])
with open(pidfile, "w") as _f:
    _f.write(str(_child.pid))
{rest}
value = 1
"""


def _spawned_pid(pidfile: Any, within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pidfile.exists() and pidfile.read_text():
            return int(pidfile.read_text())
        time.sleep(0.05)
    raise AssertionError("the step did not start its process")


def _stopped(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "how, rest",
    [
        ("timeout", "time.sleep(30)"),  # the alarm stops the step: the worker stops its processes
        ("ignored-timeout", "import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\ntime.sleep(9)"),
        ("cancel", "time.sleep(30)"),
    ],
)
def test_the_processes_a_stopped_step_started_stop_with_it(tmp_path, how, rest):
    pidfile = tmp_path / "pid"
    p = Pipeline({"pidfile": str(pidfile)})
    p.add_step("spawns", SPAWNER.format(rest=rest), timeout=None if how == "cancel" else 0.5)
    run = p.start(backend="process", workers=2)
    pid = _spawned_pid(pidfile)
    if how == "cancel":
        run.cancel()
    result = run.wait(check=False)
    assert result.steps["spawns"].status in ("failed", "cancelled")
    assert _stopped(pid), f"the step's `sleep 120` ({how}) still runs"


@pytest.mark.parametrize("backend", ["thread", "inline"])
def test_the_processes_a_timed_out_kernel_step_started_stop_with_it(tmp_path, backend):
    # thread: the step is abandoned; inline: its alarm stops it. Either way
    # the processes its thread started during it are killed (not the kernel's).
    pidfile = tmp_path / "pid"
    p = Pipeline({"pidfile": str(pidfile)})
    p.add_step("spawns", SPAWNER.format(rest="time.sleep(3)"), timeout=0.5)
    result = p.run(backend=backend, workers=1, check=False)
    assert result.steps["spawns"].status == "failed"
    assert "timeout of 0.5s" in (result.steps["spawns"].error or "")
    assert _stopped(_spawned_pid(pidfile), within=1.0), f"the step's `sleep 120` ({backend}) still runs"


def test_the_processes_a_cancelled_thread_step_started_stop_with_it(tmp_path):
    pidfile = tmp_path / "pid"
    p = Pipeline({"pidfile": str(pidfile)})
    p.add_step("spawns", SPAWNER.format(rest="time.sleep(3)"))
    run = p.start(backend="thread", workers=1)
    pid = _spawned_pid(pidfile)
    run.cancel()
    assert run.wait(check=False).steps["spawns"].status == "cancelled"
    assert _stopped(pid, within=1.0), "the cancelled thread step's `sleep 120` still runs"


@pytest.mark.parametrize("backend", ["thread", "inline"])
def test_the_processes_a_finished_kernel_step_started_keep_running(tmp_path, backend):
    pidfile = tmp_path / "pid"
    p = Pipeline({"pidfile": str(pidfile)})
    p.add_step("spawns", SPAWNER.format(rest=""), timeout=5)
    p.add_step("later", "import time\ntime.sleep(0.3)\nlater = 1", after=["spawns"], timeout=5)
    p.run(backend=backend, workers=1)
    pid = _spawned_pid(pidfile)
    try:
        assert not _stopped(pid, within=0.5), "a top-to-bottom run would have left it running"
    finally:
        psutil.Process(pid).kill()
        psutil.Process(pid).wait(5)


def test_the_processes_a_finished_step_started_keep_running(tmp_path):
    pidfile = tmp_path / "pid"
    p = Pipeline({"pidfile": str(pidfile)})
    p.add_step("spawns", SPAWNER.format(rest=""))
    p.add_step("later", "import time\ntime.sleep(0.3)\nlater = 1", after=["spawns"])
    p.run(backend="process", workers=1)
    pid = _spawned_pid(pidfile)
    try:
        assert not _stopped(pid, within=0.5), "a top-to-bottom run would have left it running"
    finally:
        psutil.Process(pid).kill()


def test_the_processes_a_crashed_step_started_stop_with_it(tmp_path):
    pidfile = tmp_path / "pid"
    p = Pipeline({"pidfile": str(pidfile)})
    p.add_step("spawns", SPAWNER.format(rest="import os\nos._exit(3)"))
    result = p.run(backend="process", workers=2, check=False)
    assert result.steps["spawns"].status == "failed"
    pid = int(pidfile.read_text())
    assert _stopped(pid, within=2.0), "the crashed step's `sleep 120` still runs"
