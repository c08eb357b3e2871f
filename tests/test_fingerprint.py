"""fingerprint(value): equal for equal content, different for changed content."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from nbpar import fingerprint as fingerprint_module
from nbpar.fingerprint import Fingerprints, fingerprint


class Box:
    def __init__(self, value):
        self.value = value


def _cyclic():
    a = [1]
    a.append(a)
    return a


def _adder(k):
    def add(v):
        return v + k

    return add


# (a, b): values a step could read, equal in content
EQUAL = [
    (10_000, int("10000")),
    ("abc", "".join("abc")),
    (1.5, 3 / 2),
    ([1, 2.5, "x", None, True], [1, 2.5, "x", None, True]),
    ({"a": [1, (2, 3)]}, {"a": [1, (2, 3)]}),
    ({3, 1, 2}, {1, 2, 3}),
    (np.arange(10.0), np.arange(10.0)),
    (np.arange(12).reshape(3, 4)[:, 1], np.array([1, 5, 9])),  # a strided view, by value
    (pd.DataFrame({"a": [1, 2], "s": ["x", "y"]}), pd.DataFrame({"a": [1, 2], "s": ["x", "y"]})),
    (pd.Series(pd.Categorical(["u", "v"])), pd.Series(pd.Categorical(["u", "v"]))),
    (Box([1, 2]), Box([1, 2])),
    (_adder(1), _adder(1)),
    (_cyclic(), _cyclic()),
]

# (a, b): the same kind of value with a changed content
DIFFERENT = [
    (1, True),
    (1, 1.0),
    ([1], (1,)),
    ([1, 2], [1, 2, 50]),
    ({"a": [1, 2]}, {"a": [9, 2]}),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),  # the order a step iterates in
    ({1, 2}, {1, 2, 3}),
    (np.arange(6.0), np.array([0.0, 1, 2, -1, 4, 5])),
    (np.arange(6.0), np.arange(6.0).reshape(2, 3)),
    (np.arange(3), np.arange(3, dtype=np.int32)),
    (np.ma.masked_array([1, 2], mask=[False, False]), np.ma.masked_array([1, 2], mask=[False, True])),
    (pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [1000, 2]})),
    (pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"b": [1, 2]})),
    (pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [1, 2]}, index=[5, 6])),
    (pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [1.0, 2.0]})),
    (pd.Series(["x", "y"]), pd.Series(["x", "z"])),
    (pd.Series(pd.Categorical(["u", "v"])), pd.Series(pd.Categorical(["u", "v"], categories=["v", "u"]))),
    (Box([1, 2]), Box([1, 3])),
    (_adder(1), _adder(2)),  # the closure
    (lambda v: v + 1, lambda v: v + 2),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_content_gives_equal_fingerprints(a, b):
    assert fingerprint(a) is not None
    assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_changed_content_gives_another_fingerprint(a, b):
    assert fingerprint(a) is not None and fingerprint(b) is not None
    assert fingerprint(a) != fingerprint(b)


@pytest.mark.parametrize(
    ("value", "change"),
    [
        ([10, 20], lambda v: v.append(50)),
        ([[1], [2]], lambda v: v[1].append(3)),
        ({"k": {"n": 1}}, lambda v: v["k"].update(n=2)),
        (np.zeros(4), lambda v: v.__setitem__(2, 1.0)),
        (pd.DataFrame({"a": [1, 2]}), lambda v: v.__setitem__("b", [3, 4])),
        (Box({"x": 1}), lambda v: v.value.update(x=2)),
    ],
)
def test_a_change_in_place_changes_the_fingerprint(value, change):
    before = fingerprint(value)
    change(value)
    assert fingerprint(value) != before


def test_a_value_that_does_not_pickle_cannot_be_fingerprinted():
    assert fingerprint(threading.Lock()) is None
    assert fingerprint([1, Box(threading.Lock())]) is None


def test_a_value_past_the_pickle_limit_cannot_be_fingerprinted(monkeypatch):
    monkeypatch.setattr(fingerprint_module, "PICKLE_LIMIT", 1000)
    assert fingerprint(Box(list(range(100)))) is not None
    assert fingerprint(Box(list(range(10_000)))) is None
    assert fingerprint(np.zeros(10_000)) is not None  # arrays are read directly, whatever their size


def test_classes_and_modules_are_compared_by_identity():
    class A:
        pass

    first = A

    class A:  # noqa: F811 (the same name, another class)
        pass

    assert fingerprint(first) == fingerprint(first) != fingerprint(A)
    assert fingerprint(np) == fingerprint(np)
    box, other = Box(1), Box(1)
    assert fingerprint(box.__init__) == fingerprint(box.__init__) != fingerprint(other.__init__)


def test_fingerprints_memo_reads_each_object_once():
    fingerprints = Fingerprints()
    value = [1, 2]
    first = fingerprints(value)
    value.append(3)  # (a memo is only for a stretch in which nothing changes)
    assert fingerprints(value) == first != fingerprint(value)
