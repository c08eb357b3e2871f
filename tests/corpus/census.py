"""What the corpus's cells do that all-steps must get right, counted:

    python -m tests.corpus.census

Per notebook and in total: cells that write a name an earlier cell writes
(redefinitions), cells that change an object in place (a store into a
subscript or attribute, `del x[k]`, a mutating method call such as
`.append(`, `inplace=True`), cells that draw from NumPy's global generator
(`np.random.rand(...)`; `np.random.seed` included) and cells with IPython
syntax (magics, `!` commands). Names and reads come from nbpar's own
analysis, after IPython's transform, as a step's would.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from IPython.core.inputtransformer2 import TransformerManager

from nbpar.analysis import analyze

from .notebook import Notebook, corpus

MUTATORS = frozenset(
    {"append", "extend", "insert", "pop", "remove", "sort", "reverse", "update", "clear", "setdefault", "add",
     "discard", "fill", "resize", "shuffle", "itemset", "put", "setflags", "popitem"}
)  # fmt: skip
GENERATOR_MAKERS = frozenset({"default_rng", "RandomState", "Generator", "PCG64", "MT19937", "SeedSequence"})


@dataclass
class Counts:
    cells: int = 0
    redefine: int = 0
    in_place: int = 0
    global_random: int = 0
    ipython: int = 0

    def add(self, other: Counts) -> None:
        for field in vars(self):
            setattr(self, field, getattr(self, field) + getattr(other, field))


def census(notebook: Notebook) -> Counts:
    transform = TransformerManager().transform_cell
    counts = Counts(cells=len(notebook.cells))
    written: set[str] = set()
    for source in notebook.cells:
        python = transform(source)
        counts.ipython += python != source + "\n" and "get_ipython()" in python
        names = analyze(python)
        counts.redefine += bool(set(names.writes) & written)
        written |= set(names.writes)
        tree = ast.parse(python)
        counts.in_place += any(_changes_in_place(node) for node in ast.walk(tree))
        counts.global_random += any(_draws_globally(node) for node in ast.walk(tree))
    return counts


def _changes_in_place(node: ast.AST) -> bool:
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        return any(isinstance(target, (ast.Subscript, ast.Attribute)) for target in targets)
    if isinstance(node, ast.Call):
        method = isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS
        inplace = any(k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value for k in node.keywords)
        return method or inplace
    return False


def _draws_globally(node: ast.AST) -> bool:
    """`np.random.NAME(...)` (or `numpy.random`), but for making a generator."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    owner = node.func.value
    return (
        isinstance(owner, ast.Attribute)
        and owner.attr == "random"
        and isinstance(owner.value, ast.Name)
        and owner.value.id in ("np", "numpy")
        and node.func.attr not in GENERATOR_MAKERS
    )


def main() -> None:
    total = Counts()
    print(f"{'notebook':50} {'cells':>5} {'redefine':>8} {'in place':>8} {'global rng':>10} {'ipython':>7}")
    for notebook in corpus():
        counts = census(notebook)
        total.add(counts)
        print(
            f"{notebook.name:50} {counts.cells:5} {counts.redefine:8} {counts.in_place:8}"
            f" {counts.global_random:10} {counts.ipython:7}"
        )
    print(
        f"{'total':50} {total.cells:5} {total.redefine:8} {total.in_place:8} {total.global_random:10} {total.ipython:7}"
    )


if __name__ == "__main__":
    main()
