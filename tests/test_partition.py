"""Spec-style tests for nbpar.partition (split inputs, merge outputs) and nbpar.partitioned (folders)."""

from __future__ import annotations

import collections
import json
import math
import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbpar.partition import (
    MERGES,
    MergeError,
    Slice,
    SliceError,
    merge,
    split,
)
from nbpar.partitioned import Partition, partitions

from .conftest import ROOT

# -- split: a table of cases ----------------------------------------------------

# (id, input, options, the slices' values)
SPLIT_CASES: list[tuple[str, Any, dict[str, Any], list[Any]]] = [
    ("list-even", list(range(6)), {"slices": 3}, [[0, 1], [2, 3], [4, 5]]),
    ("list-uneven-first-bigger", list(range(7)), {"slices": 3}, [[0, 1, 2], [3, 4], [5, 6]]),
    ("list-one-slice", [1, 2, 3], {"slices": 1}, [[1, 2, 3]]),
    ("list-more-slices-than-items", [1, 2], {"slices": 5}, [[1], [2]]),
    ("list-slice-size", list(range(7)), {"slice_size": 3}, [[0, 1, 2], [3, 4, 5], [6]]),
    ("list-slice-size-exact", list(range(6)), {"slice_size": 2}, [[0, 1], [2, 3], [4, 5]]),
    ("list-slice-size-bigger", [1, 2], {"slice_size": 10}, [[1, 2]]),
    ("list-empty", [], {"slices": 4}, [[]]),
    ("list-empty-slice-size", [], {"slice_size": 4}, [[]]),
    ("tuple", (1, 2, 3, 4, 5), {"slices": 2}, [(1, 2, 3), (4, 5)]),
    ("tuple-empty", (), {"slices": 2}, [()]),
    ("range", range(10), {"slices": 4}, [range(0, 3), range(3, 6), range(6, 8), range(8, 10)]),
    ("range-stepped", range(0, 20, 5), {"slice_size": 3}, [range(0, 15, 5), range(15, 20, 5)]),
    ("range-empty", range(0), {"slices": 3}, [range(0)]),
    ("dict-sorted-keys", {"c": 3, "a": 1, "b": 2, "d": 4}, {"slices": 2}, [{"a": 1, "b": 2}, {"c": 3, "d": 4}]),
    ("dict-int-keys", {3: "c", 1: "a", 2: "b"}, {"slice_size": 2}, [{1: "a", 2: "b"}, {3: "c"}]),
    ("dict-unsortable-keys", {"b": 1, 2: 2, "a": 3}, {"slices": 2}, [{"b": 1, 2: 2}, {"a": 3}]),
    ("dict-empty", {}, {"slices": 3}, [{}]),
    ("dict-more-slices-than-keys", {"x": 1}, {"slices": 8}, [{"x": 1}]),
]


@pytest.mark.parametrize(
    ("value", "options", "expected"), [c[1:] for c in SPLIT_CASES], ids=[c[0] for c in SPLIT_CASES]
)
def test_split_cases(value: Any, options: dict[str, Any], expected: list[Any]) -> None:
    parts = split(value, name="v", **options)
    assert [p.value for p in parts] == expected
    assert [type(p.value) for p in parts] == [type(value)] * len(parts)
    assert [p.index for p in parts] == list(range(len(parts)))
    assert [p.size for p in parts] == [len(p.value) for p in parts]
    assert all(p.size > 0 for p in parts) or (len(parts) == 1 and len(value) == 0)
    assert merge("v", [p.value for p in parts]) == value  # the slices, merged, are the input


def test_sizes_differ_by_at_most_one_first_ones_bigger() -> None:
    for length in range(1, 30):
        for n in range(1, 12):
            sizes = [p.size for p in split(list(range(length)), name="v", slices=n)]
            assert len(sizes) == min(n, length)
            assert sum(sizes) == length
            assert max(sizes) - min(sizes) <= 1
            assert sizes == sorted(sizes, reverse=True)


def test_slice_size_gives_full_slices_then_a_shorter_one() -> None:
    sizes = [p.size for p in split(list(range(23)), name="v", slice_size=5)]
    assert sizes == [5, 5, 5, 5, 3]


def test_first_and_last_keys() -> None:
    parts = split(list("abcdefg"), name="v", slices=3)
    assert [(p.first, p.last) for p in parts] == [(0, 2), (3, 4), (5, 6)]
    parts = split({"k2": 0, "k1": 0, "k3": 0}, name="v", slices=2)
    assert [(p.first, p.last) for p in parts] == [("k1", "k2"), ("k3", "k3")]
    (empty,) = split([], name="v", slices=2)
    assert (empty.index, empty.size, empty.first, empty.last) == (0, 0, None, None)


def test_generic_sequence_is_sliced_with_its_own_slicing() -> None:
    lines = collections.UserList(["a", "b", "c"])
    parts = split(lines, name="lines", slices=2)
    assert [p.value for p in parts] == [collections.UserList(["a", "b"]), collections.UserList(["c"])]
    assert all(isinstance(p.value, collections.UserList) for p in parts)


def test_filter_keeps_dict_keys_before_slicing() -> None:
    data = {f"k{i}": i for i in range(10)}
    parts = split(data, name="data", slices=2, keep=lambda k: int(k[1:]) % 2 == 0)
    assert [p.value for p in parts] == [{"k0": 0, "k2": 2, "k4": 4}, {"k6": 6, "k8": 8}]


def test_filter_dropping_everything_gives_one_empty_slice() -> None:
    (only,) = split({"a": 1}, name="data", slices=3, keep=lambda k: False)
    assert only.value == {} and only.size == 0


def test_filter_applies_to_partitions(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.txt").write_text(name)
    parts = split(partitions(tmp_path), name="files", slices=5, keep=lambda k: k != "b")
    assert [list(p.value) for p in parts] == [["a"], ["c"]]
    assert parts[1].value["c"]() == "c"


def test_filter_exception_propagates() -> None:
    def broken(key: str) -> bool:
        raise KeyError(key)

    with pytest.raises(KeyError):
        split({"a": 1}, name="data", slices=2, keep=broken)


# -- split: NumPy and pandas ------------------------------------------------------


def test_split_array_first_axis_gives_views() -> None:
    arr = np.arange(20).reshape(10, 2)
    parts = split(arr, name="arr", slices=3)
    assert [p.value.shape for p in parts] == [(4, 2), (3, 2), (3, 2)]
    assert all(np.shares_memory(p.value, arr) for p in parts)
    assert [(p.first, p.last) for p in parts] == [(0, 3), (4, 6), (7, 9)]
    np.testing.assert_array_equal(merge("arr", [p.value for p in parts]), arr)


def test_split_empty_array() -> None:
    (only,) = split(np.zeros((0, 3)), name="arr", slices=4)
    assert only.value.shape == (0, 3) and only.size == 0


def test_split_dataframe_by_position_keyed_by_label() -> None:
    df = pd.DataFrame({"x": range(5), "y": list("abcde")}, index=[50, 40, 30, 20, 10])
    parts = split(df, name="df", slices=2)
    assert [list(p.value.index) for p in parts] == [[50, 40, 30], [20, 10]]
    assert [(p.first, p.last) for p in parts] == [(50, 30), (20, 10)]
    assert type(parts[0].first) is int  # a plain int, not np.int64
    pd.testing.assert_frame_equal(merge("df", [p.value for p in parts]), df)


def test_split_series_with_string_index() -> None:
    s = pd.Series([1.0, 2.0, 3.0], index=["a", "b", "c"])
    parts = split(s, name="s", slice_size=2)
    assert [p.describe() for p in parts] == ["slice 0 (keys 'a' … 'b')", "slice 1 (key 'c')"]
    pd.testing.assert_series_equal(merge("s", [p.value for p in parts]), s)


def test_split_empty_dataframe() -> None:
    (only,) = split(pd.DataFrame({"x": []}), name="df", slices=2)
    assert only.size == 0 and list(only.value.columns) == ["x"]


# -- split: the merge of the slices is the input (property) -------------------------

_keys = st.one_of(st.integers(), st.text(max_size=5))
_counts = st.integers(min_value=1, max_value=12)


@st.composite
def _request(draw: st.DrawFn) -> dict[str, Any]:
    return {"slices": draw(_counts)} if draw(st.booleans()) else {"slice_size": draw(_counts)}


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers()), _request())
def test_property_list(value: list[int], request: dict[str, Any]) -> None:
    assert merge("v", [p.value for p in split(value, name="v", **request)]) == value


@settings(deadline=None, max_examples=60)
@given(st.dictionaries(_keys, st.integers()), _request())
def test_property_dict(value: dict[Any, int], request: dict[str, Any]) -> None:
    assert merge("v", [p.value for p in split(value, name="v", **request)]) == value


@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(allow_nan=False), max_size=40), st.integers(1, 3), _request())
def test_property_array(items: list[float], width: int, request: dict[str, Any]) -> None:
    value = np.array(items[: len(items) // width * width]).reshape(-1, width)
    merged = merge("v", [p.value for p in split(value, name="v", **request)])
    np.testing.assert_array_equal(merged, value)
    assert merged.shape == value.shape


@settings(deadline=None, max_examples=40)
@given(st.lists(st.tuples(st.integers(), st.text(max_size=3)), max_size=30), _request(), st.booleans())
def test_property_frame_and_series(rows: list[tuple[int, str]], request: dict[str, Any], series: bool) -> None:
    frame = pd.DataFrame(rows, columns=["n", "s"], index=[f"r{i}" for i in range(len(rows))])
    value: Any = frame["n"] if series else frame
    merged = merge("v", [p.value for p in split(value, name="v", **request)])
    if series:
        pd.testing.assert_series_equal(merged, value)
    else:
        pd.testing.assert_frame_equal(merged, value)


# -- Slice.describe -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "text"),
    [
        (Slice(3, {"b": 0, "f": 0}, 5, "b", "f"), "slice 3 (keys 'b' … 'f')"),
        (Slice(0, list(range(10)), 10, 0, 9), "slice 0 (items 0 … 9)"),
        (Slice(2, [7], 1, 7, 7), "slice 2 (item 7)"),
        (Slice(1, {"k": 1}, 1, "k", "k"), "slice 1 (key 'k')"),
        (Slice(0, [], 0, None, None), "slice 0 (empty)"),
    ],
)
def test_describe(part: Slice, text: str) -> None:
    assert part.describe() == text


def test_describe_from_split() -> None:
    parts = split(dict.fromkeys("abcdefgh", 0), name="d", slices=3)
    assert [p.describe() for p in parts] == [
        "slice 0 (keys 'a' … 'c')",
        "slice 1 (keys 'd' … 'f')",
        "slice 2 (keys 'g' … 'h')",
    ]


# -- split: errors name the variable ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "options", "words"),
    [
        (42, {"slices": 2}, ["`images`", "an int cannot be sliced", "Sliceable: lists"]),
        (None, {"slices": 2}, ["`images`", "a NoneType cannot be sliced"]),
        ({1, 2, 3}, {"slices": 2}, ["`images`", "a set cannot be sliced", "make it a list"]),
        ((i for i in range(3)), {"slices": 2}, ["`images`", "generator", "make it a list"]),
        ("some text", {"slices": 2}, ["`images`", "a str cannot be sliced", "characters"]),
        (b"bytes", {"slices": 2}, ["`images`", "a bytes cannot be sliced", "characters"]),
        (np.float64(1.0), {"slices": 2}, ["`images`", "cannot be sliced"]),
        (np.array(5), {"slices": 2}, ["`images`", "0-d NumPy array"]),
        ([1, 2], {}, ["`images`", "exactly one of --slices N and --slice-size K"]),
        ([1, 2], {"slices": 2, "slice_size": 2}, ["`images`", "exactly one"]),
        ([1, 2], {"slices": 0}, ["`images`", "--slices must be", "at least 1, not 0"]),
        ([1, 2], {"slice_size": -1}, ["`images`", "--slice-size must be", "not -1"]),
        ([1, 2], {"slices": 2.5}, ["`images`", "--slices", "not 2.5"]),
        ([1, 2], {"slices": 2, "keep": bool}, ["`images`", "--filter applies to the keys of a dict input", "a list"]),
    ],
)
def test_split_errors(value: Any, options: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(SliceError) as caught:
        split(value, name="images", **options)
    for word in words:
        assert word in str(caught.value)
    assert isinstance(caught.value, ValueError)


# -- merge: a table of cases ------------------------------------------------------------

MERGE_CASES: list[tuple[str, list[Any], str, Any]] = [
    ("auto-lists", [[1, 2], [3], []], "auto", [1, 2, 3]),
    ("auto-tuples", [(1,), (2, 3)], "auto", (1, 2, 3)),
    ("auto-ranges-contiguous", [range(0, 3), range(3, 5)], "auto", range(0, 5)),
    ("auto-ranges-apart", [range(0, 3), range(5, 6)], "auto", [range(0, 3), range(5, 6)]),
    ("auto-dicts-later-wins", [{"a": 1, "b": 1}, {"b": 2, "c": 3}], "auto", {"a": 1, "b": 2, "c": 3}),
    ("auto-sets", [{1, 2}, {2, 3}], "auto", {1, 2, 3}),
    ("auto-frozensets", [frozenset({1}), {2}], "auto", frozenset({1, 2})),
    ("auto-numbers", [1, 2.5, 3], "auto", [1, 2.5, 3]),
    ("auto-strings-not-joined", ["a", "b"], "auto", ["a", "b"]),
    ("auto-none", [None, None], "auto", [None, None]),
    ("auto-mixed", [[1], (2,)], "auto", [[1], (2,)]),
    ("auto-single", [[1, 2]], "auto", [1, 2]),
    ("concat-lists", [[1], [2, 3]], "concat", [1, 2, 3]),
    ("concat-tuples", [(1,), (2,)], "concat", (1, 2)),
    ("concat-strings", ["ab", "", "c"], "concat", "abc"),
    ("concat-bytes", [b"ab", b"c"], "concat", b"abc"),
    ("concat-ranges-apart", [range(0, 2), range(5, 7)], "concat", [0, 1, 5, 6]),
    ("dict", [{"a": 1}, {"a": 2, "b": 3}], "dict", {"a": 2, "b": 3}),
    ("list-of-lists", [[1], [2]], "list", [[1], [2]]),
    ("list-of-strings", ["a", "b"], "list", ["a", "b"]),
    ("sum-numbers", [1, 2, 3.5], "sum", 6.5),
    ("sum-lists", [[1], [2]], "sum", [1, 2]),
    ("sum-counters", [Counter("aab"), Counter("bc")], "sum", Counter({"a": 2, "b": 2, "c": 1})),
]


@pytest.mark.parametrize(("values", "how", "expected"), [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES])
def test_merge_cases(values: list[Any], how: str, expected: Any) -> None:
    merged = merge("out", values, how)
    assert merged == expected
    assert type(merged) is type(expected)


def test_merges_constant() -> None:
    assert MERGES == ("auto", "concat", "dict", "list", "sum")


def test_auto_keeps_named_tuples_apart() -> None:
    point = collections.namedtuple("point", "x y")
    assert merge("p", [point(1, 2), point(3, 4)]) == [point(1, 2), point(3, 4)]
    assert merge("p", [point(1, 2), point(3, 4)], "concat") == (1, 2, 3, 4)


def test_dict_merge_keeps_the_first_type_and_replaces_values() -> None:
    merged = merge("c", [Counter(a=1), Counter(a=5, b=1)], "dict")
    assert merged == Counter(a=5, b=1) and type(merged) is Counter
    ordered = merge("o", [collections.OrderedDict(b=1), {"a": 2}])
    assert type(ordered) is collections.OrderedDict and list(ordered) == ["b", "a"]


def test_merge_arrays() -> None:
    parts = [np.array([[1, 2]]), np.array([[3, 4], [5, 6]])]
    np.testing.assert_array_equal(merge("a", parts), np.array([[1, 2], [3, 4], [5, 6]]))
    np.testing.assert_array_equal(merge("a", parts, "concat"), np.array([[1, 2], [3, 4], [5, 6]]))
    np.testing.assert_array_equal(merge("a", [np.ones(3), np.ones(3)], "sum"), np.full(3, 2.0))
    assert merge("a", [np.array(1), np.array(2)]) == [np.array(1), np.array(2)]  # 0-d: a list


def test_merge_frames_and_series() -> None:
    frames = [pd.DataFrame({"x": [1]}, index=["a"]), pd.DataFrame({"x": [2, 3]}, index=["b", "c"])]
    pd.testing.assert_frame_equal(merge("df", frames), pd.DataFrame({"x": [1, 2, 3]}, index=["a", "b", "c"]))
    series = [pd.Series([1]), pd.Series([2], index=[1])]
    pd.testing.assert_series_equal(merge("s", series, "concat"), pd.Series([1, 2]))
    mixed = merge("m", [frames[0], series[0]])
    assert isinstance(mixed, list) and len(mixed) == 2


def test_merge_callable_is_called_once_with_the_list() -> None:
    calls: list[list[Any]] = []

    def combine(values: list[Any]) -> int:
        calls.append(values)
        return max(values)

    assert merge("best", [3, 9, 4], combine) == 9
    assert calls == [[3, 9, 4]]


def test_merge_callable_exception_propagates() -> None:
    def broken(values: list[Any]) -> Any:
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError, match="boom"):
        merge("x", [1], broken)


def _helper() -> int:
    return 1


class _Model:
    pass


@pytest.mark.parametrize("how", MERGES)
@pytest.mark.parametrize(
    "value", [_helper, math, _Model, len, "abc".upper], ids=["function", "module", "class", "builtin", "method"]
)
def test_functions_modules_classes_are_taken_once(value: Any, how: str) -> None:
    assert merge("thing", [value, value, value], how) is value


def test_taken_once_takes_the_first_slice() -> None:
    def f1() -> None: ...

    def f2() -> None: ...

    assert merge("f", [f1, f2]) is f1


def test_taken_once_not_for_callables() -> None:
    assert merge("f", [_helper, _helper], lambda values: len(values)) == 2


# -- merge: errors name the output, and the slice ---------------------------------------------


@pytest.mark.parametrize(
    ("values", "how", "words"),
    [
        ([[1], "a"], "concat", ["`out`", "concat", "slice 1", "a str", "slice 0 gave a list", "--merge list"]),
        ([1, 2], "concat", ["`out`", "slice 0", "an int", "cannot be concatenated", "--merge list", "--merge FUNC"]),
        (["a", "b", 3], "concat", ["`out`", "slice 2", "an int"]),
        ([{"a": 1}, {"b": 2}], "concat", ["`out`", "slice 0", "a dict"]),
        ([np.array(1)], "concat", ["`out`", "slice 0", "0-d ndarray"]),
        ([{"a": 1}, [1]], "dict", ["`out`", "--merge dict", "slice 1", "a list", "not a dict"]),
        ([1, "a"], "sum", ["`out`", "--merge sum", "--merge list"]),
        ([np.ones(2), np.ones(3)], "sum", ["`out`", "--merge sum"]),
        ([np.ones((1, 2)), np.ones((1, 3))], "auto", ["`out`", "arrays do not concatenate", "--merge list"]),
        ([1], "median", ["`out`", "'median'", "auto, concat, dict, list, sum", "a function"]),
        ([], "auto", ["`out`", "no slice"]),
    ],
)
def test_merge_errors(values: list[Any], how: str, words: list[str]) -> None:
    with pytest.raises(MergeError) as caught:
        merge("out", values, how)
    for word in words:
        assert word in str(caught.value)
    assert isinstance(caught.value, ValueError)


# -- partitions(): partitioned folders ---------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """sales/{2024-jan.csv, 2024-feb.csv, 2023/dec.csv, notes.txt, meta/info.json, raw.bin}, plus hidden ones."""
    root = tmp_path / "sales"
    (root / "2023").mkdir(parents=True)
    (root / "meta").mkdir()
    (root / ".cache").mkdir()
    (root / "2024-jan.csv").write_text("day,amount\n1,10\n2,20\n")
    (root / "2024-feb.csv").write_text("day,amount\n1,5\n")
    (root / "2023" / "dec.csv").write_text("day,amount\n31,99\n")
    (root / "notes.txt").write_text("hello\n")
    (root / "meta" / "info.json").write_text(json.dumps({"currency": "EUR"}))
    (root / "raw.bin").write_bytes(b"\x00\x01")
    (root / ".hidden.csv").write_text("day,amount\n")
    (root / ".cache" / "stale.csv").write_text("day,amount\n")
    return root


def test_folder_names_sorted_hidden_skipped(folder: Path) -> None:
    found = partitions(folder)
    assert list(found) == ["2023/dec", "2024-feb", "2024-jan", "meta/info", "notes", "raw"]
    assert found["2023/dec"].name == "2023/dec"
    assert found["2023/dec"].path == str(folder / "2023" / "dec.csv")
    assert os.path.isabs(found["notes"].path)


def test_folder_as_pathlike_or_str(folder: Path) -> None:
    assert list(partitions(str(folder))) == list(partitions(folder))


def test_suffix_filter(folder: Path) -> None:
    assert list(partitions(folder, suffix=".csv")) == ["2023/dec", "2024-feb", "2024-jan"]


def test_suffix_longer_than_the_extension_is_removed_from_names(tmp_path: Path) -> None:
    (tmp_path / "a.tar.gz").write_bytes(b"")
    (tmp_path / "b.tar.gz").write_bytes(b"")
    assert list(partitions(tmp_path, suffix=".tar.gz")) == ["a", "b"]
    assert list(partitions(tmp_path)) == ["a.tar", "b.tar"]


def test_glob_patterns(folder: Path) -> None:
    assert list(partitions(f"{folder}/*.csv")) == ["2024-feb", "2024-jan"]
    assert list(partitions(f"{folder}/**/*.csv")) == ["2023/dec", "2024-feb", "2024-jan"]
    assert list(partitions(f"{folder}/2024-*")) == ["2024-feb", "2024-jan"]
    assert list(partitions(f"{folder}/*/*.*")) == ["2023/dec", "meta/info"]  # named from `folder`
    assert list(partitions(f"{folder}/**", suffix=".json")) == ["meta/info"]


def test_relative_glob_pattern(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder.parent)
    found = partitions("sales/2023/*.csv")
    assert list(found) == ["dec"]
    assert found["dec"].path == str(folder / "2023" / "dec.csv")


def test_settings_merge_in_order(folder: Path) -> None:
    found = partitions(
        folder,
        suffix=".csv",
        settings={"*": {"scale": 1, "unit": "EUR"}, "2024-*": {"scale": 2}, "*-jan": {"month": 1}, "nope": {"x": 0}},
    )
    assert found["2023/dec"].settings == {"scale": 1, "unit": "EUR"}
    assert found["2024-feb"].settings == {"scale": 2, "unit": "EUR"}
    assert found["2024-jan"].settings == {"scale": 2, "unit": "EUR", "month": 1}
    assert partitions(folder)["notes"].settings == {}


def test_default_loaders(folder: Path, tmp_path: Path) -> None:
    found = partitions(folder)
    frame = found["2024-jan"]()
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("list") == {"day": [1, 2], "amount": [10, 20]}
    assert found["meta/info"]() == {"currency": "EUR"}
    assert found["notes"]() == "hello\n"
    assert found["notes"].load() == "hello\n"
    assert found["raw"]() == b"\x00\x01"
    with open(tmp_path / "obj.pkl", "wb") as f:
        pickle.dump({"a": [1, 2]}, f)
    (tmp_path / "readme.md").write_text("# title")
    more = partitions(tmp_path)
    assert more["obj"]() == {"a": [1, 2]}
    assert more["readme"]() == "# title"


def test_csv_without_pandas_gives_dicts(folder: Path) -> None:
    printed = alone("partitioned", ("pandas",), f"print(mod.partitions({str(folder)!r})['2024-feb']())")
    assert printed == "[{'day': '1', 'amount': '5'}]"


def test_custom_loader(folder: Path) -> None:
    found = partitions(folder, lambda path: Path(path).stat().st_size, suffix=".txt")
    assert found["notes"]() == 6


def test_nothing_is_loaded_up_front(folder: Path) -> None:
    calls: list[str] = []
    found = partitions(folder, calls.append)
    assert calls == []
    found["notes"]()
    assert calls == [str(folder / "notes.txt")]


def test_repr(folder: Path) -> None:
    found = partitions(folder, settings={"2024-*": {"scale": 2}})
    assert repr(found["2024-jan"]) == "Partition('2024-jan', settings={'scale': 2})"
    assert repr(found["notes"]) == "Partition('notes')"


def test_duplicate_names(tmp_path: Path) -> None:
    (tmp_path / "jan.csv").write_text("a\n")
    (tmp_path / "jan.json").write_text("{}")
    with pytest.raises(ValueError) as caught:
        partitions(tmp_path)
    assert "jan.csv" in str(caught.value) and "jan.json" in str(caught.value) and "'jan'" in str(caught.value)
    assert list(partitions(tmp_path, suffix=".csv")) == ["jan"]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        partitions(tmp_path / "nowhere")
    assert "nowhere" in str(caught.value) and "folder" in str(caught.value)


def test_pattern_matching_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        partitions(f"{tmp_path}/*.parquet")
    assert "*.parquet" in str(caught.value) and "matching" in str(caught.value)


def test_folder_without_matching_files(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ending with '.parquet'"):
        partitions(folder, suffix=".parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no files in folder"):
        partitions(tmp_path / "empty")


def test_a_file_is_not_a_folder(folder: Path) -> None:
    with pytest.raises(NotADirectoryError, match="notes.txt"):
        partitions(folder / "notes.txt")


def test_partition_round_trips_through_cloudpickle(folder: Path) -> None:
    offset = 100
    found = partitions(folder, lambda path: offset + len(Path(path).read_text()), settings={"*": {"k": 1}})
    again = cloudpickle.loads(cloudpickle.dumps(found["notes"]))
    assert isinstance(again, Partition)
    assert (again.name, again.path, again.settings) == ("notes", found["notes"].path, {"k": 1})
    assert again() == 106


def test_partition_round_trips_through_pickle(folder: Path) -> None:
    found = partitions(folder)
    again = pickle.loads(pickle.dumps(found["meta/info"]))
    assert again == found["meta/info"]
    assert again() == {"currency": "EUR"}
    whole = pickle.loads(pickle.dumps(found))
    assert list(whole) == list(found)


def test_fan_out_over_partitions_and_merge(folder: Path) -> None:
    found = partitions(folder, suffix=".csv")
    totals = [
        {name: int(part()["amount"].sum()) for name, part in s.value.items()}
        for s in split(found, name="sales", slices=2)
    ]
    assert merge("totals", totals) == {"2023/dec": 99, "2024-feb": 5, "2024-jan": 30}


# -- purity -------------------------------------------------------------------------------


HEAVY = ("IPython", "ipywidgets", "loky", "numpy", "pandas")


def alone(module: str, blocked: tuple[str, ...], code: str) -> str:
    """What `code` prints in a fresh interpreter where nbpar/`module`.py is
    loaded on its own as `mod` (no nbpar package) and `blocked` cannot be imported."""
    script = (
        "import sys, importlib.util\n"
        f"for blocked in {blocked!r}: sys.modules[blocked] = None\n"
        f"spec = importlib.util.spec_from_file_location({module!r}, {str(ROOT / 'nbpar' / (module + '.py'))!r})\n"
        f"mod = sys.modules[{module!r}] = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        f"{code}\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_module_imports_without_heavy_dependencies() -> None:
    code = "print([p.value for p in mod.split({'b': 1, 'a': 2}, name='d', slices=2)], mod.merge('x', [[1], [2]]))"
    assert alone("partition", HEAVY, code) == "[{'a': 2}, {'b': 1}] [1, 2]"


def test_partitioned_imports_without_heavy_dependencies(folder: Path) -> None:
    assert alone("partitioned", HEAVY, f"print(sorted(mod.partitions({str(folder)!r})))") == str(
        sorted(partitions(folder))
    )
