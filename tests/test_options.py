"""A run's options (options.py): checked once, the same for the API, the
magics and `nbpar run`; their defaults from `nbpar run` or the environment."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import loky
import nbformat
import pytest

import nbpar
from nbpar.options import Defaults, OptionError, RunKeywords, RunOptions, default_workers

BAD = [
    ({"workers": 0}, "--workers must be at least 1, not 0."),
    ({"workers": -2}, "--workers must be at least 1, not -2."),
    ({"backend": "gpu"}, "unknown backend 'gpu'; choose process, thread, inline, auto."),
    ({"timeout": 0}, "--timeout must be a number of seconds above 0 (inf: no limit), not 0."),
    ({"timeout": math.nan}, "--timeout must be a number of seconds above 0 (inf: no limit), not nan."),
    ({"retries": -1}, "--retries must be 0 or more, not -1."),
]


@pytest.mark.parametrize(("given", "message"), BAD)
def test_options_that_cannot_work_are_refused_when_made(given, message):
    with pytest.raises(OptionError) as info:
        RunOptions(**given)
    assert str(info.value) == message
    assert isinstance(info.value, nbpar.PlanError)


@pytest.mark.parametrize(("given", "message"), BAD)
def test_run_start_and_check_refuse_them_alike_before_anything_runs(given, message):
    p = nbpar.Pipeline()
    p.add_step("a", "x = 1")
    for call in (p.run, p.start, p.check):
        with pytest.raises(nbpar.PlanError) as info:
            call(**given)
        assert str(info.value) == message
        assert p.active is None and "x" not in p.namespace


def test_the_run_keywords_are_the_options_fields_written_once():
    assert list(RunKeywords.__annotations__) == list(RunOptions.__dataclass_fields__)
    assert RunOptions(workers=2, retries=1).keywords() == {
        "workers": 2,
        "backend": "process",
        "force": False,
        "fail_fast": False,
        "timeout": None,
        "retries": 1,
    }


@pytest.mark.parametrize("where", ["run", "start", "check"])
def test_a_keyword_that_is_no_option_is_named_with_the_options(where):
    p = nbpar.Pipeline()
    p.add_step("a", "x = 1")
    with pytest.raises(TypeError) as info:
        getattr(p, where)(worker=2)
    assert str(info.value) == (
        f"{where}() got an unexpected keyword argument 'worker'; "
        "its options are workers, backend, force, fail_fast, timeout, retries."
    )
    assert "x" not in p.namespace


def test_an_infinite_run_timeout_is_no_limit():
    assert RunOptions(timeout=math.inf).timeout is None
    assert RunOptions(timeout=2.5).timeout == 2.5


def test_the_worker_count():
    assert RunOptions(workers=3).worker_count == 3
    assert RunOptions(backend="inline").worker_count == 1
    assert RunOptions().worker_count == default_workers() == loky.cpu_count()


def test_defaults_given_win_over_the_environment():
    env = {"NBPAR_WORKERS": "5", "NBPAR_BACKEND": "thread"}
    assert Defaults().resolved(env) == Defaults(5, "thread")
    assert Defaults(workers=2).resolved(env) == Defaults(2, "thread")
    assert Defaults(backend="inline").resolved(env) == Defaults(5, "inline")
    assert Defaults().resolved({}) == Defaults(None, "process")
    with pytest.raises(OptionError, match="NBPAR_BACKEND is 'gpu'; choose process, thread, inline, auto"):
        Defaults().resolved({"NBPAR_BACKEND": "gpu"})
    with pytest.raises(OptionError, match="NBPAR_WORKERS is 'lots'; it must be a whole number"):
        Defaults().resolved({"NBPAR_WORKERS": "lots"})


def test_importing_the_options_loads_no_loky():
    code = "import sys, nbpar.options; assert 'loky' not in sys.modules, 'loky loaded'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_nbpar_run_gives_its_defaults_to_the_magics_without_the_environment(tmp_path: Path):
    """`nbpar run --workers/--backend` sets the magics' defaults through the
    shell it runs the notebook in, not by changing the notebook's environment."""
    nb = nbformat.v4.new_notebook()
    cells = [
        "%load_ext nbpar",
        "%%step a\nx = 1",
        "%parrun",
        "import os, nbpar\n"
        "print('run', nbpar.last_run().backend, nbpar.last_run().workers)\n"
        "d = nbpar.run_defaults()\n"
        "print('defaults', d.backend, d.workers, d.worker_count)\n"
        "print('environment', os.environ.get('NBPAR_WORKERS'), os.environ.get('NBPAR_BACKEND'))",
    ]
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, tmp_path / "d.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBPAR_")}
    done = subprocess.run(
        [sys.executable, "-m", "nbpar.cli", "run", str(tmp_path / "d.ipynb"), "--workers", "3", "--backend", "thread"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "run thread 3" in done.stdout
    assert "defaults thread 3 3" in done.stdout
    assert "environment None None" in done.stdout


def test_a_runs_statuses_are_counted_in_one_place():
    """RunResult.counts (in the order of the first step in each status), and
    what the displays say of it: `succeeded`, `summary`, the repr."""
    from nbpar.records import RunResult, SliceRecord, StepRecord

    statuses = ["done", "failed", "up-to-date", "done", "running"]
    steps = {f"s{i}": StepRecord(f"s{i}", status=s) for i, s in enumerate(statuses)}  # type: ignore[arg-type]
    steps["s4"].slices = [SliceRecord(0, 1, status="done"), SliceRecord(1, 1, status="running")]
    result = RunResult(steps, backend="thread", workers=2, start=0.0, end=1.0)
    assert result.counts() == {"done": 2, "failed": 1, "up-to-date": 1, "running": 1}
    assert result.succeeded == 3 and not result.ok
    assert result.summary() == "2 done, 1 failed, 1 up-to-date, 1 running"
    assert repr(result) == "<RunResult 1.00s on 2 thread workers: 2 done, 1 failed, 1 up-to-date, 1 running>"
    assert steps["s4"].slices_done == 1 and steps["s0"].slices_done == 0


STEP_BAD = [
    ({"backend": "gpu"}, "step 's': unknown backend 'gpu'; choose process, thread, inline, auto."),
    ({"timeout": 0.0}, "step 's': --timeout must be a number of seconds above 0 (inf: no limit), not 0.0."),
    ({"retries": -1}, "step 's': --retries must be 0 or more, not -1."),
    ({"slices": 2}, "step 's': --slices needs --over VAR, the input to fan out over."),
    ({"over": "xs", "slices": 0}, "step 's': --slices must be at least 1, not 0."),
    ({"over": "ys"}, "step 's': --over ys, but the step does not read `ys` (it reads xs). Fan out over an input"),
]


@pytest.mark.parametrize(("given", "message"), STEP_BAD)
def test_a_steps_options_are_checked_where_the_step_is_made(given, message):
    """`Step` takes its options as keywords and refuses, naming the step,
    those that cannot work: made directly or by `Pipeline.add_step`."""
    from nbpar.graph import GraphError, Step

    with pytest.raises(GraphError) as info:
        Step("s", "y = xs", frozenset({"xs"}), frozenset({"y"}), **given)
    assert str(info.value).startswith(message)
    p = nbpar.Pipeline({"xs": [1, 2]})
    with pytest.raises(GraphError) as info:
        p.add_step("s", "y = xs", **given)
    assert str(info.value).startswith(message)
    assert not p.steps


def test_a_steps_options_are_keywords():
    from nbpar.graph import Step

    with pytest.raises(TypeError):
        Step("s", "y = 1", frozenset(), frozenset({"y"}), ("a",))  # type: ignore[misc]
    assert Step("s", "y = 1", frozenset(), frozenset({"y"}), after=("a",)).after == ("a",)
