"""`nbpar run NOTEBOOK`: the command line, run as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import loky
import nbformat
import pytest

pytestmark = pytest.mark.slow


def nbpar_run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbpar.cli", "run", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def write(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def test_runs_a_notebook_with_a_text_progress_display(tmp_path: Path):
    nb = write(
        tmp_path / "ok.ipynb",
        "%load_ext nbpar",
        "%%step a\nx = 20",
        "%%step b\nprint('b says hi')\ny = x + 1",
        "%parrun",
        "import nbpar\nprint('backend', nbpar.last_run().backend, nbpar.last_run().workers)\nassert y == 21",
    )
    done = nbpar_run(str(nb), "--workers", "2", "--backend", "thread")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "start   a" in out and "done    b" in out and "[b] b says hi" in out
    assert "backend thread 2" in out


def test_relative_paths_mean_the_notebooks_folder(tmp_path: Path):
    (tmp_path / "data.txt").write_text("7")
    nb = write(
        tmp_path / "rel.ipynb",
        "%load_ext nbpar",
        "%%step read\nn = int(open('data.txt').read())",
        "%parrun --workers 1",
        "assert n == 7",
    )
    assert nbpar_run(str(nb)).returncode == 0


def test_a_failing_step_fails_the_command(tmp_path: Path):
    nb = write(
        tmp_path / "bad.ipynb",
        "%load_ext nbpar",
        "%%step bad\nz = 1 / 0",
        "%parrun --workers 1",
        "print('not reached')",
    )
    done = nbpar_run(str(nb))
    assert done.returncode == 1
    assert 'File "<step bad>", line 2' in done.stdout and "ZeroDivisionError" in done.stdout
    assert "not reached" not in done.stdout
    assert "cell 3 of 4 failed" in done.stderr


def test_a_failing_ordinary_cell_fails_the_command(tmp_path: Path):
    nb = write(tmp_path / "cell.ipynb", "raise ValueError('plain cell')")
    done = nbpar_run(str(nb))
    assert done.returncode == 1 and "ValueError: plain cell" in done.stdout


def test_missing_notebook_and_bad_options(tmp_path: Path):
    done = nbpar_run(str(tmp_path / "nope.ipynb"))
    assert done.returncode == 2 and "cannot read notebook" in done.stderr and "nope.ipynb" in done.stderr
    done = nbpar_run(str(tmp_path / "nope.ipynb"), "--workers", "0")
    assert done.returncode == 2 and "--workers must be at least 1" in done.stderr
    done = nbpar_run(str(tmp_path / "nope.ipynb"), "--backend", "gpu")
    assert done.returncode == 2 and "invalid choice: 'gpu'" in done.stderr


def test_the_quick_start_notebook_runs_headless():
    """The README's first command, minus the install."""
    root = Path(__file__).resolve().parent.parent
    done = nbpar_run(str(root / "example_notebooks" / "quickstart.ipynb"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "speed-up:" in done.stdout and "all 14 cells ran" in done.stdout
    assert re.search(r"this machine ran \d+ processes at \d+\.\dx the speed of one", done.stdout)
    assert "(this machine's own: " in done.stdout


def test_the_quick_start_says_when_the_machine_bounds_the_speed_up(tmp_path: Path):
    """Its measuring cell, with three workers a CPU: n processes can never
    run at more than n/3 times the speed of one."""
    root = Path(__file__).resolve().parent.parent
    quickstart = nbformat.read(root / "example_notebooks" / "quickstart.ipynb", as_version=4)
    code = [c for c in quickstart.cells if c.cell_type == "code"]
    measuring = next(i for i, c in enumerate(code) if "def burn" in c.source)
    nb = write(tmp_path / "measure.ipynb", *(c.source for c in code[: measuring + 1]))
    cpus = loky.cpu_count()
    done = nbpar_run(str(nb), "--workers", str(3 * cpus))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"this machine ran {3 * cpus} processes at " in done.stdout
    assert f": {3 * cpus} workers share {cpus} CPUs; the speed-up below is bounded by that" in done.stdout


def test_report_has_every_run_even_when_a_step_fails(tmp_path: Path):
    nb = write(
        tmp_path / "rep.ipynb",
        "%load_ext nbpar",
        "%%step first\nx = 1",
        "%parrun --workers 1",
        "%%step broken\ny = x / 0",
        "%parrun --workers 1",
    )
    report = tmp_path / "out" / "run.html"
    report.parent.mkdir()
    done = nbpar_run(str(nb), "--report", str(report))
    assert done.returncode == 1
    assert f"report of 2 runs written to {report}" in done.stdout
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and "Run 2 of 2" in page
    assert 'class="nbpar-graph"' in page and 'class="nbpar-timeline"' in page
    assert 'data-step="broken"' in page and "ZeroDivisionError" in page
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org", "")  # self-contained


def test_a_cell_tagged_raises_exception_may_fail(tmp_path: Path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbpar"),
        nbformat.v4.new_code_cell("%%step bad\nz = 1 / 0"),
        nbformat.v4.new_code_cell("%parrun --workers 1", metadata={"tags": ["raises-exception"]}),
        nbformat.v4.new_code_cell("print('went on')"),
    ]
    nbformat.write(nb, tmp_path / "tagged.ipynb")
    done = nbpar_run(str(tmp_path / "tagged.ipynb"))
    assert done.returncode == 0 and "went on" in done.stdout
    assert "cell 3 failed, as its raises-exception tag says it will" in done.stderr


def test_runs_what_a_kernel_runs_gui_magics_figures_and_script_habits(tmp_path: Path):
    """What data-science notebooks do that a plain InteractiveShell refuses
    (`%matplotlib inline`: "Implement enable_gui in a subclass")."""
    nb = write(
        tmp_path / "kernelish.ipynb",
        "%matplotlib inline\n%config InlineBackend.figure_format = 'retina'",
        "import matplotlib\nimport matplotlib.pyplot as plt\nassert 'inline' in matplotlib.get_backend()",
        "plt.plot([1, 2, 3])\nplt.show()\nprint('shown, not blocked')",
        "fig, ax = plt.subplots()\n_ = ax.bar(['a', 'b'], [1, 2])",  # drawn as the cell ends
        "ax = plt.figure().gca()\nax.set_title(r'$\\frac$')",  # cannot be drawn: the error shows, as in Jupyter
        "%matplotlib qt",
        "%matplotlib widget",
        "%matplotlib notebook\n%gui qt\nassert 'inline' in matplotlib.get_backend()",
        "%matplotlib agg\nassert matplotlib.get_backend().lower() == 'agg'",
        "%load_ext autoreload\n%autoreload 2",
        "%%capture captured\nprint('hidden')",
        "assert captured.stdout == 'hidden\\n'",
        "import argparse\n_p = argparse.ArgumentParser()\n_p.add_argument('--workers', type=int, default=5)\n"
        "assert _p.parse_args().workers == 5",  # nbpar run's own --workers is not the notebook's
        "%load_ext nbpar",
        "%%step a --backend thread\nx = 1",
        "%parrun",
        "print('x is', x)",
    )
    done = nbpar_run(str(nb), "--workers", "2", env={k: v for k, v in os.environ.items() if k != "MPLBACKEND"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    out, err = done.stdout, done.stderr
    assert "shown, not blocked" in out and "x is 1" in out
    assert out.count("<Figure size 640x480 with 1 Axes>") == 3  # plt.show(), the bar chart, the broken one
    assert "ValueError" in out and "frac" in out  # the figure was really drawn
    assert "%matplotlib qt: under nbpar run figures are drawn with the inline backend." in err
    assert "%matplotlib widget: under nbpar run" in err and "%matplotlib notebook: under nbpar run" in err
    assert "%gui qt: no GUI event loop under nbpar run" in err
    assert "hidden" not in out and "done    a" in out and "all 17 cells ran" in out
