"""Write the corpus's notebooks (notebooks/*.py) from their source
repositories: their code cells only, with a header naming the source,
commit and license, and the few edits listed here.

    python -m tests.corpus.build HANDBOOK_GIT_DIR NUMPY100_GIT_DIR [--all OUT]

Each argument is a git directory (a bare clone is enough) of
github.com/jakevdp/PythonDataScienceHandbook and github.com/rougier/numpy-100.
`--all OUT` writes every notebook of both into OUT instead, chosen or not
(how the corpus was chosen: see README.md).

Only code is copied: the handbook's code is MIT, its text CC BY-NC-ND (no
derivatives), so its markdown cells are left out; numpy-100 is MIT.

Edits, each in the notebook's header:
- matplotlib 3.6 renamed the `seaborn-*` style sheets `seaborn-v0_8-*`;
  pandas 2.2 spells hourly `"h"`: the old names fail today.
- `%timeit` lines are left out: they bind no names and take seconds each.
- cells the book runs to show an error (`ind[1] = 0` on an Index) are left
  out, as Run All stops at the first error.
- numpy-100's answers become one notebook, an answer a cell, with an added
  `np.random.seed(100)` cell: they draw from NumPy's global generator, and
  Run All is reproducible only seeded.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .notebook import MARKER, NOTEBOOKS

HANDBOOK = "jakevdp/PythonDataScienceHandbook"
NUMPY100 = "rougier/numpy-100"
MIT = "MIT (code only: see tests/corpus/LICENSES.md)"
RENAMES = (
    (re.compile(r"""(['"])seaborn-(?!v0_8)([a-z-]+)\1"""), r"\1seaborn-v0_8-\2\1", "style seaborn-X is seaborn-v0_8-X"),
    (
        re.compile(r"""(?<=freq=['"])(\d*)H(?:(\d+)T)?(?=['"])"""),
        lambda m: f"{m[1]}h{m[2] + 'min' if m[2] else ''}",
        "frequency 'H' is 'h', 'T' is 'min'",
    ),
    (re.compile(r"plt\.cm\.get_cmap\("), "plt.get_cmap(", "matplotlib.cm.get_cmap is plt.get_cmap"),
    (re.compile(r"fillna\(method='(ffill|bfill)'(?:, )?"), r"\1(", "fillna(method=M) is M()"),
)
TIMEIT = re.compile(r"^\s*%%?timeit.*(\n[ \t]+.*)*$", re.MULTILINE)


@dataclass(frozen=True)
class Choice:
    """A handbook notebook kept, and its code cells left out (numbered
    among its code cells, from 1) with why."""

    path: str
    drop: dict[int, str] = field(default_factory=dict)


SCIPY = "needs SciPy (not installed)"
SKLEARN = "needs scikit-learn (not installed)"
DATA = "reads a data file the corpus does not hold"
FAILS = "raises, as the book shows"
CHOSEN: tuple[Choice, ...] = (
    Choice("notebooks/02.00-Introduction-to-NumPy.ipynb"),
    Choice("notebooks/02.01-Understanding-Data-Types.ipynb"),
    Choice("notebooks/02.02-The-Basics-Of-NumPy-Arrays.ipynb"),
    Choice("notebooks/02.03-Computation-on-arrays-ufuncs.ipynb", {21: SCIPY, 22: SCIPY, 23: SCIPY}),
    Choice("notebooks/02.05-Computation-on-arrays-broadcasting.ipynb", {13: FAILS}),
    Choice("notebooks/02.08-Sorting.ipynb"),
    Choice("notebooks/02.09-Structured-Data-NumPy.ipynb"),
    Choice("notebooks/03.00-Introduction-to-Pandas.ipynb"),
    Choice("notebooks/03.01-Introducing-Pandas-Objects.ipynb", {34: FAILS}),
    Choice("notebooks/03.02-Data-Indexing-and-Selection.ipynb"),
    Choice("notebooks/03.03-Operations-in-Pandas.ipynb"),
    Choice("notebooks/03.04-Missing-Values.ipynb", {5: FAILS}),
    Choice("notebooks/03.06-Concat-And-Append.ipynb"),
    Choice("notebooks/03.07-Merge-and-Join.ipynb", dict.fromkeys(range(20, 34), DATA)),
    Choice("notebooks/03.10-Working-With-Strings.ipynb", dict.fromkeys(range(17, 28), DATA)),
    Choice("notebooks/03.11-Working-with-Time-Series.ipynb", dict.fromkeys(range(25, 44), DATA)),
    Choice("notebooks/03.12-Performance-Eval-and-Query.ipynb", {5: "needs numexpr (not installed)"}),
    Choice("notebooks/04.00-Introduction-To-Matplotlib.ipynb"),
    Choice("notebooks/04.01-Simple-Line-Plots.ipynb"),
    Choice("notebooks/04.02-Simple-Scatter-Plots.ipynb", {8: SKLEARN}),
    Choice("notebooks/04.04-Density-and-Contour-Plots.ipynb"),
    Choice("notebooks/04.05-Histograms-and-Binnings.ipynb", {10: SCIPY}),
    Choice("notebooks/04.06-Customizing-Legends.ipynb", {10: DATA}),
    Choice("notebooks/04.08-Multiple-Subplots.ipynb"),
    Choice("notebooks/04.10-Customizing-Ticks.ipynb", {6: SKLEARN}),
)
NUMPY100_DROP: dict[int, str] = {
    5: "%run of a shell command's output, which is no file",
    27: "raises, as the question (which expressions are legal?) expects",
    43: "raises, as the question (make an array read-only) expects",
    52: SCIPY,
    79: SCIPY,
}


def git_show(git_dir: Path, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"HEAD:{path}"], capture_output=True, text=True, check=True
    ).stdout


def git_head(git_dir: Path) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def handbook_paths(git_dir: Path) -> list[str]:
    listing = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "--name-only", "HEAD", "notebooks/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [path for path in listing.split() if path.endswith(".ipynb")]


def code_cells(notebook_json: str) -> list[str]:
    """The non-empty code cells of a notebook."""
    cells = json.loads(notebook_json)["cells"]
    sources = ("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    return [source for source in sources if source.strip()]


def edit(cells: list[str], drop: dict[int, str]) -> tuple[list[str], list[str]]:
    """The cells as the corpus keeps them, and the edits made, one line each."""
    kept: list[str] = []
    notes: list[str] = []
    for number, source in enumerate(cells, 1):
        if number in drop:
            notes.append(f"code cell {number} left out: {drop[number]}")
            continue
        for pattern, replacement, why in RENAMES:
            source, count = pattern.subn(replacement, source)
            if count:
                notes.append(f"code cell {number}: {why}")
        source, count = TIMEIT.subn("", source)
        if count:
            notes.append(f"code cell {number}: %timeit left out")
            source = source.strip("\n")
        if source.strip():
            kept.append(source)
    return kept, notes


def render(header: list[str], cells: list[str]) -> str:
    lines = [f"# {line}".rstrip() for line in header]
    for source in cells:
        lines += ["", MARKER, source]
    return "\n".join(lines) + "\n"


def handbook_notebooks(git_dir: Path, choices: tuple[Choice, ...]) -> dict[str, str]:
    commit = git_head(git_dir)
    out = {}
    for choice in choices:
        cells, notes = edit(code_cells(git_show(git_dir, choice.path)), choice.drop)
        header = [
            "Code cells of the Python Data Science Handbook (2nd edition) by Jake VanderPlas,",
            f"https://github.com/{HANDBOOK}, {choice.path} at commit {commit}.",
            f"License: {MIT}; the book's text (CC BY-NC-ND) is left out.",
            *(f"Edit: {note}" for note in notes),
        ]
        name = "handbook-" + Path(choice.path).stem
        out[name] = render(header, cells)
    return out


def numpy100_notebook(git_dir: Path, drop: dict[int, str]) -> dict[str, str]:
    """numpy-100's answers, one a cell, NumPy's global generator seeded
    after the first (which imports NumPy)."""
    commit = git_head(git_dir)
    answers = ktx(git_show(git_dir, "source/exercises100.ktx"))
    cells, notes = edit([answers[f"a{n}"] for n in range(1, 101)], drop)
    header = [
        "Answers of 100 numpy exercises by Nicolas P. Rougier and contributors,",
        f"https://github.com/{NUMPY100}, source/exercises100.ktx at commit {commit},",
        f"one answer a cell. License: {MIT}.",
        "Edit: a cell added after answer 1: np.random.seed(100).",
        *(f"Edit: {note.replace('code cell', 'answer')}" for note in notes),
    ]
    return {"numpy100-answers": render(header, cells[:1] + ["np.random.seed(100)"] + cells[1:])}


def ktx(text: str) -> dict[str, str]:
    """numpy-100's keyed text: `< key` lines, each followed by its value."""
    values: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("<"):
            key = line[1:].strip()
            values[key] = []
        elif key is not None:
            values[key].append(line)
    return {key: "\n".join(lines).strip() for key, lines in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("handbook", type=Path)
    parser.add_argument("numpy100", type=Path)
    parser.add_argument("--all", type=Path, metavar="OUT", help="write every notebook into OUT, chosen or not")
    args = parser.parse_args()
    if args.all:
        choices = tuple(Choice(path) for path in handbook_paths(args.handbook))
        folder = args.all
    else:
        choices, folder = CHOSEN, NOTEBOOKS
    folder.mkdir(parents=True, exist_ok=True)
    notebooks = {**handbook_notebooks(args.handbook, choices), **numpy100_notebook(args.numpy100, NUMPY100_DROP)}
    for name, text in notebooks.items():
        if text.count(MARKER):
            (folder / f"{name}.py").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
