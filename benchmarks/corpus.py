"""The corpus (tests/corpus/) run top to bottom and as all-steps, notebook
by notebook:

    PYTHONPATH=. .venv/bin/python benchmarks/corpus.py [--workers 2] [NAME ...]

Prints per notebook its cells, its steps, the cells that fell back to the
kernel and why, the Run All time, the all-steps time (process backend), the
speed-up and whether the namespaces are equal; then how many notebooks ran
fully as steps (no cell in the kernel) and how many equal Run All.

All-steps is `nbpar.cells.run_cells_as_steps(shell, cells, backend=...,
workers=...)`, whose `CellsReport` says which cells ran as steps and which
in the kernel, and why.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbpar.cells import CellsReport, run_cells_as_steps  # noqa: E402
from tests.corpus.compare import compare_namespaces, user_names  # noqa: E402
from tests.corpus.notebook import Notebook, corpus, isolated, notebook_shell, run_all  # noqa: E402


def run_all_timed(notebook: Notebook) -> tuple[float, dict[str, object]]:
    with isolated(), contextlib.redirect_stdout(io.StringIO()):  # the notebook's output is not the table's
        shell = notebook_shell()
        start = time.perf_counter()
        run_all(shell, notebook.cells)
        return time.perf_counter() - start, user_names(shell)


def steps_timed(notebook: Notebook, workers: int) -> tuple[float, CellsReport, dict[str, object]]:
    with isolated(), contextlib.redirect_stdout(io.StringIO()):
        shell = notebook_shell()
        shell.run_line_magic("load_ext", "nbpar")
        start = time.perf_counter()
        report = run_cells_as_steps(shell, notebook.cells, backend="process", workers=workers)
        return time.perf_counter() - start, report, user_names(shell)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (a part of the name); default: all")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    notebooks = [nb for nb in corpus() if not args.names or any(name in nb.name for name in args.names)]
    print(f"{'notebook':50} {'cells':>5} {'steps':>5} {'kernel':>6} {'run all':>8} {'nbpar':>8} {'x':>8}  namespace")
    full = equal = 0
    for notebook in notebooks:
        reference, expected = run_all_timed(notebook)
        elapsed, report, actual = steps_timed(notebook, args.workers)
        comparison = compare_namespaces(expected, actual)
        full += report.ok and not report.in_kernel
        equal += comparison.ok
        verdict = "equal" if comparison.ok else "UNEQUAL"
        print(
            f"{notebook.name:50} {len(notebook.cells):5} {len(report.steps):5} {len(report.in_kernel):6}"
            f" {reference:8.2f} {elapsed:8.2f} {reference / elapsed:8.2f}  {verdict}"
        )
        if not report.ok:
            print(f"    {report.failure}")
        for number, why in report.in_kernel:
            print(f"    cell {number} ran in the kernel: {why}")
        if not comparison.ok:
            print("    " + comparison.describe().replace("\n", "\n    "))
    print(
        f"{full} of {len(notebooks)} notebooks ran fully as steps;"
        f" {equal} equal to Run All, {len(notebooks) - equal} unequal"
    )


if __name__ == "__main__":
    main()
