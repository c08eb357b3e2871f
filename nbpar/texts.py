"""An object array of Python strings as one UTF-8 buffer: how a text column crosses and is fingerprinted.

A text column without pyarrow (pandas' ``object`` and ``str``/``string``
dtypes) is a NumPy array of Python objects, one ``str`` per row. Pickle
writes them one by one (a million in ~0.12 s) and a receiver builds them one
by one from the pickle (~0.07 s); `fingerprint` read them through their
``repr``. Here the exact ``str`` items are joined by NUL into one text,
encoded once (UTF-8, lone surrogates kept: ``surrogatepass``); the other
items (missing values: ``None``, ``nan``, ``pd.NA``; a ``str`` subclass;
anything else) are kept aside with their positions::

    array (shape, order)  --encode-->  Text(shape, fortran, data, codes, positions, others)
                                          data: b"a\\x00bc\\x00\\x00d"  ("" where an other is)
    rebuilt (same shape, order)  <--rebuild--  data split at NUL, others put back

A column that repeats its strings (at most half as many distinct ones as
items: a customer, a category kept as text) goes as its distinct strings
only, in the order they first come, and `codes`: for each item in the flat
order, which of them it is (the smallest unsigned dtype that holds them).
The receiver then builds one ``str`` per distinct string and takes the
items from them (1M rows of 40K distinct strings: ~0.015 s instead of
~0.065 s; the sender factorizes them, ~0.07 s instead of joining them,
~0.015 s). Otherwise `codes` is None and `data` holds every item. Which
layout is chosen depends on the items alone (never on the process or the
moment: a sample of fixed places tells when counting them cannot pay), so
equal arrays have equal Texts, and `fingerprint` digests the Text.

`encode` returns None when this would not be exact or not pay: no items, a
string that holds a NUL (splitting would not find the items again), or
fewer than half the items exact strings. Then the caller pickles the array
as NumPy does. What changes against a pickle: the strings are made again
by the receiver, one object per distinct string when the codes go, else
one per item (a pickle keeps one object for an item found twice; strings
are immutable, so only `is` can tell); the others are pickled with the
rest of the pickle (its memo: an object both in the array and elsewhere is
one object on the other side).

`rebuild` is what a pickle made by sharing.py calls on the receiving side
(sharing.reduce_array): `data` and `codes` there are buffers, on the pages
of a shared file when they are large.

Arrays rebuilt here are remembered (`_built`, by identity, while they live,
up to `MEMORY` bytes of text): `encode` of one that still holds the very
objects it was built with (its PyObject pointers compared with a copy kept
of them, which holds those objects: no address is reused) returns the Text
it came from without reading a string. So a frame a step made, which the
kernel sends on to the steps that read it, is not encoded again (its text
goes on as a reference to the file it came in: sharing.py), nor read again
to fingerprint it. Its other items are read again, as they are now (they may
be mutable). Pure: NumPy and pandas are looked up in `sys.modules` (an
array exists only when NumPy is imported; without pandas, a dict counts
the strings).
"""

from __future__ import annotations

import ctypes
import itertools
import operator
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

MIN_ITEMS = 64  # arrays of fewer items are pickled as NumPy does (nothing to gain)
SAMPLE = 4096  # places read first, in an array of more items, to tell whether it repeats its strings
MEMORY = 256 << 20  # bytes at most that `_built` holds, text and pointers (its oldest go first)
DECODED_ITEMS = 2_000_000  # strings at most that `_decoded` keeps (its oldest go first)


class Text(NamedTuple):
    shape: tuple[int, ...]
    fortran: bool  # items in column-major order (the array was Fortran-contiguous only)
    data: bytes  # the exact `str` items (or, with codes, the distinct ones), UTF-8 (surrogatepass), joined by NUL
    codes: Any  # None, or NumPy unsigned ints: each item's string in `data`, in the flat order
    positions: Any  # NumPy intp array: where the other items are, in the flat order
    others: list[Any]  # those items, in that order


def encode(array: Any, remember: bool = False) -> Text | None:
    """`array` (a NumPy object array, any shape) as a Text, or None (see the
    module's docstring: then it is pickled as it is). With `remember`, a
    contiguous array is remembered as a rebuilt one is (`_built`): the next
    encode of it, unchanged, reads nothing (the kernel: a notebook frame is
    encoded by the check at a run's start, then for the run, fingerprinted)."""
    np = sys.modules["numpy"]
    if array.size < MIN_ITEMS:
        return None
    known = _as_built(array)
    if known is not None:
        return known
    fortran = bool(array.flags.f_contiguous and not array.flags.c_contiguous)
    flat = array.ravel(order="F" if fortran else "C")
    items = flat.tolist()
    kinds = set(map(type, items))
    positions = np.empty(0, np.intp)
    others: list[Any] = []
    if kinds != {str}:
        if str not in kinds:
            return None
        other = np.fromiter(map(operator.is_not, map(type, items), itertools.repeat(str)), bool, len(items))
        positions = np.flatnonzero(other)
        if 2 * len(positions) > len(items):
            return None
        for i in positions.tolist():
            others.append(items[i])
            items[i] = ""
    codes, strings = _factorized(items, None if others else flat, np) if _repeats(items, np) else (None, items)
    data = "\0".join(strings).encode("utf-8", "surrogatepass")
    if np.count_nonzero(np.frombuffer(data, np.uint8) == 0) != len(strings) - 1:
        return None  # a string holds a NUL (in UTF-8, a zero byte is a NUL and nothing else)
    text = Text(array.shape, fortran, data, codes, positions, others)
    if remember and (array.flags.c_contiguous or array.flags.f_contiguous):
        _remember(array, array.copy(order="A"), text._replace(others=[]))
    return text


def rebuild(
    shape: tuple[int, ...],
    fortran: bool,
    data: Any,
    codes: Any,
    positions: Any,
    others: list[Any],
    source: Hashable = None,
) -> Any:
    """The array `encode` read, from the parts of its Text (`data`: any
    bytes-like object): writable, C- or Fortran-contiguous as it was, a new
    array each call (its items: one str per string in `data`, taken by the
    `codes` when there are). With `source` (a key naming bytes that never
    change: a shared file's), the strings decoded are kept (`_decoded`) for
    the next rebuild from the same source, which copies or takes them
    instead of decoding again."""
    np = sys.modules["numpy"]
    with _lock:
        kept = _decoded.get(source) if source is not None else None  # (never changed: copied from)
    if kept is None:
        strings = _strings(str(data, "utf-8", "surrogatepass").split("\0"), np)
        if source is not None and strings.size <= DECODED_ITEMS:
            kept = _keep_decoded(source, strings)
    if codes is not None:
        flat = (kept if kept is not None else strings).take(codes)
    else:
        flat = kept.copy() if kept is not None else strings
    for i, item in zip(positions.tolist(), others, strict=True):
        flat[i] = item  # (one by one: a list or tuple item stays one object)
    array = flat.reshape(shape, order="F" if fortran else "C")
    _remember(
        array,
        kept if kept is not None and codes is None and not len(positions) else flat.copy(),
        Text(shape, fortran, data, codes, positions, []),
    )
    return array


def _repeats(items: list[str], np: Any) -> bool:
    """Whether `items` may hold at most half as many distinct strings as
    items: all of them counted when they are few, else whether a sample of
    about `SAMPLE` places (fixed by their number) repeats enough (in m
    places of n items that hold each string c times, two are one string
    about (c - 1)m²/2n times; c >= 2 says to count them all)."""
    if len(items) <= 16 * SAMPLE:
        return True
    places = np.unique(np.random.default_rng(len(items)).integers(0, len(items), SAMPLE)).tolist()
    sample = [items[i] for i in places]
    return 2 * (len(sample) - len(set(sample))) * len(items) >= len(sample) ** 2


def _factorized(items: list[str], flat: Any, np: Any) -> tuple[Any, list[str]]:
    """The codes of `items` and their distinct strings, in the order they
    first come (`flat`: the same items as an object array, or None), when
    there are at most half as many as items; else (None, items). With
    pandas (pandas.factorize: 1M strings in ~0.07 s) or a dict (~0.13 s):
    the same result."""
    pd = sys.modules.get("pandas")
    if pd is not None:
        numbers, uniques = pd.factorize(flat if flat is not None else _strings(items, np))
        distinct: list[str] = uniques.tolist()
    else:
        index: dict[str, int] = {}
        numbers = np.fromiter((index.setdefault(item, len(index)) for item in items), np.intp, len(items))
        distinct = list(index)
    if 2 * len(distinct) > len(items):
        return None, items
    return numbers.astype(np.min_scalar_type(len(distinct) - 1)), distinct


def _strings(items: list[str], np: Any) -> Any:
    try:
        return np.fromiter(items, object, len(items))  # (twice as fast as filling an empty array)
    except (TypeError, ValueError):  # NumPy before 1.23 makes no object arrays from iterators
        flat = np.empty(len(items), dtype=object)
        flat[:] = items
        return flat


# -- arrays rebuilt here, while they are unchanged ------------------------------------


class _Built(NamedTuple):
    ref: Callable[[], Any]  # a weakref.ref to the array
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    kept: Any  # the same objects, in memory order (held: their addresses are not reused)
    text: Text  # what it was built from (its `others` left out: read again, as they are now)
    size: int  # bytes it holds: the text, its codes and the kept pointers


_lock = threading.RLock()  # guards _built, _held and _decoded (a weakref callback may come while it is held)
_built: OrderedDict[int, _Built] = OrderedDict()  # id(array) -> what it was built from, oldest first
_held = 0  # bytes the entries hold
_decoded: OrderedDict[Hashable, Any] = OrderedDict()  # source -> its strings, decoded ("" at the others' places)


def _keep_decoded(source: Hashable, strings: Any) -> Any:
    with _lock:
        _decoded[source] = strings
        while sum(kept.size for kept in _decoded.values()) > DECODED_ITEMS:
            _decoded.popitem(last=False)
    return strings


def decoded() -> int:
    """How many sources' strings `_decoded` keeps."""
    return len(_decoded)


def forget_decoded(keep: Callable[[Any], bool] | None = None) -> None:
    """Let go of the strings kept for the next rebuild from their source
    (those of every source, or of each for which `keep` is false)."""
    with _lock:
        for source in list(_decoded):
            if keep is None or not keep(source):
                del _decoded[source]


def _remember(array: Any, kept: Any, text: Text) -> None:
    global _held
    size = memoryview(text.data).nbytes + (0 if text.codes is None else text.codes.nbytes) + kept.nbytes
    if size > MEMORY:
        return
    key = id(array)
    entry = _Built(weakref.ref(array, lambda _: _forget(key)), array.shape, array.strides, kept, text, size)
    with _lock:
        _forget_locked(key)
        _built[key] = entry
        _held += size
        while _held > MEMORY:
            _forget_locked(next(iter(_built)))


def _forget(key: int) -> None:
    with _lock:
        _forget_locked(key)


def _forget_locked(key: int) -> None:
    global _held
    entry = _built.pop(key, None)
    if entry is not None:
        _held -= entry.size


def _as_built(array: Any) -> Text | None:
    """The Text `array` was rebuilt from, if it holds the same objects in
    the same shape and order as then (its other items: as they are now)."""
    with _lock:
        entry = _built.get(id(array))
    if entry is None or entry.ref() is not array:
        return None
    if array.shape != entry.shape or array.strides != entry.strides or not _same_objects(array, entry.kept):
        return None
    text = entry.text
    flat = array.ravel(order="F" if text.fortran else "C")
    return text._replace(others=[flat[i] for i in text.positions.tolist()])


def _same_objects(a: Any, b: Any) -> bool:
    """Whether two contiguous object arrays of one size hold the same
    objects in memory order: their pointers, compared as integers."""
    np = sys.modules["numpy"]
    return bool(np.array_equal(_pointers(a, np), _pointers(b, np)))


def _pointers(array: Any, np: Any) -> Any:
    """The PyObject pointers of a contiguous object array, as uintp (a view
    of its memory, valid while `array` lives)."""
    address = array.__array_interface__["data"][0]
    return np.frombuffer((ctypes.c_char * array.nbytes).from_address(address), np.uintp)
