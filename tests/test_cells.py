"""A whole notebook as steps (issue 12): `nbpar run NOTEBOOK --steps all`,
`%parrun --cells`, and `run_cells_as_steps`, which both use; each compared
with what a top-to-bottom run (Run All) of the same cells leaves."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nbpar import cli
from nbpar.cells import NotebookError, cells_above, notebook_path, plan_cells, read_code_cells, run_cells_as_steps
from nbpar.magics import NbparMagics
from nbpar.pipeline import last_run

from .conftest import ROOT, run_cell, run_cells

EXAMPLE = ROOT / "example_notebooks" / "whole_notebook.ipynb"
NO_NAMES = "binds no names and changes none in place (it shows something)"

# The silent wrong result, as cells: `items.append(2)` is a step
# that writes a new version of `items`, and `n` is 2, as in Run All (on
# processes too).
NOTEBOOK = [
    "import math",
    "%time base = list(range(10))",
    "squares = [b * b for b in base]",
    "roots = [math.sqrt(b) for b in base]",
    "items = [1]",
    "items.append(2)",
    "n = len(items)",
    "",
    "total = sum(squares) + sum(roots) + n",
    "print('total', total)",
]


def user_names(ip: InteractiveShell) -> dict[str, Any]:
    """The notebook's own names (not IPython's, not `_private` ones)."""
    return {k: v for k, v in ip.user_ns.items() if not k.startswith("_") and k not in ip.user_ns_hidden}


def run_all(ip: InteractiveShell, sources: list[str]) -> dict[str, Any]:
    """What a top-to-bottom run of `sources` leaves, then a fresh namespace and nbpar."""
    run_cells(ip, *(s for s in sources if s.strip()))
    names = user_names(ip)
    ip.reset(new_session=False)
    ip.register_magics(NbparMagics(ip))
    return names


def write(path: Path, *cells: str, tags: dict[int, list[str]] | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c, metadata={"tags": (tags or {}).get(i, [])}) for i, c in enumerate(cells)]
    nbformat.write(nb, path)
    return path


# -- from the user's side ------------------------------------------------------------


def test_a_notebook_as_steps_leaves_what_a_top_to_bottom_run_leaves(shell: InteractiveShell, capsys):
    expected = run_all(shell, NOTEBOOK)
    capsys.readouterr()
    report = run_cells_as_steps(shell, NOTEBOOK, backend="process", workers=2)
    assert report.ok, capsys.readouterr()
    assert user_names(shell) == expected and shell.user_ns["n"] == 2
    assert report.in_kernel == [(2, "uses IPython (%time)"), (10, NO_NAMES)]
    assert report.steps == {1: "cell_1", 3: "cell_3", 4: "cell_4", 5: "cell_5", 6: "cell_6", 7: "cell_7", 9: "cell_9"}
    out = capsys.readouterr().out
    assert out.startswith(
        f"nbpar: cell 2 runs in the kernel: uses IPython (%time)\nnbpar: cell 10 runs in the kernel: {NO_NAMES}\n"
    )
    assert "total 306.306" in out  # the last cell ran in the kernel, in its place
    # One run a segment (the steps between kernel cells), each with its cells' steps only.
    assert [sorted(r.steps) for r in report.runs] == [
        ["cell_1"],
        ["cell_3", "cell_4", "cell_5", "cell_6", "cell_7", "cell_9"],
    ]
    assert report.runs[-1].steps["cell_7"].status == "done"
    assert report.runs[-1].deps["cell_7"] == {"cell_6"}  # cell 6's version of `items`
    assert report.runs[-1] is last_run() and all(r.ok for r in report.runs)


def test_the_last_segments_steps_stay_for_parsteps(shell: InteractiveShell, capsys):
    run_cells_as_steps(shell, ["a = 1", "print(a)", "b = a + 1", "c = b * 2"], backend="thread")
    capsys.readouterr()
    run_cell(shell, "%parsteps")
    table = capsys.readouterr().out
    assert "cell_3" in table and "cell_4" in table and "cell_1" not in table
    assert (shell.user_ns["a"], shell.user_ns["c"]) == (1, 4)


def test_a_cell_with_its_own_step_line_keeps_its_name_and_options(shell: InteractiveShell, capsys):
    report = run_cells_as_steps(shell, ["x = 2", "%%step double --backend inline\ny = x * 2", "z = y + 1"])
    assert report.ok and report.steps == {1: "cell_1", 2: "double", 3: "cell_3"}
    steps = shell.magics_manager.registry["NbparMagics"].pipeline.steps
    assert steps["double"].backend == "inline" and shell.user_ns["z"] == 5
    assert "step double: reads x | writes y | after cell_1" in capsys.readouterr().out  # the %%step cell's line


def test_a_failing_step_stops_the_run_as_run_all_would(shell: InteractiveShell, capsys):
    report = run_cells_as_steps(shell, ["a = 1", "b = a / 0", "%time c = 3", "d = 4"], backend="thread")
    assert report.failed == 2 and report.failure == "cell 2 of 4 failed; stopping."
    assert "ZeroDivisionError" in capsys.readouterr().out
    assert "a" in shell.user_ns and "c" not in shell.user_ns and "d" not in shell.user_ns


def test_a_failing_kernel_cell_stops_the_run(shell: InteractiveShell, capsys):
    report = run_cells_as_steps(shell, ["a = 1", "raise ValueError('plain')", "b = 2"], backend="thread")
    assert report.failed == 2 and "b" not in shell.user_ns
    assert "ValueError: plain" in capsys.readouterr().out


def test_a_syntax_error_fails_its_cell_as_in_run_all(shell: InteractiveShell, capsys):
    report = run_cells_as_steps(shell, ["a = 1", "b = (", "c = 2"], backend="thread")
    assert report.in_kernel == [(2, "syntax error on line 1 of the cell: '(' was never closed")]
    assert report.failed == 2 and shell.user_ns["a"] == 1 and "c" not in shell.user_ns
    assert "SyntaxError" in capsys.readouterr().out


def test_a_cell_tagged_raises_exception_may_fail(shell: InteractiveShell, capsys):
    report = run_cells_as_steps(shell, ["a = 1", "b = a / 0", "c = 2"], backend="thread", may_fail=[2])
    assert report.ok and report.in_kernel == [(2, "tagged raises-exception")] and shell.user_ns["c"] == 2


def test_redefined_names_are_steps_and_leave_what_run_all_leaves(shell: InteractiveShell, capsys):
    sources = [
        "data = [3, None, 1]",
        "data = [v for v in data if v is not None]",
        "for i in range(2):\n    pass\nfirst = i",
        "for i in range(5):\n    pass\nlast = i",
        "n = len(data)",
    ]
    expected = run_all(shell, sources)
    report = run_cells_as_steps(shell, sources, backend="thread")
    assert report.ok and report.in_kernel == []
    assert user_names(shell) == expected


# -- nbpar run --steps all -------------------------------------------------------------


def nbpar_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbpar.cli", "run", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_the_example_notebook_as_steps_prints_what_run_all_prints():
    plain = nbpar_run(str(EXAMPLE))
    steps = nbpar_run(str(EXAMPLE), "--steps", "all", "--workers", "2")
    assert plain.returncode == 0 and steps.returncode == 0, steps.stdout[-3000:] + steps.stderr
    summary = [line for line in plain.stdout.splitlines() if line.startswith("summary: ")]
    assert summary and summary[0] in steps.stdout.splitlines()
    out = steps.stdout
    assert out.startswith(
        "nbpar: cell 1 runs in the kernel: uses IPython (%matplotlib)\n"
        f"nbpar: cell 8 runs in the kernel: {NO_NAMES}\n"
        f"nbpar: cell 9 runs in the kernel: {NO_NAMES}\n"
    )
    assert "done    cell_3" in out and "done    cell_6" in out and "<Figure size 640x480 with 1 Axes>" in out
    assert "all 9 cells ran: 6 as steps, 3 in the kernel." in out


@pytest.mark.slow
def test_steps_all_fails_the_command_at_the_failing_cell(tmp_path: Path):
    nb = write(tmp_path / "bad.ipynb", "x = 1", "y = x / 0", "print('not reached')")
    done = nbpar_run(str(nb), "--steps", "all", "--backend", "thread")
    assert done.returncode == 1 and "ZeroDivisionError" in done.stdout and "not reached" not in done.stdout
    assert "nbpar: cell 2 of 3 failed; stopping." in done.stderr


def test_steps_all_refuses_a_missing_file_a_notebook_without_code_and_other_json(tmp_path: Path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.ipynb"), "--steps", "all"]) == 2
    assert "cannot read notebook" in capsys.readouterr().err
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# words only")]
    nbformat.write(nb, tmp_path / "words.ipynb")
    assert cli.main(["run", str(tmp_path / "words.ipynb"), "--steps", "all"]) == 2
    assert "words.ipynb has no code cells: there is nothing to run as steps." in capsys.readouterr().err
    for name, text in (("dict.ipynb", '{"a": 1}'), ("list.ipynb", "[1, 2]")):
        (tmp_path / name).write_text(text)
        assert cli.main(["run", str(tmp_path / name), "--steps", "all"]) == 2
        assert f"{name} is not a Jupyter notebook" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", str(tmp_path / "words.ipynb"), "--steps", "cells"])
    assert "invalid choice: 'cells'" in capsys.readouterr().err


# -- %parrun --cells -------------------------------------------------------------------


def test_parrun_cells_runs_the_saved_cells_above_it(shell: InteractiveShell, tmp_path: Path, capsys):
    running = f"%parrun --cells {tmp_path / 'nb.ipynb'} --backend thread"
    write(tmp_path / "nb.ipynb", *NOTEBOOK, running, "print('below, not run')")
    run_cells(shell, running)
    out = capsys.readouterr().out
    assert shell.user_ns["n"] == 2 and "below, not run" not in out
    assert "nbpar: 10 cells ran: 7 as steps, 2 in the kernel." in out


def test_parrun_cells_warns_when_the_notebook_was_not_saved(shell: InteractiveShell, tmp_path: Path, capsys):
    path = tmp_path / "nb.ipynb"
    write(path, "a = 1", f"%parrun --cells {path}", "b = 2")
    run_cells(shell, f"%parrun --cells {path} --backend thread")  # edited since saved
    err = capsys.readouterr().err
    assert "is not in" in err and "save the notebook first" in err and shell.user_ns["a"] == 1
    write(path, "a = 1")
    with pytest.raises(UsageError, match="no cell of .* runs %parrun --cells: save the notebook first"):
        shell.run_line_magic("parrun", f"--cells {path}")


def test_parrun_cells_misuse_is_a_usage_error(shell: InteractiveShell, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    path = write(tmp_path / "nb.ipynb", "a = 1", "%parrun --cells")
    with pytest.raises(UsageError, match="JPY_SESSION_NAME is not set.*%parrun --cells NOTEBOOK.ipynb"):
        shell.run_line_magic("parrun", "--cells")
    with pytest.raises(UsageError, match="it takes no step names \\(a\\)"):
        shell.run_line_magic("parrun", "a --cells")
    with pytest.raises(UsageError, match="takes --workers and --backend only, not --force"):
        shell.run_line_magic("parrun", f"--cells {path} --force")
    with pytest.raises(UsageError, match="cannot read notebook .*missing.ipynb"):
        shell.run_line_magic("parrun", f"--cells {tmp_path / 'missing.ipynb'}")
    (tmp_path / "other.json").write_text(json.dumps({"cells": []}))
    with pytest.raises(UsageError, match="other.json is not a Jupyter notebook"):
        shell.run_line_magic("parrun", f"--cells {tmp_path / 'other.json'}")
    top = write(tmp_path / "top.ipynb", f"%parrun --cells {tmp_path / 'top.ipynb'}")
    with pytest.raises(UsageError, match="there is no code cell above this one"):
        run_cell(shell, f"%parrun --cells {top}").raise_error()


@pytest.mark.slow
def test_parrun_cells_in_a_kernel_finds_its_notebook(kernel_name: str, tmp_path: Path, monkeypatch):
    """In a real kernel, the notebook's path from JPY_SESSION_NAME, as
    Jupyter Server sets it for each kernel it starts."""
    from .test_lifecycle import Kernel

    running = "%load_ext nbpar\n%parrun --cells"
    path = write(tmp_path / "nb.ipynb", *NOTEBOOK, running)
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    kernel = Kernel(kernel_name)
    try:
        reply = kernel.execute(running, timeout=120)
        assert reply.ename is None, reply.error
        assert "nbpar: 10 cells ran: 7 as steps, 2 in the kernel." in reply.text
        expected = sum(b * b for b in range(10)) + sum(math.sqrt(b) for b in range(10)) + 2
        assert kernel.ok("print(n, repr(total))").text.split() == ["2", repr(expected)]
    finally:
        kernel.close()


# -- which cells run in the kernel -----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind", "reason"),
    [
        ("y = 1", "step", ""),
        ("", "empty", ""),
        ("  \n\n", "empty", ""),
        ("# a comment only", "empty", ""),
        ("%matplotlib inline", "kernel", "uses IPython (%matplotlib)"),
        ("%load_ext autoreload", "kernel", "uses IPython (%load_ext)"),
        ("!pip install nothing", "kernel", "uses IPython (!pip)"),
        ("%%bash\necho hi", "kernel", "uses IPython (%%bash)"),
        ("%cd /tmp", "kernel", "uses IPython (%cd)"),
        ("files = !ls", "kernel", "uses IPython (!ls)"),
        ("from math import *", "kernel", "`from math import *` binds names nbpar cannot see, so no step could wait"),
        ("x = await f()", "kernel", "syntax error on line 1 of the cell: 'await' outside function (IPython runs"),
        ("%%capture out\nprint(1)", "kernel", "%%capture binds `out` in the notebook's namespace, not the step's"),
        ("x = (", "kernel", "syntax error on line 1 of the cell: '(' was never closed"),
        ("df.head()", "kernel", NO_NAMES),
        ("print(total)", "kernel", NO_NAMES),
        ("items.append(2)", "step", ""),
        ("df['c'] = df['a'] * 2", "step", ""),
        ("plt.plot(y)", "kernel", NO_NAMES),
        ("_private = 1", "kernel", NO_NAMES),
    ],
)
def test_which_cells_run_in_the_kernel(shell: InteractiveShell, source: str, kind: str, reason: str):
    [plan] = plan_cells(shell, [source])
    assert (plan.kind, plan.name) == (kind, "cell_1" if kind == "step" else None)
    assert plan.reason.startswith(reason) and (reason == "") == (plan.reason == "")


def test_a_name_written_twice_is_a_step_each_time(shell: InteractiveShell):
    plans = plan_cells(shell, ["a = 1", "a = 2", "b = a", "print(b)", "a = 3"])
    assert [(p.kind, p.reason) for p in plans] == [
        ("step", ""),
        ("step", ""),
        ("step", ""),
        ("kernel", NO_NAMES),
        ("step", ""),
    ]


def test_step_lines_and_tags_in_the_plan(shell: InteractiveShell):
    plans = plan_cells(shell, ["%%step load --backend thread\nx = 1", "%%step\ny = 2", "z = 3"], may_fail=[3])
    assert [(p.kind, p.name, p.declared, p.reason) for p in plans] == [
        ("step", "load", True, ""),
        ("step", None, True, ""),  # fails when it runs, as in Run All
        ("kernel", None, False, "tagged raises-exception"),
    ]


def test_the_running_cell_and_the_notebooks_path(tmp_path: Path, monkeypatch):
    cells = read_code_cells(str(write(tmp_path / "nb.ipynb", "a = 1", "b = 2", "%parrun --cells", "c = 3")))
    above, warning = cells_above(cells, "%parrun --cells\n", "nb.ipynb")
    assert [c.source for c in above] == ["a = 1", "b = 2"] and warning is None
    above, warning = cells_above(cells, "%parrun --cells --workers 2", "nb.ipynb")
    assert len(above) == 2 and warning is not None and "save the notebook first" in warning
    with pytest.raises(NotebookError, match="no cell of nb.ipynb runs %parrun --cells"):
        cells_above(cells[:2], "%parrun --cells", "nb.ipynb")
    assert notebook_path("given.ipynb") == "given.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", "/abs/dir/nb.ipynb")
    assert notebook_path("") == "/abs/dir/nb.ipynb"
    monkeypatch.chdir(tmp_path)  # the kernel runs in the notebook's folder; the session's path is the server root's
    monkeypatch.setenv("JPY_SESSION_NAME", "some/dir/nb.ipynb")
    assert notebook_path("") == "nb.ipynb"


def test_a_cell_whose_value_a_worker_cannot_send_back_runs_again_in_the_kernel(shell: InteractiveShell, capsys):
    sources = ["import numpy as np\na = np.arange(3)", "it = np.nditer([a])\nfirst = next(it)", "n = int(a.sum())"]
    report = run_cells_as_steps(shell, sources, backend="process", workers=2)
    assert report.ok, report.failure
    reason = "what it makes cannot be sent back from a worker process: it ran again, in the kernel"
    assert report.in_kernel == [(2, reason)]
    assert f"nbpar: cell 2 runs in the kernel: {reason}" in capsys.readouterr().out
    assert isinstance(shell.user_ns["it"], np.nditer) and shell.user_ns["n"] == 3


@pytest.mark.parametrize(
    ("sources", "number", "reason"),
    [
        (["x = 1", "y = eval('x + 1')"], 2, "looks names up by string (eval), which nbpar cannot see"),
        (
            ["import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})", "lim = 1", "r = len(df.query('a > @lim'))"],
            3,
            "looks names up by string (df.query), which nbpar cannot see",
        ),
        (
            ["class Show:\n    def __init__(self, n):\n        self.v = eval(n)", "x = 2", "s = Show('x').v"],
            3,
            "uses Show, which looks names up by string (eval), which nbpar cannot see",
        ),
    ],
)
def test_a_cell_that_looks_names_up_by_string_runs_in_the_kernel(
    shell: InteractiveShell, sources: list[str], number: int, reason: str
):
    plans = plan_cells(shell, sources)
    assert (plans[number - 1].kind, plans[number - 1].reason) == ("kernel", reason)
    last = sources[-1].split(" = ")[0]  # the name the last cell binds
    expected = run_all(shell, sources)[last]
    report = run_cells_as_steps(shell, sources, backend="process", workers=2)
    assert report.ok, report.failure
    assert shell.user_ns[last] == expected


def test_only_the_functions_and_classes_of_a_cell_that_looks_names_up_carry_it(shell: InteractiveShell):
    sources = [
        "x = 1\ny = eval('x + 1')\ndef plain(v):\n    return v * 2\ndef looks(n):\n    return eval(n)",
        "a = y + 1",
        "b = plain(2)",
        "c = looks('x')",
    ]
    plans = plan_cells(shell, sources)
    assert [p.kind for p in plans] == ["kernel", "step", "step", "kernel"]
    assert plans[3].reason == "uses looks, which looks names up by string (eval), which nbpar cannot see"
