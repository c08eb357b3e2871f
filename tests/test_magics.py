"""What a notebook user does, through a real IPython shell."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import nbpar
from nbpar.errors import RunError

from .conftest import run_cell, run_cells

ISSUE_EXAMPLE = [
    "%%step load\nrows = list(range(200_000))",
    "%%step evens\nevens = sum(x for x in rows if x % 2 == 0)",
    "%%step odds\nodds = sum(x for x in rows if x % 2)",
    "%%step total\ntotal = evens + odds",
]


def test_issue_example_gives_the_sequential_namespace(shell, capsys):
    run_cells(shell, *ISSUE_EXAMPLE)
    out = capsys.readouterr().out
    assert "step evens: reads rows | writes evens | after load" in out
    assert "step total: reads evens, odds | writes total | after evens, odds" in out
    assert "rows" not in shell.user_ns  # registering runs nothing
    run_cells(shell, "%parrun --workers 2")
    rows = list(range(200_000))
    assert shell.user_ns["rows"] == rows
    assert shell.user_ns["evens"] == sum(x for x in rows if x % 2 == 0)
    assert shell.user_ns["odds"] == sum(x for x in rows if x % 2)
    assert shell.user_ns["total"] == sum(rows)
    result = nbpar.last_run()
    assert result is not None and result.ok
    assert {s.status for s in result.steps.values()} == {"done"}
    assert all(s.worker.startswith("pid ") for s in result.steps.values())


def test_step_help_is_generated(shell, capsys):
    shell.run_line_magic("pinfo", "%%step")
    out = capsys.readouterr().out
    assert "--after" in out and "--backend" in out and "--run" in out
    assert "%%step [--after STEP [STEP ...]]" in out and "%step [" not in out.replace("%%step [", "")


def test_bad_magic_option_is_a_usage_error(shell):
    with pytest.raises(UsageError, match="invalid choice"):
        shell.run_cell_magic("step", "a --backend gpu", "x = 1")
    with pytest.raises(UsageError):
        shell.run_line_magic("parrun", "--workers many")
    assert "a" not in shell.magics_manager.registry["NbparMagics"].pipeline.steps


def test_workers_must_be_positive(shell):
    run_cells(shell, "%%step a\nx = 1")
    with pytest.raises(UsageError, match="--workers must be at least 1"):
        shell.run_line_magic("parrun", "--workers 0")
    assert "x" not in shell.user_ns


def test_two_writers_of_a_name_each_write_a_version(shell, capsys):
    run_cells(shell, "%%step a\nx = 1", "%%step r\nr = x + 1", "%%step b\nx = 2", "%%step s\ns = x + 1")
    out = capsys.readouterr().out
    assert "step r: reads x | writes r | after a" in out  # (one writer of x when it registered)
    assert "step s: reads x (from b) | writes s | after b" in out
    run_cells(shell, "%parrun --no-widget --backend thread")
    assert (shell.user_ns["r"], shell.user_ns["s"], shell.user_ns["x"]) == (2, 3, 2)


def test_a_read_of_a_name_only_a_step_below_writes_says_what_to_do(shell):
    run_cells(shell, "%%step use\ny = later + 1", "%%step make\nlater = 1")
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("parrun", "--no-widget")
    message = str(info.value)
    assert "step 'use' reads `later`, which no step above it writes (step 'make', below it, does" in message
    assert "%parforget use" in message
    assert "y" not in shell.user_ns and "later" not in shell.user_ns


def test_cycle_lists_each_step_on_its_own_line(shell):
    run_cells(shell, "%%step a\nx = 1", "%%step b\nz = x + 1")
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("step", "a --after b", "x = 1")
    message = str(info.value)
    assert "cycle" in message
    lines = [line.strip() for line in message.splitlines() if "waits for" in line]
    assert sorted(lines) == sorted(["a  waits for  b  (--after)", "b  waits for  a  (reads x)"])
    pipeline = shell.magics_manager.registry["NbparMagics"].pipeline
    assert list(pipeline.steps) == ["a", "b"] and pipeline.steps["a"].after == ()


def test_after_unknown_step(shell):
    with pytest.raises(UsageError, match=r"step 'b': --after names 'lod', which is not a step"):
        shell.run_cell_magic("step", "b --after lod", "x = 1")


def test_after_adds_an_edge(shell, capsys):
    run_cells(
        shell, "%%step a\nimport time\nt_a = time.time()", "%%step b --after a\nimport time as _t\nt_b = _t.time()"
    )
    assert "after a" in capsys.readouterr().out
    run_cells(shell, "%parrun --backend thread --workers 2")
    result = nbpar.last_run()
    assert result.steps["b"].start >= result.steps["a"].end


def test_parrun_unknown_step(shell):
    run_cells(shell, "%%step a\nx = 1")
    with pytest.raises(UsageError, match="no step named 'nope'. Known steps: a"):
        shell.run_line_magic("parrun", "nope")


def test_parforget(shell, capsys):
    run_cells(shell, "%%step a\nx = 1", "%%step b\ny = x + 1", "%parforget b")
    assert "step b forgotten" in capsys.readouterr().out
    assert list(shell.magics_manager.registry["NbparMagics"].pipeline.steps) == ["a"]
    with pytest.raises(UsageError, match="no step named 'b'"):
        shell.run_line_magic("parforget", "b")


def test_parforget_that_would_close_a_cycle_is_refused_and_changes_nothing(shell):
    # d reads u from b; a waits for d. Without b, d would read a's u: a loop.
    run_cells(shell, "%%step a\nu = 1", "%%step b\nu = 2", "%%step d\nw = u", "%%step a --after d\nu = 1")
    shell.user_ns["kept"] = 7
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("parforget", "b")
    assert "d  waits for  a  (reads u)" in str(info.value) and "a  waits for  d  (--after)" in str(info.value)
    assert list(shell.magics_manager.registry["NbparMagics"].pipeline.steps) == ["a", "b", "d"]
    assert shell.user_ns["kept"] == 7


def test_forgotten_after_target_is_an_error_at_run_start(shell):
    run_cells(shell, "%%step a\nx = 1", "%%step b --after a\ny = 2", "%parforget a")
    with pytest.raises(UsageError, match="step 'b': --after names 'a', which is no longer a step"):
        shell.run_line_magic("parrun", "")


def test_syntax_error_names_the_step_and_cell_line(shell):
    with pytest.raises(UsageError, match="step 'a': syntax error on line 3 of the cell"):
        shell.run_cell_magic("step", "a", "x = 1\ny = (\n")


def test_ipython_syntax_in_a_step_is_transformed(shell):
    run_cells(shell, "%%step a --backend inline\nx = 1\nfiles = !echo hi")
    pipeline = shell.magics_manager.registry["NbparMagics"].pipeline
    assert pipeline.steps["a"].writes == {"x", "files"}


def test_missing_input_names_step_and_variable(shell):
    run_cells(shell, "%%step a\ny = undefined_thing + 1")
    with pytest.raises(UsageError, match=r"step 'a' reads `undefined_thing`, which no step writes"):
        shell.run_line_magic("parrun", "")
    assert "y" not in shell.user_ns


def test_notebook_functions_and_classes_work_in_worker_processes(shell):
    run_cells(
        shell,
        "class Point:\n    def __init__(self, x): self.x = x\n",
        "def double(p):\n    return Point(p.x * 2)\n",
        "%%step a\np = double(Point(21))",
        "%parrun --workers 2",
    )
    p = shell.user_ns["p"]
    assert p.x == 42
    assert type(p) is shell.user_ns["Point"]  # the notebook's class, round-tripped
    assert nbpar.last_run().steps["a"].worker.startswith("pid ")


def test_print_reaches_the_user_labelled_with_the_step(shell, capsys):
    run_cells(shell, "%%step a\nprint('hello from a')\nx = 1", "%parrun --workers 1")
    assert "[a] hello from a" in capsys.readouterr().out
    assert nbpar.last_run().steps["a"].output == "hello from a\n"


def test_failed_step_shows_user_traceback_with_cell_line_numbers(shell, capsys):
    run_cells(
        shell,
        "%%step ok\nfine = 1",
        "%%step bad\nhalf = 1\nboom = half / 0",
        "%%step after_bad\nlater = boom + 1",
    )
    result = run_cell(shell, "%parrun --workers 2")
    assert isinstance(result.error_in_exec, RunError)
    shown = capsys.readouterr().out
    assert "step 'bad' failed" in shown
    assert 'File "<step bad>", line 3, in <module>' in shown
    assert "boom = half / 0" in shown
    assert "ZeroDivisionError" in shown
    assert "nbpar/" not in shown and "worker.py" not in shown  # none of nbpar's frames
    assert shell.user_ns["fine"] == 1
    assert "half" not in shell.user_ns and "boom" not in shell.user_ns  # failed: writes nothing
    run = nbpar.last_run()
    assert run.steps["after_bad"].status == "skipped"
    assert run.steps["after_bad"].reason == "it needs 'bad', which failed"


def test_up_to_date_steps_are_skipped_unless_forced(shell):
    run_cells(shell, "%%step a\nx = [1, 2]", "%%step b\ny = len(x)", "%parrun --backend thread")
    first_x = shell.user_ns["x"]
    run_cells(shell, "%parrun --backend thread")
    assert {s.status for s in nbpar.last_run().steps.values()} == {"up-to-date"}
    assert shell.user_ns["x"] is first_x
    run_cells(shell, "%parrun --backend thread --force")
    assert {s.status for s in nbpar.last_run().steps.values()} == {"done"}
    assert shell.user_ns["x"] is not first_x


def test_changed_code_reruns_the_step_and_its_dependents(shell):
    run_cells(shell, "%%step a\nx = 1", "%%step b\ny = x + 1", "%%step c\nz = 0", "%parrun --backend thread")
    run_cells(shell, "%%step a\nx = 10", "%parrun --backend thread")
    statuses = {n: s.status for n, s in nbpar.last_run().steps.items()}
    assert statuses == {"a": "done", "b": "done", "c": "up-to-date"}
    assert shell.user_ns["y"] == 11


def test_changed_notebook_input_reruns_the_step(shell):
    run_cells(shell, "k = 2", "%%step a\nx = k * 3", "%parrun --backend thread")
    run_cells(shell, "k = 5", "%parrun --backend thread")
    assert nbpar.last_run().steps["a"].status == "done"
    assert shell.user_ns["x"] == 15


def test_step_run_option_runs_it_with_what_it_needs(shell):
    run_cells(shell, "%%step a\nx = 1", "%%step other\nw = 5", "%%step b --run --workers 1\ny = x + 1")
    assert shell.user_ns["y"] == 2
    assert "w" not in shell.user_ns
    assert set(nbpar.last_run().steps) == {"a", "b"}


def test_parrun_named_step_runs_only_what_it_needs(shell):
    run_cells(shell, "%%step a\nx = 1", "%%step other\nw = 5", "%%step b\ny = x + 1", "%parrun b --backend inline")
    assert shell.user_ns["y"] == 2 and "w" not in shell.user_ns


def test_dry_run_prints_the_plan_and_runs_nothing(shell, capsys):
    run_cells(shell, "%%step a\nx = 1", "%%step b\ny = x + 1")
    capsys.readouterr()
    run_cells(shell, "%parrun --dry-run")
    out = capsys.readouterr().out
    assert "2 of 2 steps to run" in out and "b  (after a)" in out
    assert "x" not in shell.user_ns


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (["%%step b\ny = never_defined + 1"], "`never_defined`, which no step writes"),
        (["gen = (i for i in range(3))", "%%step b\ny = list(gen)"], "`gen`"),
        (["%%step b --backend process\ny = 1", "%%step c\nz = y + 1"], None),
    ],
    ids=["undefined input", "unsendable input", "valid"],
)
def test_a_dry_run_refuses_what_the_real_run_refuses_and_runs_nothing(shell, capsys, cells, message):
    run_cells(shell, *cells)
    before = dict(shell.user_ns)
    if message is None:  # a valid plan: printed, nothing run
        capsys.readouterr()
        shell.run_line_magic("parrun", "--dry-run")
        assert "steps to run" in capsys.readouterr().out
    else:
        with pytest.raises(UsageError) as dry:
            shell.run_line_magic("parrun", "--dry-run")
        with pytest.raises(UsageError) as real:
            shell.run_line_magic("parrun", "")
        assert message in str(dry.value)
        assert str(dry.value) == str(real.value)  # the same check, the same words
    assert shell.user_ns.keys() == before.keys() and "y" not in shell.user_ns


def test_fail_fast_cancels_the_rest(shell):
    run_cells(
        shell,
        "%%step bad\nraise ValueError('no')",
        "%%step slow\nimport time\ntime.sleep(3)\nslow_done = True",
    )
    result = run_cell(shell, "%parrun --fail-fast --backend thread --workers 2")
    assert isinstance(result.error_in_exec, RunError)
    run = nbpar.last_run()
    assert run.steps["bad"].status == "failed"
    assert run.steps["slow"].status == "cancelled"
    assert "--fail-fast" in run.steps["slow"].reason
    assert "slow_done" not in shell.user_ns


def test_unload_shuts_the_workers_down(shell):
    run_cells(shell, "%%step a\nimport os\npid = os.getpid()", "%parrun --workers 1")
    import psutil  # noqa: PLC0415 - only this test needs it

    worker = psutil.Process(shell.user_ns["pid"])
    run_cells(shell, "%unload_ext nbpar")
    worker.wait(timeout=10)
    assert not worker.is_running()


def test_parrun_without_steps_says_how_to_make_one(shell):
    with pytest.raises(UsageError, match="no steps to run: mark cells with %%step NAME"):
        shell.run_line_magic("parrun", "")


def test_bad_step_name(shell):
    with pytest.raises(UsageError, match="'1st' is not a valid step name"):
        shell.run_cell_magic("step", "1st", "x = 1")


def test_bad_defaults_in_the_environment_are_named(shell, monkeypatch):
    run_cells(shell, "%%step a\nx = 1")
    monkeypatch.setenv("NBPAR_BACKEND", "gpu")
    with pytest.raises(UsageError, match="NBPAR_BACKEND is 'gpu'; choose process, thread, inline, auto"):
        shell.run_line_magic("parrun", "")
    monkeypatch.setenv("NBPAR_BACKEND", "thread")
    monkeypatch.setenv("NBPAR_WORKERS", "lots")
    with pytest.raises(UsageError, match="NBPAR_WORKERS is 'lots'"):
        shell.run_line_magic("parrun", "")
    monkeypatch.setenv("NBPAR_WORKERS", "3")
    run_cells(shell, "%parrun")
    assert (nbpar.last_run().backend, nbpar.last_run().workers) == ("thread", 3)


def test_parsteps_and_pardag_in_a_terminal(shell, capsys):
    run_cells(shell, "xs = [1, 2]", "%%step a\nx = 1", "%%step b --over xs --slices 2\ny = [x + v for v in xs]")
    capsys.readouterr()
    run_cells(shell, "%parsteps")
    table = capsys.readouterr().out
    assert "step" in table and "reads" in table and "xs, 2 slices" in table and "waiting" in table
    run_cells(shell, "%parrun --backend inline", "%pardag")
    dag = capsys.readouterr().out
    assert "up to date  b  (after a)" in dag


def _pipeline(shell):
    return shell.magics_manager.registry["NbparMagics"].pipeline


BAD_LINES = [
    # (magic, line, what the one-line message must say)
    ("parrun", "--workers -1", "--workers must be at least 1, not -1"),
    ("parrun", "--workers 0 --dry-run", "--workers must be at least 1"),
    ("parrun", "--backend gpu", "invalid choice: 'gpu'"),
    ("parrun", "--timeout 0", "--timeout must be a number of seconds above 0"),
    ("parrun", "--timeout -2", "--timeout must be a number of seconds above 0"),
    ("parrun", "--timeout nan", "not nan"),
    ("parrun", "--retries -1", "--retries must be 0 or more"),
    ("parrun", "nope", "no step named 'nope'"),
    ("parrun", "--dry-run nope", "no step named 'nope'"),
    ("parrun", "a 'unclosed", "No closing quotation: close the quote"),
    ("parrun", "--workers 2 --workers 3", "--workers: given twice"),
    ("parrun", "--force --force", "--force: given twice"),
    ("parrun", "--bogus", "%parrun: unrecognized arguments: --bogus. %parrun? shows the options"),
    ("parforget", "nope", "no step named 'nope'"),
    ("parforget", "'a", "No closing quotation"),
    ("parforget", "", "required: STEP"),
    ("parwait", "--timeout -1", "%parwait: --timeout must be 0 seconds or more"),
    ("parwait", "--timeout nan", "%parwait: --timeout must be 0 seconds or more"),
    ("parstatus", "extra", "%parstatus: unrecognized arguments: extra"),
    ("pardag", "'", "No closing quotation"),
]


@pytest.mark.parametrize(("magic", "line", "message"), BAD_LINES)
def test_bad_line_magic_input_is_a_one_line_usage_error(shell, magic, line, message):
    run_cells(shell, "%%step a\nx = 1")
    with pytest.raises(UsageError) as info:
        shell.run_line_magic(magic, line)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert list(_pipeline(shell).steps) == ["a"] and "x" not in shell.user_ns


BAD_STEPS = [
    ("", "%%step needs a name"),
    ("--run", "required: NAME"),
    ("1st", "'1st' is not a valid step name: a step name is a Python identifier"),
    ("a-b", "'a-b' is not a valid step name"),
    ("a.b", "'a.b' is not a valid step name"),
    ("b --after nope", "step 'b': --after names 'nope', which is not a step"),
    ("b --after b", "step 'b': --after b names the step itself"),
    ("b --over xs --slices 0", "step 'b': --slices must be at least 1, not 0"),
    ("b --over xs --slice-size -3", "step 'b': --slice-size must be at least 1, not -3"),
    ("b --over xs --filter 1x", "step 'b': --filter '1x': name a function"),
    ("b --slices 2", "step 'b': --slices needs --over VAR"),
    ("b --timeout 0", "step 'b': --timeout must be a number of seconds above 0"),
    ("b --timeout nan", "step 'b': --timeout must be"),
    ("b --retries -1", "step 'b': --retries must be 0 or more"),
    ("b --backend gpu", "%%step: argument --backend: invalid choice"),
    ("b --workers 2", "step 'b': --workers only apply with --run"),
    ("b --run --workers 0", "step 'b': --workers must be at least 1"),
    ("b --timeout 1 --timeout 2", "--timeout: given twice"),
    ("b --over", "--over: expected one argument"),
    ("b --nope", "unrecognized arguments: --nope"),
    ("b 'unclosed", "%%step b 'unclosed: No closing quotation"),
]


@pytest.mark.parametrize(("line", "message"), BAD_STEPS)
def test_bad_step_input_is_a_one_line_usage_error_that_changes_nothing(shell, line, message):
    run_cells(shell, "xs = [1, 2]", "%%step a\nx = 1", "%%step b\ny = list(xs)")
    before = dict(_pipeline(shell).steps)
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("step", line, "y = [v + x for v in xs]")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert _pipeline(shell).steps == before


def test_a_step_whose_run_cannot_start_keeps_its_previous_version(shell):
    run_cells(shell, "%%step a\nx = 1")
    previous = _pipeline(shell).steps["a"]
    with pytest.raises(UsageError, match="reads `undefined_k`.*Step 'a' keeps its previous version"):
        shell.run_cell_magic("step", "a --run --backend inline", "x = undefined_k")
    assert _pipeline(shell).steps == {"a": previous}
    with pytest.raises(UsageError, match="Step 'new' is not registered"):
        shell.run_cell_magic("step", "new --run --backend inline", "z = undefined_k")
    assert list(_pipeline(shell).steps) == ["a"]


def test_an_infinite_timeout_is_no_limit(shell):
    run_cells(shell, "%%step a --timeout inf\nx = 1", "%parrun --timeout inf --backend inline")
    assert _pipeline(shell).steps["a"].timeout == float("inf")
    assert shell.user_ns["x"] == 1


def test_unicode_identifiers_are_step_names(shell):
    run_cells(shell, "%%step étape\nx = 1", "%parrun étape --backend inline")
    assert nbpar.last_run().steps["étape"].status == "done"


RESUME = [
    "%%step ok1\nfine = 1",
    "%%step ok2\nother = 2",
    "%%step bad\nhalf = fine\nboom = half / 0",
    "%%step after_bad\nlater = boom + 1",
    "%%step final\nend = later + other",
]


@pytest.mark.parametrize("background", [False, True])
def test_rerun_after_a_fix_says_what_it_keeps_and_runs_only_the_rest(shell, capsys, background):
    run_cells(shell, *RESUME)
    assert isinstance(run_cell(shell, "%parrun --backend thread --workers 2").error_in_exec, RunError)
    run_cells(shell, "%%step bad\nhalf = fine\nboom = half / 1")
    capsys.readouterr()
    run_cells(shell, "%parrun --backend thread --workers 2" + (" --background" if background else ""))
    lines = capsys.readouterr().out.splitlines()
    said = (
        "nbpar: 2 of 5 steps are up to date (ok1, ok2); running 3: bad (no successful run yet), "
        "after_bad (needs bad, which runs), final (needs after_bad, which runs)."
    )
    assert lines[0] == said  # before anything else: the run has not started yet
    if background:
        run_cells(shell, "%parwait")
    statuses = {n: s.status for n, s in nbpar.last_run().steps.items()}
    assert statuses == {"ok1": "up-to-date", "ok2": "up-to-date", "bad": "done", "after_bad": "done", "final": "done"}
    assert shell.user_ns["end"] == 4


def test_a_run_with_nothing_to_do_says_so_and_how_to_force(shell, capsys):
    run_cells(shell, "%%step a\nx = 1", "%%step b\ny = x + 1", "%parrun --backend inline")
    capsys.readouterr()
    run_cells(shell, "%parrun --backend inline")
    out = capsys.readouterr().out
    assert "nbpar: all 2 steps are up to date (a, b); nothing to run (--force reruns them)." in out
    run_cells(shell, "%parrun --backend inline --force")
    assert "up to date" not in capsys.readouterr().out.split("\n")[0]


def test_a_long_list_of_kept_steps_is_cut_short(shell, capsys):
    run_cells(shell, *(f"%%step s{i}\nv{i} = {i}" for i in range(11)), "%parrun --backend inline")
    run_cells(shell, "%%step s10\nv10 = -1")
    capsys.readouterr()
    run_cells(shell, "%parrun --backend inline")
    out = capsys.readouterr().out
    kept = "(s0, s1, s2, s3, s4, s5, s6, s7 and 2 more)"
    assert f"nbpar: 10 of 11 steps are up to date {kept}; running 1: s10 (code changed)." in out


# -- up to date by value (issue 11, item 5) ------------------------------------


@pytest.mark.parametrize(
    ("make", "change"),
    [
        ("weights = [10, 20]", "weights.append(50)"),
        ("weights = {'a': [1, 2]}", "weights['a'][0] = 9"),
        ("import numpy as np\nweights = np.arange(6.0)", "weights[3] = -1"),
        ("import pandas as pd\nweights = pd.DataFrame({'a': [1, 2]})", "weights.loc[0, 'a'] = 1000"),
        ("import pandas as pd\nweights = pd.Series([1.0, 2.0])", "weights.iloc[1] = 5"),
        ("weights = {1, 2}", "weights.add(3)"),
    ],
)
def test_an_input_changed_in_place_makes_its_readers_run(shell, capsys, make, change):
    run_cells(shell, make, "%%step total\ntotal = repr(weights)", "%parrun --backend inline")
    run_cells(shell, change)
    capsys.readouterr()
    run_cells(shell, "%parrun --backend inline")
    assert nbpar.last_run().steps["total"].status == "done"
    assert shell.user_ns["total"] == repr(shell.user_ns["weights"])
    assert "running 1: total (input `weights` changed)." in capsys.readouterr().out


def test_a_constants_cell_run_again_keeps_its_readers_up_to_date(shell):
    run_cells(shell, "N = 10_000\nname = 'x' * 3\nsizes = [1, 2.5, (3, 'a')]", "%%step a\nm = (N, name, sizes)")
    run_cells(shell, "%parrun --backend thread")
    run_cells(shell, "N = 10_000\nname = 'x' * 3\nsizes = [1, 2.5, (3, 'a')]")  # new objects, equal values
    run_cells(shell, "%parrun --backend thread")
    assert nbpar.last_run().steps["a"].status == "up-to-date"


def test_an_output_changed_in_place_reruns_its_readers_not_its_maker(shell, capsys):
    run_cells(shell, "%%step make\nfeats = [1, 2]", "%%step use\nn = sum(feats)", "%parrun --backend thread")
    run_cells(shell, "feats.append(10)")
    capsys.readouterr()
    run_cells(shell, "%parrun --backend thread")
    statuses = {n: s.status for n, s in nbpar.last_run().steps.items()}
    assert statuses == {"make": "up-to-date", "use": "done"}  # the user's change is kept, and read
    assert shell.user_ns["n"] == 13
    assert "running 1: use (input `feats` changed)." in capsys.readouterr().out


def test_a_value_that_cannot_be_compared_always_counts_as_changed(shell, capsys):
    run_cells(shell, "import threading\nlock = threading.Lock()", "%%step a\nheld = lock.locked()")
    run_cells(shell, "%parrun --backend thread")
    capsys.readouterr()
    run_cells(shell, "%parrun --backend thread")
    assert nbpar.last_run().steps["a"].status == "done"
    assert "a (input `lock` (a lock) cannot be compared)" in capsys.readouterr().out


def test_dry_run_says_why_each_step_runs(shell, capsys):
    run_cells(shell, "k = 1", "%%step a\nx = k", "%%step b\ny = x + 1", "%%step c\nz = 0", "%parrun --backend inline")
    run_cells(shell, "k = 2", "%%step d\nw = 1")
    capsys.readouterr()
    run_cells(shell, "%parrun --dry-run")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "nbpar plan: 3 of 4 steps to run"
    assert sorted(lines[1:]) == [
        "  run         a: input `k` changed",
        "  run         b  (after a): needs a, which runs",
        "  run         d: no successful run yet",
        "  up to date  c",
    ]
    run_cells(shell, "%parrun --dry-run --force")
    assert all(line.endswith(": --force") for line in capsys.readouterr().out.splitlines()[1:])


def test_one_kept_step_is_said_in_good_grammar(shell, capsys):
    run_cells(shell, "%%step a\nx = 1", "%%step b\ny = 2", "%%step c\nz = 3", "%parrun --backend inline")
    run_cells(shell, "%%step b\ny = 20", "%%step c\nz = 30")
    capsys.readouterr()
    run_cells(shell, "%parrun --backend inline")
    out = capsys.readouterr().out
    assert "nbpar: 1 of 3 steps is up to date (a); running 2: b (code changed), c (code changed)." in out


@pytest.fixture
def future_annotations(shell):
    """The shell compiles later cells with `from __future__ import annotations`
    (which a reset of the shell does not undo: undone here)."""
    saved = shell.compile.flags
    run_cells(shell, "from __future__ import annotations")
    yield
    shell.compile.flags = saved


def test_a_notebook_wide_future_import_reaches_steps(shell, future_annotations, capsys):
    run_cells(shell, "%%step typed\ndef f(a: Model) -> Report:\n    return a\nseen = f.__annotations__")
    assert "step typed: reads - | writes f, seen" in capsys.readouterr().out
    run_cells(shell, "%parrun --no-widget", "expected = f.__annotations__")
    assert shell.user_ns["seen"] == {"a": "Model", "return": "Report"} == shell.user_ns["expected"]


def test_a_step_registered_again_under_a_future_import_is_not_up_to_date(shell, capsys):
    cell = "%%step typed\ndef f(a: int) -> int:\n    return a\nseen = f.__annotations__"
    run_cells(shell, cell, "%parrun --no-widget --backend thread")
    assert shell.user_ns["seen"] == {"a": int, "return": int}
    saved = shell.compile.flags
    try:
        run_cells(shell, "from __future__ import annotations", cell, "%parrun --no-widget --backend thread")
    finally:
        shell.compile.flags = saved
    assert "typed (compiler flags changed" in capsys.readouterr().out
    assert shell.user_ns["seen"] == {"a": "int", "return": "int"}


def test_code_inside_time_is_seen_and_its_writes_land(shell, capsys):
    run_cells(shell, "y = 1", "%%step a\n%time y = 2", "%%step b\nz = y + 1")
    assert "step b: reads y | writes z | after a" in capsys.readouterr().out
    run_cells(shell, "%parrun --no-widget")
    assert (shell.user_ns["y"], shell.user_ns["z"]) == (2, 3)
    assert "CPU times" in capsys.readouterr().out


def test_timeit_only_reads(shell, capsys):
    run_cells(
        shell,
        "%%step a\nx = 3",
        "%%step b\n%timeit -n1 -r1 w = x * 2\nt = %timeit -o -q -n1 -r1 x + 1",
        "%%step c\n%%timeit -n1 -r1\nx * 2",
    )
    out = capsys.readouterr().out
    assert "step b: reads x | writes t | after a" in out and "step c: reads x | writes - | after a" in out
    run_cells(shell, "%parrun --no-widget")
    assert "w" not in shell.user_ns and shell.user_ns["t"].loops == 1


def test_capture_that_binds_nothing_runs_in_a_step(shell, capsys):
    run_cells(shell, "%%step a\nx = 3", "%%step quiet\n%%capture\nprint('hidden', x)", "%parrun --no-widget")
    assert "hidden" not in capsys.readouterr().out
    assert nbpar.last_run().steps["quiet"].status == "done"


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%%time\nq = f()", r"%%time binds `q` in the notebook's namespace, not the step's.*drop %%time"),
        ("%%capture out\nf()", r"%%capture binds `out` in the notebook's namespace.*drop %%capture"),
        ("%%capture\nq = f()", r"%%capture binds `q` in the notebook's namespace"),
        ("%prun q = f()", r"%prun binds `q` in the notebook's namespace.*profile in an ordinary cell"),
        ("%timeit -v res f()", r"%timeit binds `res`.*drop -v"),
        ("%debug q = f()", r"%debug is interactive and a step runs unattended: debug in an ordinary cell"),
        ("%debug", r"%debug is interactive"),
    ],
)
def test_a_magic_whose_writes_nbpar_cannot_take_is_refused(shell, cell, message):
    with pytest.raises(UsageError, match=r"step 's': " + message):
        shell.run_cell_magic("step", "s", cell)
    assert "s" not in shell.magics_manager.registry["NbparMagics"].pipeline.steps


def test_a_star_import_is_refused_saying_what_to_do(shell):
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("step", "s", "from math import *\ny = floor(pi)")
    assert str(info.value) == (
        "step 's': `from math import *` binds names nbpar cannot see, so no step could wait for them: import "
        "the names you use (`from math import floor, pi`) or the module (`import math`)."
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x = 1\nfrom __future__ import annotations", "line 3 of the cell: from __future__ imports must occur"),
        ("x = 1\nreturn x", "line 3 of the cell: 'return' outside function"),
        ("for i in r:\n    yield i", "line 3 of the cell: 'yield' outside function"),
        ("nonlocal x", "line 2 of the cell: nonlocal declaration not allowed at module level"),
        ("x = 1\ny = await f()", r"line 3 of the cell: 'await' outside function \(IPython runs top-level `await`"),
        ("async with m():\n    pass", r"line 2 of the cell: 'async with' outside async function \(IPython runs"),
    ],
)
def test_a_cell_python_cannot_compile_is_refused_with_its_line(shell, body, message):
    with pytest.raises(UsageError, match=r"step 's': syntax error on " + message):
        shell.run_cell_magic("step", "s", body)
    assert "s" not in shell.magics_manager.registry["NbparMagics"].pipeline.steps


def test_a_future_import_in_a_step_applies_to_it_and_to_later_cells(shell):
    saved = shell.compile.flags
    try:
        run_cells(
            shell, '%%step s\n"doc"\nfrom __future__ import annotations\ndef f(a: Nope): pass\nseen = f.__annotations__'
        )
        run_cells(shell, "def g(b: Later): pass", "%parrun --no-widget")
        assert shell.user_ns["seen"] == {"a": "Nope"}
        assert shell.user_ns["g"].__annotations__ == {"b": "Later"}  # as if the step's cell had run before
    finally:
        shell.compile.flags = saved


def test_deleting_what_a_step_above_makes_deletes_its_version(shell):
    run_cells(shell, "%%step train\nmodel = 1", "%%step keep\nkept = model", "%%step clean\ndel model")
    run_cells(shell, "%parrun --no-widget --backend thread")
    assert shell.user_ns["kept"] == 1 and "model" not in shell.user_ns


def test_a_function_reading_a_global_does_not_write_it(shell, capsys):
    run_cells(shell, "%%step a\nx = 2", "%%step b\ndef f():\n    global x\n    return x\nr = f()")
    assert "step b: reads x | writes f, r | after a" in capsys.readouterr().out
    run_cells(shell, "%parrun --no-widget")
    assert shell.user_ns["r"] == 2


def test_except_as_name_used_in_a_lambda_is_not_a_read(shell, capsys):
    run_cells(shell, "%%step a\ntry:\n    1 / 0\nexcept ZeroDivisionError as e:\n    why = (lambda: str(e))()")
    assert "step a: reads - | writes why" in capsys.readouterr().out
    run_cells(shell, "%parrun --no-widget")
    assert shell.user_ns["why"] == "division by zero"


def test_a_comprehension_in_time_that_needs_the_steps_names_is_refused(shell):
    # IPython runs %time's code with the notebook's namespace as globals: the
    # generator would use the notebook's k (10), where a top-to-bottom run has 2
    run_cells(shell, "k = 10")
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("step", "s", "k = 2\n%time s = sum(x * k for x in range(3))")
    assert str(info.value) == (
        "step 's': the code %time runs would take `k` from the notebook's namespace, not the step's (IPython runs "
        "it with the notebook's names as globals): drop %time (nbpar times every step), or bind it in another "
        "step (whose outputs are in the notebook's namespace when this one runs)."
    )
    run_cells(shell, "%%step a\nk = 2", "%%step s\n%time s = sum(x * k for x in range(3))", "%parrun --no-widget")
    assert shell.user_ns["s"] == 6  # as the advice says: bound in another step, k is the notebook's at run time


def test_editing_a_step_during_a_background_run_says_the_run_keeps_the_old_version(shell, capsys):
    run_cells(
        shell,
        "%%step slow\nimport time\ntime.sleep(1.0)\nslow = 'old'",
        "%%step other\nother = 1",
        "%parrun --background --backend thread",
    )
    capsys.readouterr()
    run_cells(shell, "%%step slow\nimport time\ntime.sleep(1.0)\nslow = 'new'")
    said = capsys.readouterr().out
    assert "a run is going on with the previous version of step 'slow', and keeps it" in said
    assert "the next %parrun runs this one" in said
    run_cells(shell, "%%step other\nother = 1")  # registered again unchanged: nothing to say
    assert "previous version" not in capsys.readouterr().out
    run_cells(shell, "%parwait")
    assert shell.user_ns["slow"] == "old"
    run_cells(shell, "%parrun --backend thread")
    assert "slow (code changed)" in capsys.readouterr().out and shell.user_ns["slow"] == "new"
    run_cells(shell, "%%step slow\nslow = 'newer'")  # no run going on: nothing to say
    assert "previous version" not in capsys.readouterr().out


# Functions in different steps that call each other, and a step calling one (issue 12).
MUTUAL = [
    "%%step evens\ndef is_even(n):\n    return True if n == 0 else is_odd(n - 1)\n",
    "%%step odds\ndef is_odd(n):\n    return False if n == 0 else is_even(n - 1)\n",
    "%%step use\nparity = [is_even(n) for n in range(6)], is_odd(7)",
]


def _top_to_bottom(shell, *cells: str) -> dict:
    """The namespace running the bodies of `cells` as plain cells leaves."""
    shell.reset(new_session=False)
    run_cells(shell, *(cell.split("\n", 1)[1] for cell in cells))
    return dict(shell.user_ns)


@pytest.mark.parametrize("backend", ["process", "thread", "inline"])
@pytest.mark.parametrize("cells", [MUTUAL, [MUTUAL[1], MUTUAL[0], MUTUAL[2]]], ids=["even-first", "odd-first"])
def test_functions_in_different_steps_may_call_each_other(shell, capsys, backend, cells):
    expected = _top_to_bottom(shell, *cells)["parity"]
    shell.reset(new_session=False)
    run_cells(shell, *cells)  # no cycle: defining a function needs nothing it calls
    out = capsys.readouterr().out
    assert "step evens: reads - | writes is_even | after -" in out
    assert "step use: reads is_even, is_odd | writes parity | after evens, odds" in out
    run_cells(shell, f"%parrun --backend {backend} --workers 2")
    assert shell.user_ns["parity"] == expected == ([True, False, True, False, True, False], True)
    run_cells(shell, "later = is_even(10), is_odd(10)")  # the committed functions, called from a cell
    assert shell.user_ns["later"] == (True, False)


@pytest.mark.parametrize("backend", ["process", "thread", "inline"])
def test_a_function_reads_its_globals_where_it_is_called(shell, capsys, backend):
    # `scale` is bound in a cell below the function's: a top-to-bottom run
    # looks it up when `f` is called, so the caller reads it, not `define`
    cells = [
        "%%step define\n_offset = 1\ndef f():\n    return scale * 2 + _offset\n",
        "%%step setting\nscale = 3",
        "%%step call\ny = f()",
    ]
    assert _top_to_bottom(shell, *cells)["y"] == 7
    shell.reset(new_session=False)
    run_cells(shell, *cells)
    out = capsys.readouterr().out
    assert "step define: reads - | writes f | after -" in out
    assert "step call: reads f, scale (through f) | writes y | after define, setting" in out
    run = f"%parrun --backend {backend} --workers 2"
    run_cells(shell, run)
    assert shell.user_ns["y"] == 7
    run_cells(shell, "from_a_cell = f()")  # its globals are the notebook's: its `_offset` went along
    assert shell.user_ns["from_a_cell"] == 7
    run_cells(shell, run)  # nothing changed: the caller is up to date too
    assert {s.status for s in nbpar.last_run().steps.values()} == {"up-to-date"}

    run_cells(shell, "scale = 5")  # in an ordinary cell: `call` is stale, `define` is not
    capsys.readouterr()
    run_cells(shell, run)
    assert "call (input `scale` changed)" in capsys.readouterr().out
    assert shell.user_ns["y"] == 11
    steps = nbpar.last_run().steps
    assert (steps["define"].status, steps["setting"].status, steps["call"].status) == ("up-to-date",) * 2 + ("done",)

    run_cells(shell, "%%step setting\nscale = 10", run)  # the step that binds it changed
    assert shell.user_ns["y"] == 21 and shell.user_ns["f"]() == 21


def test_a_name_only_a_called_function_needs_is_named_with_it_when_missing(shell):
    run_cells(shell, "%%step define\ndef f():\n    return nowhere + 1\n", "%%step call\ny = f()")
    with pytest.raises(UsageError, match=r"step 'call' calls `f`, which needs `nowhere`, which no step writes"):
        shell.run_line_magic("parrun", "")


def test_a_name_bound_in_a_with_body_may_leave_the_version_above(shell):
    # `suppress` swallows the KeyError: `x` keeps the version of the step above, as top to bottom
    run_cells(
        shell,
        "%%step first\nx = 1",
        "%%step maybe\nfrom contextlib import suppress\nwith suppress(KeyError):\n    x = {}['k']",
        "%%step use\ny = x + 1",
    )
    run_cells(shell, "%parrun --no-widget --backend thread")
    assert shell.user_ns["y"] == 2 and shell.user_ns["x"] == 1


@pytest.mark.parametrize("backend", ["process", "thread", "inline"])
def test_a_last_writer_that_binds_nothing_leaves_the_version_above_it(shell, backend):
    cells = ["%%step first\nx = 1", "%%step maybe\nif x > 5:\n    x = 2\nflag = x > 5"]
    run_cells(shell, *cells, f"%parrun --no-widget --backend {backend}")
    assert shell.user_ns["x"] == 1 and shell.user_ns["flag"] is False
    run_cells(shell, "%%step first\nx = 10", f"%parrun --no-widget --backend {backend}")
    assert shell.user_ns["x"] == 2
    run_cells(shell, "%%step first\nx = 3", f"%parrun --no-widget --backend {backend}")
    assert shell.user_ns["x"] == 3  # (not the 2 of the run before)
