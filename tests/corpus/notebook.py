"""The corpus's notebooks, and the reference run they are checked against.

A corpus notebook is a percent-format file in `notebooks/`: a header of
comments (where it came from, its license, what was changed), then cells,
each starting at a line `# %%`. Cell sources are kept verbatim, IPython
syntax included (jupytext would comment magics out; these files are read
only by `load`).

`run_all(shell, cells)` is Run All: every cell in order in `shell`, as a
kernel runs them, stopping at the first that fails. `notebook_shell()` is a
fresh shell for it: the headless shell `nbpar run` uses (so `%matplotlib
inline` works), with an empty namespace. `isolated()` undoes what a run
leaves in the process beyond the shell: matplotlib's settings (a notebook
may switch style sheets), open figures, the warning filters and the
working directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell

from nbpar.headless import HeadlessShell, headless_shell

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE / "notebooks"
MARKER = "# %%"


@dataclass(frozen=True)
class Notebook:
    name: str  # the file's stem, e.g. "handbook-02.02-The-Basics-Of-NumPy-Arrays"
    cells: tuple[str, ...]


class CellFailed(AssertionError):
    """A cell of a Run All failed: the notebook is not fit for the corpus."""


def load(path: Path) -> Notebook:
    """The cells of a percent-format file (the header before the first
    marker is not a cell)."""
    cells: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line == MARKER:
            cells.append([])
        elif cells:
            cells[-1].append(line)
    return Notebook(path.stem, tuple("\n".join(lines).strip("\n") for lines in cells))


def corpus() -> list[Notebook]:
    """Every notebook of the corpus, by name."""
    return [load(path) for path in sorted(NOTEBOOKS.glob("*.py"))]


def notebook_shell() -> HeadlessShell:
    """The process's shell, made a HeadlessShell if a plain InteractiveShell
    came first (the tests' `shell` fixture makes one), with an empty
    namespace."""
    if InteractiveShell.initialized() and not isinstance(InteractiveShell.instance(), HeadlessShell):
        InteractiveShell.clear_instance()
    shell = headless_shell("notebook.ipynb")
    shell.reset(new_session=False)
    return shell


def run_all(shell: InteractiveShell, cells: Sequence[str]) -> None:
    """Run every cell in order, as Run All does; raise CellFailed at the
    first that fails, naming it."""
    for number, source in enumerate(cells, 1):
        result = shell.run_cell(source, store_history=True)
        if not result.success:
            error = result.error_before_exec or result.error_in_exec
            raise CellFailed(f"cell {number} failed: {error!r}\n{source}")


@contextlib.contextmanager
def isolated() -> Iterator[Path]:
    """Run a notebook in a temporary working directory (it may write files),
    and restore matplotlib's settings and the warning filters after."""
    import matplotlib
    import matplotlib.pyplot as plt

    before = os.getcwd()
    with (
        tempfile.TemporaryDirectory(prefix="nbpar-corpus-") as folder,
        matplotlib.rc_context(),
        warnings.catch_warnings(),
    ):
        os.chdir(folder)
        try:
            yield Path(folder)
        finally:
            os.chdir(before)
            plt.close("all")
