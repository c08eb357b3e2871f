"""`nbpar run NOTEBOOK.ipynb`: run a notebook from the terminal.

Every code cell runs in order in an in-process IPython shell, as a kernel
would run it; `%parrun` cells show a text progress display. The exit status
is 0 only if every cell, and so every step, succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .graph import BACKENDS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbpar", description="Run notebooks whose cells are nbpar steps.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a notebook's cells in order, %%parrun cells in parallel")
    run.add_argument("notebook", help="path to a .ipynb file")
    run.add_argument("--workers", type=int, metavar="N", help="workers for every %%parrun (default: the CPU count)")
    run.add_argument("--backend", choices=BACKENDS, help="backend for every %%parrun that names none")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    return run_notebook(args.notebook, workers=args.workers, backend=args.backend)


def run_notebook(path: str, workers: int | None = None, backend: str | None = None) -> int:
    """Run the notebook at `path`; return the process exit status."""
    try:
        with open(path, encoding="utf-8") as f:
            notebook = json.load(f)
    except (OSError, ValueError) as e:
        print(f"nbpar: cannot read notebook {path}: {e}", file=sys.stderr)
        return 2
    cells = [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]

    from IPython.core.interactiveshell import InteractiveShell

    # %parrun reads its defaults from these (see magics.run_defaults).
    if workers is not None:
        os.environ["NBPAR_WORKERS"] = str(workers)
    if backend is not None:
        os.environ["NBPAR_BACKEND"] = backend
    shell = InteractiveShell.instance(colors="nocolor")
    # Relative paths in the notebook mean the notebook's folder, as in Jupyter.
    os.chdir(os.path.dirname(os.path.abspath(path)))
    for number, cell in enumerate(cells, 1):
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if not source.strip():
            continue
        result = shell.run_cell(source, store_history=True)
        if not result.success:
            print(f"nbpar: cell {number} of {len(cells)} failed; stopping.", file=sys.stderr)
            return 1
    print(f"nbpar: {path}: all {len(cells)} cells ran.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
