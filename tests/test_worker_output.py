"""What a step logs and warns reaches its output like what it prints, on
every backend; a step past its timeout is stopped in its worker."""

from __future__ import annotations

import io
import logging
import re
import signal
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from functools import partial

import pytest

import nbpar
from nbpar import Pipeline, RunError
from nbpar.capture import capture, routing
from nbpar.events import Event, StepLog
from nbpar.worker import with_globals

from .conftest import run_cell, run_cells

BACKENDS = ["process", "thread", "inline"]


def make(steps: dict[str, str], **options) -> Pipeline:
    p = Pipeline({})
    for name, source in steps.items():
        p.add_step(name, textwrap.dedent(source), **options)
    return p


@pytest.fixture
def kernel_warnings() -> Iterator[None]:
    """Warnings written to sys.stderr, as in a notebook kernel (pytest
    records them instead, in the kernel's threads)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # type: ignore[no-untyped-def]
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


@pytest.fixture
def root_at_info() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(saved)


@pytest.mark.parametrize("backend", BACKENDS)
def test_logging_joins_the_step_output_once(backend):
    p = make(
        {
            "logs": """
            import logging
            logging.warning("careful with %s", "this")
            try:
                1 / 0
            except ZeroDivisionError:
                logging.getLogger("nb.calc").error("could not divide", exc_info=True)
            logging.getLogger("nb.calc").info("hidden at the kernel's WARNING level")
            x = 1
            """,
            "quiet": "y = 2",
        }
    )
    handlers = list(logging.getLogger().handlers)
    result = p.run(backend=backend, workers=2)
    output = result.steps["logs"].output
    assert output.count("WARNING:root:careful with this\n") == 1
    assert output.count("ERROR:nb.calc:could not divide\nTraceback (most recent call last):\n") == 1
    assert 'File "<step logs>", line 5, in <module>' in output and "ZeroDivisionError" in output
    assert "hidden" not in output
    assert result.steps["quiet"].output == ""
    assert logging.getLogger().handlers == handlers  # nothing left behind (logging.basicConfig still works)


@pytest.mark.parametrize("backend", BACKENDS)
def test_info_is_shown_when_the_kernel_logs_info(backend, root_at_info):
    p = make({"info": "import logging\nlogging.getLogger('nb.detail').info('step %d of %d', 1, 2)\nx = 1"})
    result = p.run(backend=backend)
    assert result.steps["info"].output.count("INFO:nb.detail:step 1 of 2\n") == 1
    assert logging.getLogger().level == logging.INFO


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_handler_the_step_makes_is_not_doubled(backend):
    p = make(
        {
            "own": """
            import logging, sys
            _log = logging.getLogger("nb.own")
            _handler = logging.StreamHandler(sys.stderr)
            _log.addHandler(_handler)
            _log.warning("said once")
            _log.removeHandler(_handler)
            x = 1
            """
        }
    )
    assert p.run(backend=backend).steps["own"].output == "said once\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_warnings_join_the_step_output_on_every_run(backend, kernel_warnings):
    p = make({"warns": "import warnings\nwarnings.warn('mind the gap')\nx = 1"})
    for _ in range(2):
        output = p.run(backend=backend, force=True).steps["warns"].output
        assert output.count("<step warns>:2: UserWarning: mind the gap\n") == 1
        assert "warnings.warn('mind the gap')" in output


@pytest.mark.parametrize("backend", BACKENDS)
def test_library_warnings_join_the_step_output(backend, kernel_warnings):
    p = make({"lib": "import numpy as np\nr = np.mean([])"})  # numpy warns "Mean of empty slice"
    output = p.run(backend=backend).steps["lib"].output
    assert output.count("RuntimeWarning: Mean of empty slice") == 1


def test_process_timeout_stops_the_step_and_spares_its_worker():
    p = make(
        {
            "slow": """
            import time
            while True:
                time.sleep(0.05)
            """,
        },
        timeout=0.5,
    )
    p.add_step("other", "import time\ntime.sleep(0.8)\nother = 1")
    with pytest.raises(RunError) as info:
        p.run(backend="process", workers=2)
    slow = info.value.result.steps["slow"]
    assert slow.status == "failed"
    assert slow.error.startswith("step 'slow' was stopped after its timeout of 0.5s (--timeout 0.5).\n")
    assert 'File "<step slow>", line 4, in <module>\n    time.sleep(0.05)\n' in slow.error
    assert "worker.py" not in slow.error
    other = info.value.result.steps["other"]
    assert other.status == "done" and other.attempts == 1
    # Both workers serve the next run: the stopped step's worker lives on.
    again = make({n: f"import os, time\ntime.sleep(0.3)\n{n} = os.getpid()" for n in "ab"})
    again.run(backend="process", workers=2)
    assert {f"pid {again.namespace['a']}", f"pid {again.namespace['b']}"} == {slow.worker, other.worker}


def test_inline_timeout_stops_the_step_and_restores_the_alarm():
    before = signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)[0] > 0
    p = make(
        {
            "stubborn": """
            import time
            while True:
                try:
                    time.sleep(0.05)
                except Exception:
                    pass
            """
        },
        timeout=0.5,
    )
    with pytest.raises(RunError) as info:
        p.run(backend="inline")
    error = info.value.result.steps["stubborn"].error
    assert error.startswith("step 'stubborn' was stopped after its timeout of 0.5s (--timeout 0.5).\n")
    assert 'File "<step stubborn>", line 5, in <module>' in error
    assert (signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)[0] > 0) == before


def test_a_blocking_inline_parrun_honours_the_timeout(shell):
    run_cells(shell, "%%step slow --timeout 0.3\nimport time\nwhile True:\n    time.sleep(0.05)")
    result = run_cell(shell, "%parrun --backend inline --no-widget")
    assert not result.success
    error = nbpar.last_run().steps["slow"].error
    assert error.startswith("step 'slow' was stopped after its timeout of 0.3s (--timeout 0.3).\n")
    assert 'File "<step slow>", line 4, in <module>' in error  # the %%step line is line 1


def test_an_inline_step_of_a_background_run_past_its_timeout_is_failed_and_writes_nothing():
    # no alarm outside the kernel's main thread: it runs to its end, and is not kept
    p = make({"slow": "import time\ntime.sleep(0.6)\nx = 1"}, timeout=0.2)
    result = p.start(backend="inline").wait(check=False)
    slow = result.steps["slow"]
    assert slow.status == "failed" and "x" not in p.namespace
    assert re.match(r"step 'slow' ran for 0\.[6-9]s, past its timeout of 0\.2s \(--timeout 0\.2\)", slow.error or "")
    assert "What it made is dropped." in (slow.error or "")


@pytest.mark.parametrize("timeout", [2, float("inf")])
def test_a_step_finishing_in_time_is_not_stopped(timeout):
    p = make({"quick": "import time\ntime.sleep(0.05)\nx = 1"}, timeout=timeout)
    for backend in BACKENDS:
        assert p.run(backend=backend, force=True).steps["quick"].status == "done"


def test_the_log_handler_takes_only_the_step_threads_records():
    lines: list[str] = []
    elsewhere: list[str] = []

    def other_thread() -> None:
        logging.getLogger("nb.other").warning("not from the step")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            elsewhere.append(record.getMessage())

    keep = Keep()
    logging.getLogger("nb.other").addHandler(keep)
    try:
        with routing(), capture(lines.append):
            logging.getLogger("nb.step").warning("from the step")
            thread = threading.Thread(target=other_thread)
            thread.start()
            thread.join()
    finally:
        logging.getLogger("nb.other").removeHandler(keep)
    assert lines == ["WARNING:nb.step:from the step\n"]
    assert elsewhere == ["not from the step"]


def test_a_record_no_handler_takes_still_reaches_last_resort(monkeypatch):
    """While a step runs, records of other threads that no handler takes go
    to logging.lastResort, as they would with no step running."""
    seen: list[str] = []

    class Last(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    monkeypatch.setattr(logging, "lastResort", Last(logging.WARNING))
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    lines: list[str] = []
    with routing(), capture(lines.append):
        thread = threading.Thread(target=lambda: logging.getLogger("nb.other").warning("to last resort"))
        thread.start()
        thread.join()
    assert seen == ["to last resort"] and lines == []


def test_a_step_that_replaces_sys_stdout_for_good_does_not_swallow_the_next_steps_output():
    """Steps of one batch run under one routing(): a step that sets
    sys.stdout and never restores it must not take the output of the steps
    after it."""
    import sys

    from nbpar.contract import Task
    from nbpar.worker import execute_all

    saved = sys.stdout, sys.stderr
    try:
        outcomes = execute_all(
            [
                Task("swap", "import io, sys\nsys.stdout = io.StringIO()", {}, ()),
                Task("after", "print('hello')", {}, ()),
            ],
            "kernel",
            None,
        )
    finally:
        sys.stdout, sys.stderr = saved
    assert [o.error for o in outcomes] == [None, None]
    assert outcomes[1].output == "hello\n"


# -- what a step shows: display() and its last expression (issue 11, item 12) --


@pytest.mark.parametrize("backend", BACKENDS)
def test_display_and_the_last_expression_are_shown_as_text_in_the_step_output(shell, backend):
    run_cells(shell, "%%step show\nrows = [1, 2, 3]\ndisplay(rows, {'n': len(rows)})\nlen(rows) * 10")
    step = shell.magics_manager.registry["NbparMagics"].pipeline.steps["show"]
    assert not step.uses_ipython and step.shown_reads(()) == []  # display is IPython's builtin, not an input
    run_cells(shell, f"%parrun --backend {backend} --no-widget")
    record = nbpar.last_run().steps["show"]
    assert record.status == "done" and record.backend == backend
    assert record.output == "[1, 2, 3]\n{'n': 3}\n30\n"


@pytest.mark.parametrize("source", ["x = 2\nx;", "x = 2\nx ;  # hidden", "x = 2\nprint(x)", "x = 2\nNone"])
def test_a_last_expression_ending_in_a_semicolon_or_none_shows_nothing_more(source):
    output = make({"quiet": source}).run(backend="process").steps["quiet"].output
    assert output == ("2\n" if "print" in source else "")


def test_the_last_expression_keeps_its_line_number_in_a_traceback():
    p = Pipeline({})
    p.add_step("bad", "x = 0\n1 / x", first_line=2, header="%%step bad")
    with pytest.raises(RunError) as info:
        p.run(backend="process")
    error = info.value.result.steps["bad"].error
    assert 'File "<step bad>", line 3, in <module>\n    1 / x\n' in error and "ZeroDivisionError" in error


def test_an_imported_display_is_replaced_and_the_step_stays_up_to_date(shell):
    run_cells(shell, "from IPython.display import display", "%%step show\ndisplay('hi')\nshown = 1")
    run_cells(shell, "%parrun --backend process --no-widget")
    assert nbpar.last_run().steps["show"].output == "'hi'\n"
    run_cells(shell, "%parrun --backend process --no-widget")
    assert nbpar.last_run().steps["show"].status == "up-to-date"


def test_a_display_of_the_notebooks_own_is_used_as_it_is(shell):
    run_cells(shell, "def display(x):\n    print('mine:', x)", "%%step show\ndisplay('hi')\nshown = 1")
    run_cells(shell, "%parrun --backend process --no-widget")
    assert nbpar.last_run().steps["show"].output == "mine: hi\n"


# -- logging: once, in the notebook's format (issue 11, item 13) -------------


@pytest.mark.parametrize("formatted", [True, False], ids=["format", "no-formatter"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_record_is_shown_once_in_the_format_of_the_notebooks_root_handler(backend, formatted, monkeypatch):
    """`logging.basicConfig(format=...)` run in the notebook before nbpar's
    first step: a handler on the kernel's stderr, with its own format (or
    none: the message alone)."""
    kernel_stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", kernel_stderr)
    handler = logging.StreamHandler(kernel_stderr)
    if formatted:
        handler.setFormatter(logging.Formatter("{levelname}|{name}|{message}", style="{"))
    logging.root.addHandler(handler)
    try:
        p = make({"logs": "import logging\nlogging.getLogger('nb').warning('said %s', 'once')\nx = 1"})
        output = p.run(backend=backend).steps["logs"].output
        logging.getLogger("nb").warning("from the notebook")
    finally:
        logging.root.removeHandler(handler)
    prefix = "WARNING|nb|" if formatted else ""
    assert output == prefix + "said once\n"
    assert kernel_stderr.getvalue() == prefix + "from the notebook\n"  # not the step's: it is in its output


# -- the order and liveness of output (issue 11, item 14) --------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_is_shown_started_before_what_it_prints(backend):
    p = make({"talk": "print('hello')\nx = 1"})
    for _ in range(4):  # from the second run on, the step is known to be small and does not report its start
        events: list[str] = []
        p.run(backend=backend, force=True, listeners=[partial(_note_kind, events)])
        assert events.index("StepStarted") < events.index("StepLog"), events


def _note_kind(kinds: list[str], event: Event) -> None:
    kinds.append(type(event).__name__)


def test_an_inline_steps_lines_are_shown_while_it_runs():
    seen: list[str] = []

    def listener(event: Event) -> None:
        if isinstance(event, StepLog):
            seen.append(event.text)

    p = Pipeline({"seen": seen})
    p.add_step("talk", "print('first')\nsaw = list(seen)")
    p.run(backend="inline", listeners=[listener])
    assert p.namespace["saw"] == ["first\n"]


def test_a_notebook_function_calling_display_works_in_a_worker_process(shell):
    run_cells(shell, "def show(x):\n    display(x)", "%%step s\nshow([1])\ny = 1")
    run_cells(shell, "%parrun --backend process --no-widget")
    assert nbpar.last_run().steps["s"].output == "[1]\n"


LIMITS = """
import resource
_hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (1 << 40 if _hard == resource.RLIM_INFINITY else _hard // 2, _hard))
limited = 1
"""


def test_a_resource_limit_a_step_sets_does_not_reach_the_next_steps_of_its_worker():
    import resource

    p = make({"limits": LIMITS})
    p.add_step("later", "import resource\nseen = resource.getrlimit(resource.RLIMIT_AS)", after=["limits"])
    p.add_step("small", "import resource\nsmall = resource.getrlimit(resource.RLIMIT_AS)", after=["later"])
    p.run(backend="process", workers=1)
    p.run(backend="process", workers=1, force=True)  # now all small: one batch, one task each
    assert p.namespace["seen"] == p.namespace["small"] == resource.getrlimit(resource.RLIMIT_AS)


def _core_hard_limit_to_lower() -> int:
    """A hard RLIMIT_CORE below the one workers start with (skip if none)."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]  # (a worker's, as it starts)
    if hard == 0:
        pytest.skip("core files are off for good here: no hard limit to lower")
    return 1 << 30 if hard == resource.RLIM_INFINITY else hard - 1


LOWER_HARD = "import os as _os, resource as _r\n_r.setrlimit(_r.RLIMIT_CORE, (0, {lower}))\nx = _os.getpid()\n"
SEES = "import os as _os, resource as _r\n{name} = (_r.getrlimit(_r.RLIMIT_CORE), _os.getpid())\n"


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(pids: set[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_worker_whose_hard_limit_a_step_lowered_runs_no_more_steps():
    import resource

    limits = resource.getrlimit(resource.RLIMIT_CORE)
    p = make({"hard": LOWER_HARD.format(lower=_core_hard_limit_to_lower())})
    p.add_step("later", SEES.format(name="later") + "x", after=["hard"])
    for name in "abc":  # beside it: probes, then (known and small) a batch, on the one worker
        p.add_step(name, SEES.format(name=name))
    for run in range(2):  # the second: all small, `later` in the task of `hard`, the rest batched
        result = p.run(backend="process", workers=1, force=run > 0)
        output = result.steps["hard"].output
        assert "nbpar: step 'hard' lowered the hard limit RLIMIT_CORE of its worker process" in output
        assert "that worker runs no more steps: it was replaced" in output and "Lower only the soft limit" in output
        seen = {name: p.namespace[name] for name in ["later", *"abc"]}
        assert all(limit == limits for limit, _ in seen.values()), seen
        assert p.namespace["x"] not in {pid for _, pid in seen.values()}
        assert _gone({p.namespace["x"]})  # (its pool was shut down once nothing used it)
    nxt = make({"next": SEES.format(name="next")})
    nxt.run(backend="process", workers=1)
    assert nxt.namespace["next"][0] == limits


WAIT_FOR = (
    "import os as _os, time as _time\n_end = _time.monotonic() + 30\n"
    "while not _os.path.exists({path!r}) and _time.monotonic() < _end:\n    _time.sleep(0.01)\n"
)


def test_a_step_beside_the_one_that_spends_its_worker_is_not_disturbed(tmp_path):
    import resource

    from nbpar.events import StepFinished, StepStarted

    limits = resource.getrlimit(resource.RLIMIT_CORE)
    started, lowered = tmp_path / "started", tmp_path / "lowered"

    def cue(event: Event) -> None:
        """`beside` runs on the other worker from before `hard` lowers the
        limit until after its outcome is in (the pool is retired by then)."""
        if isinstance(event, StepStarted) and event.step == "beside":
            started.touch()
        elif isinstance(event, StepFinished) and event.step == "hard":
            lowered.touch()

    p = make(
        {
            "hard": WAIT_FOR.format(path=str(started)) + LOWER_HARD.format(lower=_core_hard_limit_to_lower()),
            "beside": WAIT_FOR.format(path=str(lowered)) + SEES.format(name="beside"),
        }
    )
    result = p.run(backend="process", workers=2, listeners=[cue])
    assert lowered.exists() and "it was replaced" in result.steps["hard"].output
    beside, pid = p.namespace["beside"]
    assert result.steps["beside"].status == "done" and result.steps["beside"].attempts == 1
    assert beside == limits and pid != p.namespace["x"]
    assert _gone({pid, p.namespace["x"]})  # the retired pool, once `beside` was back
    again = make({"again": SEES.format(name="again")})
    again.run(backend="process", workers=2)
    assert again.namespace["again"][0] == limits


def test_with_globals_gives_a_notebook_function_other_globals_and_keeps_the_rest():
    old = {"__name__": "__main__", "scale": 2, "_offset": 1}
    exec(
        "def make():\n    k = 10\n    def f(x: int, y=1, *, z=2) -> int:\n        'doc'\n"
        "        return (x + y + z + k) * scale + _offset\n    return f\nf = make()\nf.tag = 'kept'\n",
        old,
    )
    new = {"scale": 3}
    f = with_globals(old["f"], new)
    assert f.__globals__ is new and f(1) == (1 + 1 + 2 + 10) * 3 + 1  # `_offset` went along
    assert new["_offset"] == 1 and "make" not in new
    kept = ("__defaults__", "__kwdefaults__", "__qualname__", "__annotations__", "__doc__", "__module__", "__dict__")
    assert all(getattr(f, a) == getattr(old["f"], a) for a in kept) and f.__closure__ == old["f"].__closure__
    assert with_globals(len, new) is len and with_globals(pytest.raises, new) is pytest.raises  # not the notebook's
    assert with_globals(f, new) is f  # already
