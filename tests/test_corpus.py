"""The corpus (tests/corpus/README.md): public notebooks, each run as Run
All and as all-steps, must end with the same namespace (issue 12, Proof).

- Run All twice, in two fresh shells, compares equal: the notebook is
  deterministic and the comparison sees no difference where there is none.
- `nbpar.cells.run_cells_as_steps` (every code cell a step, on processes)
  leaves what Run All leaves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbpar.headless import HeadlessShell

from .corpus.compare import compare_namespaces, user_names
from .corpus.notebook import Notebook, corpus, isolated, notebook_shell, run_all

NOTEBOOKS = corpus()
pytestmark = [pytest.mark.corpus, pytest.mark.slow]
parametrized = pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[notebook.name for notebook in NOTEBOOKS])


@pytest.fixture(scope="module", autouse=True)
def plain_shell_after() -> Iterator[None]:
    """The tests after these expect the process's shell to be a plain
    InteractiveShell (the `shell` fixture's), not the corpus' HeadlessShell."""
    yield
    if InteractiveShell.initialized() and isinstance(InteractiveShell.instance(), HeadlessShell):
        InteractiveShell.instance().reset(new_session=False)
        InteractiveShell.clear_instance()


def run_all_namespace(notebook: Notebook) -> dict[str, object]:
    with isolated():
        shell = notebook_shell()
        run_all(shell, notebook.cells)
        return user_names(shell)


def test_the_corpus_is_all_there() -> None:
    assert len(NOTEBOOKS) == 26


@parametrized
def test_run_all_is_reproducible(notebook: Notebook) -> None:
    first, second = run_all_namespace(notebook), run_all_namespace(notebook)
    comparison = compare_namespaces(first, second)
    assert comparison.ok, comparison.describe()
    assert comparison.equal, "the notebook leaves no name to compare"


@parametrized
def test_all_steps_equal_run_all(notebook: Notebook) -> None:
    from nbpar.cells import run_cells_as_steps

    expected = run_all_namespace(notebook)
    with isolated():
        shell = notebook_shell()
        shell.run_line_magic("load_ext", "nbpar")
        run_cells_as_steps(shell, notebook.cells, backend="process", workers=2)
        comparison = compare_namespaces(expected, user_names(shell))
    assert comparison.ok, comparison.describe()
