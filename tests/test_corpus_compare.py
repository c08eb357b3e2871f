"""The corpus's namespace comparison (tests/corpus/compare.py): equal by
value, NaN equal to NaN, dtypes and indexes checked, and what it cannot
compare said so, not passed."""

from __future__ import annotations

import itertools
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from .conftest import run_cells
from .corpus.compare import NotComparable, compare_namespaces, difference, user_names

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402


def define(source: str) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile(source, "<cell>", "exec"), namespace)
    return namespace


EQUAL = [
    (1.5, 1.5),
    (float("nan"), float("nan")),
    (np.float32("nan"), np.float32("nan")),
    (np.array([1.0, np.nan]), np.array([1.0, np.nan])),
    (np.array([(1, "a")], dtype=[("n", int), ("s", "U1")]), np.array([(1, "a")], dtype=[("n", int), ("s", "U1")])),
    (np.array([None, [1]], dtype=object), np.array([None, [1]], dtype=object)),
    (pd.DataFrame({"a": [1.0, np.nan]}), pd.DataFrame({"a": [1.0, np.nan]})),
    (pd.Series([1, 2], index=["x", "y"], name="s"), pd.Series([1, 2], index=["x", "y"], name="s")),
    ([1, {"k": (2, np.nan)}], [1, {"k": (2, np.nan)}]),
    ({1, 2}, {2, 1}),
    (np, np),
    (define("def f(x=1):\n    return x + 1")["f"], define("def f(x=1):\n    return x + 1")["f"]),
    (define("class C:\n    def m(self): return 1")["C"], define("class C:\n    def m(self): return 1")["C"]),
    (np.random.default_rng(1), np.random.default_rng(1)),
    (np.random.RandomState(1), np.random.RandomState(1)),
    (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-01")),
]

DIFFERENT = [
    (1.5, 2.5, "1.5 vs 2.5"),
    (np.array([1, 2]), np.array([1.0, 2.0]), "dtype int64 vs float64"),
    (np.array([1, 2]), np.array([[1, 2]]), "shape (2,) vs (1, 2)"),
    (np.array([1.0, np.nan]), np.array([1.0, 2.0]), "elements differ"),
    (pd.Series([1, 2]), pd.Series([1.0, 2.0]), ".dtype"),
    (pd.Series([1, 2], index=["x", "y"]), pd.Series([1, 2], index=["x", "z"]), ".index"),
    (pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [1]}), ".columns"),
    (pd.DataFrame({"a": [1]}), pd.DataFrame({"a": [2]}), "values differ"),
    ([1, [2, 3]], [1, [2, 4]], "[1][1]: 3 vs 4"),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}, "keys"),
    (1, 1.0, "int vs float"),
    (define("def f():\n    return 1")["f"], define("def f():\n    return 2")["f"], "its code differs"),
    (np.random.default_rng(1), np.random.default_rng(2), "bit_generator.state"),
]

NOT_COMPARED = [
    (plt.figure(), plt.figure(), "matplotlib"),
    ((x for x in [1]), (x for x in [1]), "iterator"),
    (iter([1]), iter([1]), "iterator"),
    (itertools.count(), itertools.count(), "no equality"),
    ([1, object()], [1, object()], "[1]: object has no equality"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal(a: object, b: object) -> None:
    assert difference(a, b) is None


@pytest.mark.parametrize(("a", "b", "why"), DIFFERENT)
def test_different(a: object, b: object, why: str) -> None:
    found = difference(a, b)
    assert found is not None and why in found, found


@pytest.mark.parametrize(("a", "b", "why"), NOT_COMPARED)
def test_not_compared(a: object, b: object, why: str) -> None:
    with pytest.raises(NotComparable, match=re.escape(why)):
        difference(a, b)


def test_instances_of_a_class_each_run_defines_compare_by_attributes() -> None:
    source = "class P:\n    def __init__(self, x): self.x = x\n"
    first, second = define(source), define(source)
    assert difference(first["P"](1), second["P"](1)) is None  # type: ignore[operator]
    assert "__dict__['x']: 1 vs 2" in (difference(first["P"](1), second["P"](2)) or "")  # type: ignore[operator]


def test_namespaces_sort_every_name() -> None:
    comparison = compare_namespaces(
        {"a": 1, "b": 2, "only_expected": 0, "fig": plt.figure()},
        {"a": 1, "b": 3, "only_actual": 0, "fig": plt.figure()},
    )
    assert comparison.equal == ("a",)
    assert comparison.different == (("b", "value: 2 vs 3"),)
    assert comparison.missing == (
        ("only_actual", "only in the actual run"),
        ("only_expected", "only in the expected run"),
    )
    assert [name for name, _ in comparison.not_compared] == ["fig"]
    assert not comparison.ok
    assert "different: b: value: 2 vs 3" in comparison.describe()


def test_user_names_leave_ipythons_and_private_names_out(shell: InteractiveShell) -> None:
    run_cells(shell, "x = 1", "x + 1", "_private = 2", "import math")
    assert set(user_names(shell)) == {"x", "math"}
