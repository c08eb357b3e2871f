"""`nbpar run NOTEBOOK.ipynb`: run a notebook from the terminal.

Every code cell runs in order in an in-process IPython shell, as a kernel
would run it (`headless.py`: `%matplotlib inline` and the like work);
`%parrun` cells show a text progress display. The exit status
is 0 only if every cell, and so every step, succeeded, but for cells tagged
`raises-exception` (as nbclient and papermill treat them: a failure there is
the notebook's point).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .cells import RAISES, NotebookError, read_code_cells, run_cell, run_cells_as_steps
from .graph import BackendName
from .options import BACKENDS, Defaults, OptionError, RunOptions
from .records import RunResult
from .ui.report import write_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbpar", description="Run notebooks whose cells are nbpar steps.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a notebook's cells in order, %%parrun cells in parallel")
    run.add_argument("notebook", help="path to a .ipynb file")
    run.add_argument("--workers", type=int, metavar="N", help="workers for every %%parrun (default: the CPU count)")
    run.add_argument("--backend", choices=BACKENDS, help="backend for every %%parrun that names none")
    run.add_argument(
        "--report", metavar="FILE.html", help="write a self-contained HTML page of the runs' graphs and timelines"
    )
    run.add_argument(
        "--steps",
        choices=["all"],
        help="all: every code cell is a step, without %%%%step lines; cells that cannot be steps run in "
        "their place (see README: A whole notebook as steps)",
    )
    args = parser.parse_args(argv)
    try:
        RunOptions(workers=args.workers)  # (checked before anything runs)
    except OptionError as e:
        parser.error(str(e))
    return run_notebook(
        args.notebook, workers=args.workers, backend=args.backend, report=args.report, all_steps=args.steps == "all"
    )


def run_notebook(
    path: str,
    workers: int | None = None,
    backend: BackendName | None = None,
    report: str | None = None,
    all_steps: bool = False,
) -> int:
    """Run the notebook at `path`; return the process exit status. With
    `report`, write the HTML report of every run there, even if a cell
    failed. With `all_steps`, every cell that can be a step is one (cells.py)."""
    report = os.path.abspath(report) if report else None
    runs: list[RunResult] = []
    try:
        return _run_cells(path, workers, backend, runs, all_steps)
    finally:
        if report is not None:
            write_report(report, runs, title=f"nbpar run {os.path.basename(path)}")
            print(f"nbpar: report of {len(runs)} run{'s' if len(runs) != 1 else ''} written to {report}")


def _run_cells(
    path: str, workers: int | None, backend: BackendName | None, runs: list[RunResult], all_steps: bool
) -> int:
    try:
        cells = read_code_cells(path)
    except NotebookError as e:
        print(f"nbpar: {e}", file=sys.stderr)
        return 2
    if all_steps and not cells:
        print(f"nbpar: {path} has no code cells: there is nothing to run as steps.", file=sys.stderr)
        return 2

    from .headless import headless_shell

    shell = headless_shell(path, Defaults(workers, backend))  # %parrun's defaults
    # Relative paths in the notebook mean the notebook's folder, as in Jupyter.
    os.chdir(os.path.dirname(os.path.abspath(path)))
    if all_steps:
        may_fail = [n for n, cell in enumerate(cells, 1) if RAISES in cell.tags]
        done = run_cells_as_steps(shell, [c.source for c in cells], backend=backend, workers=workers, may_fail=may_fail)
        runs.extend(done.runs)
        if done.failure:
            print(f"nbpar: {done.failure}", file=sys.stderr)
            return 1
        as_steps, in_kernel = len(done.steps), len(done.in_kernel)
        print(f"nbpar: {path}: all {len(cells)} cells ran: {as_steps} as steps, {in_kernel} in the kernel.")
        return 0
    for number, cell in enumerate(cells, 1):
        source = cell.source
        if not source.strip():
            continue
        if not run_cell(shell, source, runs):
            if RAISES in cell.tags:
                print(f"nbpar: cell {number} failed, as its raises-exception tag says it will.", file=sys.stderr)
                continue
            print(f"nbpar: cell {number} of {len(cells)} failed; stopping.", file=sys.stderr)
            return 1
    print(f"nbpar: {path}: all {len(cells)} cells ran.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
