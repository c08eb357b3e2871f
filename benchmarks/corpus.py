"""The corpus (tests/corpus/) run top to bottom and as all-steps, notebook
by notebook:

    PYTHONPATH=. .venv/bin/python benchmarks/corpus.py [--workers 2] [NAME ...]

Prints per notebook its cells, its steps, the cells that fell back to the
kernel and why, the Run All time, the all-steps time (process backend), the
speed-up and whether the namespaces are equal; then how many notebooks ran
fully as steps. Without nbpar.cells (issue 12) it prints the Run All half.

All-steps is `nbpar.cells.run_cells_as_steps(shell, cells, backend=...,
workers=...)`; its report is read through `Report` below.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.corpus.compare import compare_namespaces, user_names  # noqa: E402
from tests.corpus.notebook import Notebook, corpus, isolated, notebook_shell, run_all  # noqa: E402


class Report(Protocol):
    """What the benchmark reads of run_cells_as_steps's answer."""

    steps: Sequence[str]  # the steps' names, one a cell that ran as a step
    fallbacks: Sequence[tuple[int, str]]  # (cell number from 1, why it ran in the kernel)


def run_all_timed(notebook: Notebook) -> tuple[float, dict[str, object]]:
    with isolated(), contextlib.redirect_stdout(io.StringIO()):  # the notebook's output is not the table's
        shell = notebook_shell()
        start = time.perf_counter()
        run_all(shell, notebook.cells)
        return time.perf_counter() - start, user_names(shell)


def steps_timed(notebook: Notebook, workers: int) -> tuple[float, Report, dict[str, object]]:
    from nbpar.cells import run_cells_as_steps

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
    have_cells = importlib.util.find_spec("nbpar.cells") is not None
    if not have_cells:
        print("nbpar.cells is missing (issue 12): Run All only")
    print(f"{'notebook':50} {'cells':>5} {'steps':>5} {'kernel':>6} {'run all':>8} {'nbpar':>8} {'x':>8}  namespace")
    full = equal = 0
    for notebook in notebooks:
        reference, expected = run_all_timed(notebook)
        if not have_cells:
            print(f"{notebook.name:50} {len(notebook.cells):5} {'':5} {'':6} {reference:8.2f}")
            continue
        elapsed, report, actual = steps_timed(notebook, args.workers)
        comparison = compare_namespaces(expected, actual)
        full += not report.fallbacks
        equal += comparison.ok
        verdict = "equal" if comparison.ok else "UNEQUAL"
        print(
            f"{notebook.name:50} {len(notebook.cells):5} {len(report.steps):5} {len(report.fallbacks):6}"
            f" {reference:8.2f} {elapsed:8.2f} {reference / elapsed:8.2f}  {verdict}"
        )
        for number, why in report.fallbacks:
            print(f"    cell {number} ran in the kernel: {why}")
        if not comparison.ok:
            print("    " + comparison.describe().replace("\n", "\n    "))
    if have_cells:
        print(
            f"{full} of {len(notebooks)} notebooks ran fully as steps;"
            f" {equal} equal to Run All, {len(notebooks) - equal} unequal"
        )


if __name__ == "__main__":
    main()
