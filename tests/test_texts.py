"""Text columns as one UTF-8 buffer (nbpar/texts.py) and the arrays that
travel as out-of-band buffers (sharing.reduce_array): what comes back is
what went, with its layout and the objects it shares with the rest of the
pickle; an array rebuilt and unchanged is not read again, and any change
to it is seen; fingerprints tell every pair of different arrays apart."""

from __future__ import annotations

import gc
import os
import pickle
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbpar import sharing, texts
from nbpar.fingerprint import fingerprint

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")

N = 200  # items: above texts.MIN_ITEMS


class Tag(str):
    """A str subclass: it must come back as itself, not as a plain str."""


class Scope:
    """A run's scope for sharing.dumps (any weak-referenceable object)."""


def objects(items: list[Any]) -> Any:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def round_trip(value: Any) -> Any:
    return sharing.loads(sharing.dumps(value))


def same(x: Any, y: Any) -> bool:
    """The same item: type and value (a missing value: the same kind)."""
    if type(x) is not type(y):
        return False
    if x is pd.NA or (isinstance(x, float) and x != x):  # noqa: PLR0124
        return True
    return bool(x == y)


def same_items(a: Any, b: Any) -> bool:
    """Equal item by item, with the same types, in the same shape."""
    pairs = zip(a.ravel(order="A").tolist(), b.ravel(order="A").tolist(), strict=True)
    return a.shape == b.shape and all(same(x, y) for x, y in pairs)


TEXTS: dict[str, list[Any]] = {
    "plain": [f"customer-{k % 17}" for k in range(N)],
    "missing": [None if k % 5 == 0 else float("nan") if k % 7 == 0 else f"s{k}" for k in range(N)],
    "repeated": [None if k % 5 == 0 else float("nan") if k % 7 == 0 else f"s{k % 10}" for k in range(N)],
    "unicode": ["é", "日本", "\U0001f600", "", "\udcff", "a\ud83d\ude00b"] * (N // 6),  # lone surrogates too
    "empty strings": [""] * N,
    "subclass": [Tag("t") if k % 3 == 0 else "p" for k in range(N)],
    "pd.NA": [pd.NA if k % 4 == 0 else "x" for k in range(N)],
}


@pytest.mark.parametrize("name", TEXTS)
def test_an_object_array_of_strings_comes_back_as_it_went(name: str):
    array = objects(TEXTS[name])
    assert texts.encode(array) is not None  # (it goes as one buffer)
    back = round_trip(array)
    assert back.dtype == object and back.flags.writeable and same_items(array, back)


def test_arrays_that_would_not_come_back_exactly_are_pickled_as_numpy_does():
    assert texts.encode(objects(["a\0b", "c"] * N)) is None  # a NUL: splitting would not find the items
    assert texts.encode(objects([1, 2, "x"] * N)) is None  # mostly not strings
    assert texts.encode(objects(["x"] * (texts.MIN_ITEMS - 1))) is None  # too small to matter
    for items in (["a\0b", "c"] * N, [1, 2, "x"] * N):
        assert same_items(objects(items), round_trip(objects(items)))


@pytest.mark.parametrize("pandas", [True, False])
def test_repeated_strings_go_once_with_their_codes(pandas: bool, monkeypatch: Any):
    """A column that repeats its strings goes as the distinct ones and a code
    per item, with pandas or without (the same Text); it comes back with one
    str per distinct string, each rebuild its own array."""
    items = [None if k % 11 == 0 else Tag("t") if k % 13 == 0 else f"customer-{k % 17}" for k in range(N)]
    expected = texts.encode(objects(items))
    if not pandas:  # (texts.py alone sees no pandas)
        monkeypatch.setattr(texts, "sys", SimpleNamespace(modules={**sys.modules, "pandas": None}))
    text = texts.encode(objects(items))
    assert text is not None and expected is not None and text.codes is not None
    assert text.codes.dtype == np.uint8 and text.data == expected.data  # (17 strings and "" where the others are)
    assert np.array_equal(text.codes, expected.codes) and np.array_equal(text.positions, expected.positions)
    monkeypatch.undo()
    back, again = round_trip(objects(items)), round_trip(objects(items))
    assert same_items(back, objects(items)) and back[1] is back[18]  # one object: only `is` tells
    back[1] = "changed"
    assert back[18] == "customer-1" and again[1] == "customer-1"


def test_only_arrays_that_repeat_their_strings_go_with_codes():
    def codes(items: list[str]) -> Any:
        text = texts.encode(objects(items))
        assert text is not None
        return text.codes

    assert codes([f"s{k}" for k in range(N)]) is None  # all distinct
    assert codes([f"s{k // 2}" for k in range(N)]) is not None  # each twice: half as many
    assert codes([f"s{k // 2}" for k in range(N - 1)] + ["last"]) is None  # one more than half
    many = 20 * texts.SAMPLE  # a sample is read first
    assert codes([f"s{k % 1000}" for k in range(many)]).dtype == np.uint16
    assert codes([f"s{k // 3}" for k in range(many)]) is not None  # sorted: repeats side by side
    assert codes([f"s{k}" for k in range(many)]) is None


def test_a_fortran_ordered_array_keeps_its_layout():
    for name in ("missing", "plain"):  # (without codes, with them)
        array = np.asfortranarray(objects(TEXTS[name]).reshape(10, N // 10))
        back = round_trip(array)
        assert back.flags.f_contiguous and not back.flags.c_contiguous and same_items(array, back)
    strided = objects(TEXTS["plain"])[::2]  # not contiguous: comes back contiguous, as from NumPy's pickle
    assert same_items(strided, round_trip(strided))


def test_an_item_that_is_also_elsewhere_in_the_pickle_stays_one_object():
    shared = [1, 2]
    array = objects([shared if k == 3 else f"s{k}" for k in range(N)])
    back_array, back_list = round_trip((array, shared))
    assert back_array[3] is back_list
    back_list.append(3)
    assert back_array[3] == [1, 2, 3]


def test_datetime_and_timedelta_arrays_travel_as_buffers_not_in_the_pickle():
    when = np.arange(300_000).astype("datetime64[s]")
    took = np.arange(300_000).astype(">m8[ns]")  # (another byte order too)
    run = Scope()
    payload = sharing.dumps((when, took), run=run)
    try:
        assert len(payload) < 10_000  # 4.8 MB of data: in shared files
        back_when, back_took = sharing.loads(payload)
    finally:
        sharing.end_run(run)
    assert back_when.dtype == when.dtype and back_took.dtype == took.dtype
    assert np.array_equal(back_when, when) and np.array_equal(back_took, took)
    assert back_when.flags.writeable
    zoned = pd.Series(pd.date_range("2024-03-30", periods=1000, freq="h", tz="Europe/Paris"))
    pd.testing.assert_series_equal(round_trip(zoned), zoned)


# -- an array rebuilt here and left unchanged is not read again ---------------------------


def test_an_unchanged_rebuilt_array_gives_back_the_text_it_came_from():
    array = round_trip(objects(TEXTS["missing"]))
    text, again = texts.encode(array), texts.encode(array)
    assert text is not None and again is not None and text.data is again.data  # the same buffer: nothing read again
    assert text.others == [array[i] for i in text.positions.tolist()]


@pytest.mark.parametrize(
    ("change", "same_content"),
    [
        (lambda a: a.__setitem__(6, "changed"), False),
        (lambda a: a.__setitem__(6, "".join(["s", "6"])), True),  # an equal string, another object
        (lambda a: a.__setitem__(0, "now a string"), False),  # where a missing value was
        (lambda a: a.__setitem__(slice(None), a[::-1].copy()), False),
        (lambda a: setattr(a, "shape", (N // 2, 2)), False),
    ],
    ids=["a string", "an equal string", "a missing value", "all of them", "the shape"],
)
@pytest.mark.parametrize("origin", ["rebuilt", "remembered"])
@pytest.mark.parametrize("name", ["missing", "repeated"])  # (without codes, with them)
def test_any_change_to_a_known_array_is_read_again(change: Any, same_content: bool, origin: str, name: str):
    """Rebuilt from a Text, or encoded by the kernel (remember): unchanged,
    it is not read again; changed in any way, it is."""
    array = objects(TEXTS[name])
    if origin == "rebuilt":
        array = round_trip(array)
    else:
        texts.encode(array, remember=True)
    known, again = texts.encode(array), texts.encode(array)
    assert known is not None and again is not None and known.data is again.data  # (not read again)
    before = fingerprint(array)
    change(array)
    again = texts.encode(array)
    assert again is not None and same_items(texts.rebuild(*again), array)
    assert fingerprint(array) == fingerprint(array.copy())  # as a fresh array of that content
    assert (fingerprint(array) == before) == same_content


def test_what_is_remembered_of_an_array_goes_with_it():
    array = round_trip(objects(TEXTS["plain"]))
    key = id(array)
    assert key in texts._built
    del array
    gc.collect()
    assert key not in texts._built


# -- a worker reading the kernel's file twice decodes it once ------------------------------


def test_a_second_rebuild_from_one_file_copies_the_strings_and_shares_nothing_mutable(tmp_path: Any):
    texts.forget_decoded()
    items = [[k] if k % 50 == 0 else f"s{k % 9}" for k in range(N)]
    text = texts.encode(objects(items))
    assert text is not None
    source = (str(tmp_path / "file"), 0, len(text.data))
    first = texts.rebuild(*text._replace(others=pickle.loads(pickle.dumps(text.others))), source)
    assert texts.decoded() == 1
    second = texts.rebuild(*text._replace(others=pickle.loads(pickle.dumps(text.others))), source)
    assert first is not second and same_items(first, second)
    first[1] = "changed"
    first[0].append("changed")  # a mutable item: each rebuild has its own
    assert second[1] == "s1" and second[0] == [0]
    third = texts.rebuild(*text._replace(others=[[k] for k in range(0, N, 50)]), source)
    assert third[1] == "s1"
    texts.forget_decoded(keep=lambda source: os.path.exists(source[0]))  # its file is not there
    assert texts.decoded() == 0


# -- fingerprints -----------------------------------------------------------------------------


TEXT = st.text(st.characters(exclude_characters="\0") | st.sampled_from("\udcff\ud83d"), max_size=4)
OTHER = st.one_of(st.none(), st.just(float("nan")), st.builds(Tag, TEXT))


@st.composite
def mostly_strings(draw: Any) -> list[Any]:
    """16 items, at most 6 of them not exact strings, repeated to N (as one
    string per 16 items or fewer: with codes), or each string of the N made
    distinct by a suffix where a draw says so (as every item: without them;
    only its first 16 places are drawn)."""
    items: list[Any] = draw(st.lists(TEXT, min_size=16, max_size=16))
    for place, other in draw(st.lists(st.tuples(st.integers(0, 15), OTHER), max_size=6)):
        items[place] = other
    items = items * (N // 16)
    if draw(st.booleans()):
        items = [f"{item}|{k}" if type(item) is str and k >= 16 else item for k, item in enumerate(items)]
    return items


@settings(max_examples=200, deadline=None)
@given(mostly_strings(), mostly_strings())
def test_two_arrays_have_one_fingerprint_only_if_they_hold_the_same(a: list[Any], b: list[Any]):
    assert texts.encode(objects(a)) is not None and texts.encode(objects(b)) is not None
    equal = all(same(x, y) for x, y in zip(a, b, strict=True))
    assert (fingerprint(objects(a)) == fingerprint(objects(b))) == equal
    rebuilt, remembered = round_trip(objects(a)), objects(a)
    texts.encode(remembered, remember=True)
    assert fingerprint(rebuilt) == fingerprint(remembered) == fingerprint(objects(a))
    assert fingerprint(rebuilt) == fingerprint(rebuilt.copy())  # (read again: not known)


def test_strings_joined_otherwise_fingerprint_apart():
    pairs = [
        (["ab", "c"], ["a", "bc"]),
        (["a", ""], ["", "a"]),
        (["None"], [None]),
        (["x"], [Tag("x")]),
    ]
    for a, b in pairs:
        assert fingerprint(objects(a * N)) != fingerprint(objects(b * N))
    square = objects(TEXTS["plain"]).reshape(N // 10, 10)
    assert fingerprint(square) != fingerprint(square.T.copy())
