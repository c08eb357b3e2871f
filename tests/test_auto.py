"""`--backend auto`: a step on a thread or a process, from what nbpar measured of it.

From the user's side (a real shell, a real pool): the first run measures
every step on a process; the next puts a step that spent its time in C code
releasing the GIL on a thread and a pure-Python loop on a process, says so,
and leaves the namespace a top-to-bottom run leaves. Then the rules
(auto.choose) one by one, and the meter (gil.py) in a real worker process.
"""

from __future__ import annotations

import threading

import pytest

import nbpar
from nbpar import auto
from nbpar.gil import GilMeter

from .conftest import run_cell, run_cells

LOOP = "total = 0\nfor i in range(3_000_000):\n    total += i % 7"
SORT = "import numpy as np\nordered = [float(np.sort(a)[0]) for _ in range(6)]"


def _steps(shell) -> None:
    run_cells(shell, "import numpy as np\na = np.random.default_rng(0).random(3_000_000)")
    run_cells(shell, f"%%step loop\n{LOOP}", f"%%step sort\n{SORT}")


def test_auto_measures_on_processes_then_puts_the_gil_free_step_on_a_thread(shell, capsys):
    _steps(shell)
    run_cells(shell, "%parrun --backend auto --no-widget")
    first = nbpar.last_run()
    assert {n: r.backend for n, r in first.steps.items()} == {"loop": "process", "sort": "process"}
    assert all("not measured yet" in (r.placed or "") for r in first.steps.values())
    loop, sort = first.steps["loop"].gil, first.steps["sort"].gil
    assert loop is not None and sort is not None
    assert loop > auto.THREAD_BELOW > sort, (loop, sort)
    capsys.readouterr()

    run_cells(shell, "%parrun --backend auto --no-widget --force")
    second = nbpar.last_run()
    assert second.ok
    assert second.steps["loop"].backend == "process" and second.steps["sort"].backend == "thread"
    assert "held the GIL" in second.steps["sort"].placed and "held the GIL" in second.steps["loop"].placed
    printed = capsys.readouterr().out
    assert "on 2 process workers and 2 threads" in printed or "on 2 threads and 2 process workers" in printed
    assert "  auto: sort on a thread: it held the GIL" in printed
    assert "  auto: loop on a process: it held the GIL" in printed
    expected: dict = {"np": shell.user_ns["np"], "a": shell.user_ns["a"]}
    exec(LOOP, expected)
    exec(SORT, expected)
    assert shell.user_ns["total"] == expected["total"] and shell.user_ns["ordered"] == expected["ordered"]


def test_a_step_whose_code_changed_is_measured_again_on_a_process(shell):
    _steps(shell)
    run_cells(shell, "%parrun --backend auto --no-widget")
    run_cells(shell, f"%%step sort\n{SORT}  # edited", "%parrun --backend auto --no-widget")
    record = nbpar.last_run().steps["sort"]
    assert record.backend == "process" and "its code changed since it was measured" in record.placed


def test_a_step_with_a_timeout_stays_on_a_process(shell):
    _steps(shell)
    run_cells(shell, "%parrun --backend auto --no-widget")
    run_cells(shell, "%parrun --backend auto --no-widget --force --timeout 60")
    record = nbpar.last_run().steps["sort"]
    assert record.backend == "process" and "only a process can be stopped" in record.placed


def test_a_step_reading_what_cannot_be_pickled_goes_to_a_thread_where_process_refuses(shell):
    run_cells(shell, "import threading\nlock = threading.Lock()", "%%step guarded\nwith lock:\n    got = 1")
    refused = run_cell(shell, "%parrun --backend process --no-widget")
    assert "cannot be sent to a worker process" in str(refused.error_in_exec)
    assert "got" not in shell.user_ns
    run_cells(shell, "%parrun --backend auto --no-widget")
    record = nbpar.last_run().steps["guarded"]
    assert record.backend == "thread" and "it reads `lock`, which cannot be sent to a process" in record.placed
    assert shell.user_ns["got"] == 1


def test_auto_is_a_backend_everywhere_one_is_named(shell):
    run_cells(shell, "%%step x --backend auto\ny = 2")
    run_cells(shell, "%parrun --no-widget")  # the step's own choice: measured on a process
    assert nbpar.last_run().steps["x"].backend == "process"
    p = nbpar.Pipeline()
    try:
        p.add_step("s", "t = 1")
        assert p.run(backend="auto").steps["s"].backend == "process"
        assert p.run(backend="auto", force=True).steps["s"].backend == "thread"  # ~µs: not worth a process
    finally:
        p.shutdown()
    bad = run_cell(shell, "%parrun --backend automatic --no-widget")
    assert bad.error_in_exec is not None and "auto" in str(bad.error_in_exec)


# -- the rules ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("measure", "timeout", "backend", "why"),
    [
        (None, None, "process", "not measured yet"),
        (auto.Measure("x = 1", 1.0, 0.1), 5.0, "process", "only a process can be stopped"),
        (auto.Measure("x = 2", 1.0, 0.1), None, "process", "its code changed since it was measured"),
        (auto.Measure("x = 1", 0.0005, None), None, "thread", "costs more than it gains"),
        (auto.Measure("x = 1", 0.003, None), None, "process", "too short to tell"),
        (auto.Measure("x = 1", 2.0, 0.1), None, "thread", "held the GIL 10% of its 2s"),
        (auto.Measure("x = 1", 2.0, 0.9), None, "process", "held the GIL 90% of its 2s"),
    ],
)
def test_choose(measure, timeout, backend, why):
    where, reason = auto.choose("x = 1", measure, timeout)
    assert where == backend and why in reason


# -- the meter --------------------------------------------------------------------
def test_the_meter_tells_python_code_from_code_that_lets_go_of_the_gil():
    import time

    meter = GilMeter()
    meter.start()
    time.sleep(0.2)
    assert meter.stop() is None  # not armed: no figure
    with meter.armed():
        meter.start()
        time.sleep(0.2)  # lets go of the GIL
        sleeping = meter.stop()
        meter.start()
        end = time.perf_counter() + 0.2
        while time.perf_counter() < end:  # holds it
            pass
        spinning = meter.stop()
        meter.start()
        assert meter.stop() is None  # too short to tell
    assert sleeping is not None and spinning is not None
    assert sleeping < 0.3 < 0.7 < spinning, (sleeping, spinning)
    assert any(t.name == "nbpar-gil-meter" and t.daemon for t in threading.enumerate())
