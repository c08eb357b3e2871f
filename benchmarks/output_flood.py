"""How much a run's printed output costs in a real Jupyter kernel (nbclient).

Runs two notebooks with `%parrun --no-widget` and reports, for each, the
wall time of the `%parrun` cell, the stream outputs it left in the
notebook, and the notebook's size:

- one step printing 5,000 lines;
- 500 steps printing 100 lines each.

    python benchmarks/output_flood.py [--backend process] [--monitor]

The counts are what tests/test_notebooks.py pins; the times are for the
report (never asserted).
"""

from __future__ import annotations

import argparse
import json
import time

import nbformat
from nbclient import NotebookClient


def notebook(steps: int, lines: int, backend: str, widget: bool) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cells = ["%load_ext nbpar"]
    for i in range(steps):
        cells.append(f"%%step s{i}\nfor _i in range({lines}):\n    print('line', _i)\nx{i} = {i}")
    cells.append(f"%parrun --backend {backend} --workers 2" + ("" if widget else " --no-widget"))
    cells.append("import nbpar; print(sum(s.output.count('\\n') for s in nbpar.last_run().steps.values()))")
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


class Timed(NotebookClient):
    """Notes how long each cell took to execute."""

    took: dict[int, float]

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            self.took[cell_index] = time.perf_counter() - start


def measure(steps: int, lines: int, backend: str, widget: bool, kernel: str) -> dict[str, float]:
    nb = notebook(steps, lines, backend, widget)
    client = Timed(nb, kernel_name=kernel, timeout=600)
    client.took = {}
    client.execute()
    run = len(nb.cells) - 2
    total = int("".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream"))
    return {
        "steps": steps,
        "lines": lines,
        "seconds": round(client.took[run], 3),
        "stream_outputs": sum(1 for o in nb.cells[run].outputs if o.output_type == "stream"),
        "notebook_bytes": len(nbformat.writes(nb)),
        "lines_in_records": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="process")
    parser.add_argument("--monitor", action="store_true", help="with the widget monitor, not --no-widget")
    parser.add_argument("--kernel", default="python3")
    args = parser.parse_args()
    for steps, lines in ((1, 5000), (500, 100)):
        print(json.dumps(measure(steps, lines, args.backend, args.monitor, args.kernel)))


if __name__ == "__main__":
    main()
