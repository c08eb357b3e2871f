"""Split a step's input into slices, and merge its outputs back.

A step fanned out with ``--over VAR`` runs once per slice of ``VAR``:

* ``split(value, name=..., slices=N | slice_size=K, keep=...)`` cuts ``value``
  into contiguous :class:`Slice` objects, in order, each holding a value of the
  same kind as the input (a list slice is a list, a dict slice a dict, an array
  slice a view, a pandas slice an ``.iloc`` slice). Dicts are cut by sorted keys
  (insertion order when the keys do not sort), after ``keep`` (``--filter``)
  has dropped keys. An empty input gives one empty slice, so the step still
  runs once, as a sequential run would. Nothing else about the input is read.
* ``merge(name, values, how)`` takes one value of output ``name`` per slice, in
  slice order, and puts them back together (``auto``, ``concat``, ``dict``,
  ``list``, ``sum`` or a function). Modules, functions and classes are taken
  from the first slice, not merged: every slice defines the same one.
  ``listed_note(name, values, how, merged)`` says when ``auto`` fell back to
  the list of the slices' values (a count per slice becoming ``[n, n, n]``).

A folder listed by ``nbpar.partitions`` (partitioned.py) is a dict of
partitions, cut as any dict is.

The module is pure: NumPy and pandas are never imported here to *detect* a
value; a NumPy array or pandas frame can only exist when its library is in
``sys.modules``, so that is where they are looked up.
"""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
import operator
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MERGES",
    "MergeError",
    "MergeHow",
    "Slice",
    "SliceError",
    "listed_note",
    "merge",
    "split",
]

SLICEABLE = (
    "Sliceable: lists, tuples, ranges, dicts, NumPy arrays, pandas DataFrames and Series, "
    "nbpar.partitions(...) folders."
)
MergeHow = str  # one of MERGES
MERGES = ("auto", "concat", "dict", "list", "sum")
_ADVICE = "use --merge list to keep the list of the slices' values, or --merge FUNC to combine them with a function"


class SliceError(ValueError):
    """A fan-out that cannot be done: a bad slicing request or an unsliceable value."""


class MergeError(ValueError):
    """An output whose slices' values cannot be merged as asked."""


# -- split --------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    """One slice of a fanned-out input: its value and where it sits in the whole."""

    index: int  # from 0
    value: Any  # same kind as the input
    size: int
    first: Any  # first key: a position, a pandas index label or a dict key; None when empty
    last: Any

    def describe(self) -> str:
        """``slice 3 (keys 'b' … 'f')``, ``slice 0 (items 0 … 9)``, ``slice 0 (empty)``."""
        if self.size == 0:
            return f"slice {self.index} (empty)"
        kind = "key" if isinstance(self.value, Mapping) or _is_pandas(self.value) else "item"
        if self.size == 1:
            return f"slice {self.index} ({kind} {self.first!r})"
        return f"slice {self.index} ({kind}s {self.first!r} … {self.last!r})"


def split(
    value: Any,
    *,
    name: str,
    slices: int | None = None,
    slice_size: int | None = None,
    keep: Callable[[Any], bool] | None = None,
) -> list[Slice]:
    """Cut ``value`` into ``slices`` slices as equal as possible, or slices of ``slice_size`` items."""
    _check_request(name, slices, slice_size)
    if keep is not None and not isinstance(value, Mapping):
        raise SliceError(
            f"cannot fan out over `{name}`: --filter applies to the keys of a dict input, "
            f"and `{name}` is {_a(type(value).__name__)}"
        )
    if isinstance(value, Mapping):
        keys = [key for key in value if keep is None or keep(key)]
        try:
            keys = sorted(keys)
        except TypeError:
            pass  # keys of mixed or unordered types: insertion order
        return [
            Slice(i, {key: value[key] for key in keys[a:b]}, b - a, *_ends(keys, a, b))
            for i, (a, b) in enumerate(_bounds(len(keys), slices, slice_size))
        ]
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        if value.ndim == 0:
            raise SliceError(f"cannot fan out over `{name}`: a 0-d NumPy array cannot be sliced. {SLICEABLE}")
        return _positional(value, slices, slice_size)
    if _is_pandas(value):
        labels = [_plain(label) for label in value.index]
        return [
            Slice(i, value.iloc[a:b], b - a, *_ends(labels, a, b))
            for i, (a, b) in enumerate(_bounds(len(value), slices, slice_size))
        ]
    if isinstance(value, (str, bytes, bytearray)):
        raise SliceError(
            f"cannot fan out over `{name}`: {_a(type(value).__name__)} cannot be sliced: cutting text into runs "
            f"of characters is rarely what is meant; put the pieces in a list (e.g. `{name}.splitlines()`) "
            f"and fan out over that. {SLICEABLE}"
        )
    if isinstance(value, Sequence):
        return _positional(value, slices, slice_size)
    hint = " (make it a list first)" if hasattr(value, "__iter__") else ""
    raise SliceError(f"cannot fan out over `{name}`: {_a(type(value).__name__)} cannot be sliced{hint}. {SLICEABLE}")


def _check_request(name: str, slices: int | None, slice_size: int | None) -> None:
    if (slices is None) == (slice_size is None):
        raise SliceError(f"cannot fan out over `{name}`: give exactly one of --slices N and --slice-size K")
    flag, count = ("--slices", slices) if slices is not None else ("--slice-size", slice_size)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SliceError(f"cannot fan out over `{name}`: {flag} must be a whole number of at least 1, not {count!r}")


def _bounds(length: int, slices: int | None, slice_size: int | None) -> list[tuple[int, int]]:
    """The (start, stop) of each slice: never empty, except one empty slice for an empty input."""
    if length == 0:
        return [(0, 0)]
    if slice_size is not None:
        return [(a, min(a + slice_size, length)) for a in range(0, length, slice_size)]
    count = min(slices or 1, length)
    base, extra = divmod(length, count)  # the first `extra` slices get one more item
    stops = list(itertools.accumulate(base + (i < extra) for i in range(count)))
    return list(zip([0, *stops[:-1]], stops, strict=True))


def _positional(value: Any, slices: int | None, slice_size: int | None) -> list[Slice]:
    """Slices of a sequence or array, ``value[a:b]``, keyed by position."""
    return [
        Slice(i, value[a:b], b - a, *((a, b - 1) if b > a else (None, None)))
        for i, (a, b) in enumerate(_bounds(len(value), slices, slice_size))
    ]


def _ends(keys: list[Any], a: int, b: int) -> tuple[Any, Any]:
    return (keys[a], keys[b - 1]) if b > a else (None, None)


def _is_pandas(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, (pd.DataFrame, pd.Series))


def _plain(label: Any) -> Any:
    """A NumPy scalar label as the Python scalar it holds (``3``, not ``np.int64(3)``)."""
    np = sys.modules.get("numpy")
    return label.item() if np is not None and isinstance(label, np.generic) else label


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


# -- merge --------------------------------------------------------------------


def merge(name: str, values: list[Any], how: str | Callable[[list[Any]], Any] = "auto") -> Any:
    """Put output ``name`` back together from its slices' ``values`` (in slice order).

    ``auto`` concatenates lists, tuples, contiguous ranges, arrays and pandas
    objects, merges dicts (later slices win), unites sets, and otherwise gives
    the list of the values. It never joins strings: a string per slice is
    usually a label or a message, and gluing them would silently lose the
    boundaries (``--merge concat`` joins them when that is meant).
    """
    if callable(how):
        return how(values)
    if how not in MERGES:
        choices = ", ".join(MERGES)
        raise MergeError(f"cannot merge `{name}`: unknown --merge {how!r}; choose one of {choices} or a function")
    if not values:
        raise MergeError(f"cannot merge `{name}`: no slice gave a value")
    if all(_taken_once(v) for v in values):
        return values[0]
    if how == "list":
        return list(values)
    if how == "sum":
        try:
            return functools.reduce(operator.add, values)
        except (TypeError, ValueError) as err:
            raise MergeError(f"cannot merge `{name}` with --merge sum: {err}; {_ADVICE}") from None
    if how == "dict":
        for i, v in enumerate(values):
            if not isinstance(v, Mapping):
                raise MergeError(
                    f"cannot merge `{name}` with --merge dict: slice {i} gave {_a(_type(v))}, not a dict; {_ADVICE}"
                )
        return _merge_dicts(values)
    kinds = [_kind(v, strict=how == "auto") for v in values]
    first = kinds[0]
    if how == "concat":
        for i, kind in enumerate(kinds):
            if kind is None or kind != first:
                why = "which cannot be concatenated" if kind is None else f"but slice 0 gave {_a(_type(values[0]))}"
                raise MergeError(
                    f"cannot merge `{name}` with --merge concat: "
                    f"slice {i} gave {_a(_type(values[i]))}, {why}; {_ADVICE}"
                )
        assert first is not None
        return _concat(name, first, values, auto=False)
    if first is not None and all(kind == first for kind in kinds):
        return _concat(name, first, values, auto=True)
    if all(isinstance(v, dict) for v in values):
        return _merge_dicts(values)
    if all(isinstance(v, (set, frozenset)) for v in values):
        return values[0].union(*values[1:])
    return list(values)


def listed_note(name: str, values: list[Any], how: Any, merged: Any) -> str | None:
    """What to tell the user when `merge(name, values, how)` gave `merged`,
    the list of the slices' values themselves, under ``auto`` (which they
    may not expect: a count per slice, a loop variable); else None."""
    if how != "auto" or len(values) < 2 or not isinstance(merged, list) or len(merged) != len(values):
        return None
    if not all(m is v for m, v in zip(merged, values, strict=True)):
        return None  # concatenated lists
    kinds = sorted({_type(v) for v in values})
    return (
        f"`{name}` is the list of the {len(values)} slices' values ({', '.join(kinds)}: --merge auto does not "
        f"combine them); --merge {name}=sum (or another) merges them, `_{name}` keeps it private to the step"
    )


def _taken_once(value: Any) -> bool:
    tests = (inspect.ismodule, inspect.isfunction, inspect.isclass, inspect.isbuiltin, inspect.ismethod)
    return any(test(value) for test in tests)


def _kind(value: Any, *, strict: bool) -> str | None:
    """What ``value`` concatenates as; ``strict`` (auto) leaves out text and named tuples."""
    if isinstance(value, list):
        return "list"
    if isinstance(value, tuple):
        return None if strict and hasattr(value, "_fields") else "tuple"
    if isinstance(value, range):
        return "range"
    if isinstance(value, str):
        return None if strict else "str"
    if isinstance(value, (bytes, bytearray)):
        return None if strict else "bytes"
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return "array" if value.ndim >= 1 else None
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, pd.DataFrame):
        return "frame"
    if pd is not None and isinstance(value, pd.Series):
        return "series"
    return None


def _concat(name: str, kind: str, values: list[Any], *, auto: bool) -> Any:
    if kind == "list":
        return list(itertools.chain.from_iterable(values))
    if kind == "tuple":
        return tuple(itertools.chain.from_iterable(values))
    if kind == "str":
        return "".join(values)
    if kind == "bytes":
        joined = b"".join(values)
        return bytearray(joined) if isinstance(values[0], bytearray) else joined
    if kind == "range":
        if all(a.step == b.step and a.stop == b.start for a, b in zip(values[:-1], values[1:], strict=True)):
            return range(values[0].start, values[-1].stop, values[0].step)
        return list(values) if auto else list(itertools.chain.from_iterable(values))
    what = "arrays" if kind == "array" else "pandas objects"
    try:
        if kind == "array":
            return sys.modules["numpy"].concatenate(values)
        return sys.modules["pandas"].concat(values)
    except (TypeError, ValueError) as err:
        raise MergeError(f"cannot merge `{name}`: the slices' {what} do not concatenate ({err}); {_ADVICE}") from None


def _merge_dicts(values: list[Any]) -> Any:
    """Later slices win; the first value's type is kept (item by item, so a Counter's counts are replaced)."""
    merged = copy.copy(values[0]) if isinstance(values[0], dict) else dict(values[0])
    for v in values[1:]:
        for key, item in v.items():
            merged[key] = item
    return merged


def _type(value: Any) -> str:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray) and value.ndim == 0:
        return "0-d ndarray"
    return type(value).__name__
