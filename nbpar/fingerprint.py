"""Fingerprints of values: a 128-bit xxh3 digest of what a value holds.

`fingerprint(value)` is equal for two values with the same content and
differs (but for a hash collision) when the content differs, whether the
value is a new object or the same one changed in place. It is what the
planner compares to decide that a step's inputs are unchanged (pipeline.py),
and what a content-addressed cache can key on. `None` means "cannot tell":
the caller must treat the value as changed.

How each kind of value is read (a type tag goes first, so `[1]`, `(1,)`
and `True`/`1` differ):

* ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``,
  ``bytearray``, ``range``: their bytes or their exact ``repr``.
* ``list``, ``tuple``, ``dict`` (in order), ``set`` and ``frozenset`` (order
  free), exactly those types, nested: item by item; a list or dict of only
  such scalars in one ``repr`` call (a million ints in ~0.1 s).
* NumPy arrays (exactly ``ndarray``): dtype, shape and the raw bytes; an
  object array of mostly strings as texts.encode reads it (the strings'
  UTF-8 in one piece, or the distinct ones' and codes, the other items one
  by one; 1M strings in ~0.03 s, ~0.08 s when they repeat (factorized),
  none for a text column the kernel received and did not change: texts.py),
  another object array by the ``repr`` of its items when they are scalars,
  else by pickle; pandas DataFrame, Series and Index (exact types): labels,
  dtypes and each column's values (extension arrays without a NumPy array
  behind them by pickle, below).
* functions: name, code, defaults and closure, not the globals they read;
  classes, modules, builtins and the object of a bound method: by identity
  (one changed in place is not seen).
* anything else (objects, subclasses of the above): its pickle, made with
  cloudpickle and hashed as it is written, if it is at most `PICKLE_LIMIT`
  bytes. A value that does not pickle, or is bigger, gives `None`.

Pure: NumPy and pandas are only looked up in `sys.modules` (a value of theirs
exists only when they are imported). Not thread-safe per call, and a value
changed by another thread while it is read gives an arbitrary digest.
"""

from __future__ import annotations

import struct
import sys
import types
from typing import Any

import cloudpickle
import xxhash

from . import texts

__all__ = ["PICKLE_LIMIT", "Fingerprints", "fingerprint"]

PICKLE_LIMIT = 256 * 2**20  # bytes of pickle at most, for a value read by pickling
_ATOMS = frozenset({type(None), bool, int, float, complex, str})  # exact types whose repr is unambiguous


class _Unknown(Exception):
    """The value (or a part of it) cannot be fingerprinted."""


def fingerprint(value: Any) -> bytes | None:
    """The 16-byte digest of `value`'s content, or None if nbpar cannot tell it."""
    hasher = xxhash.xxh3_128()
    try:
        _feed(hasher, value, [])
    except (_Unknown, RecursionError):
        return None
    return hasher.digest()


class Fingerprints:
    """`fingerprint` with a memo by object identity, for a stretch of time in
    which the values cannot change (one planning pass). It holds each value
    it saw, so that no id is reused while it lives."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, bytes | None]] = {}

    def __call__(self, value: Any) -> bytes | None:
        seen = self._seen.get(id(value))
        if seen is None:
            seen = self._seen[id(value)] = (value, fingerprint(value))
        return seen[1]


def _feed(h: Any, value: Any, path: list[int]) -> None:
    """Add `value` to hasher `h`; `path` holds the ids of the containers
    being read (a container met again inside itself is a back-reference)."""
    kind = type(value)
    if kind in _ATOMS:
        h.update(b"a" + repr(value).encode("utf-8", "surrogatepass"))
        return
    if kind in (bytes, bytearray):
        h.update(b"b" if kind is bytes else b"B")
        h.update(struct.pack("<Q", len(value)))
        h.update(value)
        return
    if kind is range:
        h.update(f"r{value.start},{value.stop},{value.step}".encode())
        return
    if kind in (list, tuple, dict, set, frozenset, types.FunctionType):
        if id(value) in path:
            h.update(f"^{path[::-1].index(id(value))}".encode())  # a cycle: how far up
            return
        path.append(id(value))
        try:
            (_feed_function if kind is types.FunctionType else _feed_container)(h, value, path)
        finally:
            path.pop()
        return
    np = sys.modules.get("numpy")
    if np is not None and kind is np.ndarray:
        _feed_array(h, value, np)
        return
    pd = sys.modules.get("pandas")
    if pd is not None and (kind in (pd.DataFrame, pd.Series) or isinstance(value, pd.Index)):
        _feed_pandas(h, value, pd)
        return
    if kind is types.MethodType:  # its function by code, its object by identity (`get_ipython`)
        h.update(f"M{id(value.__self__)}".encode())
        _feed(h, value.__func__, path)
        return
    if isinstance(value, (type, types.ModuleType, types.BuiltinFunctionType)):
        h.update(f"i{id(value)}:{getattr(value, '__qualname__', None) or value.__name__}".encode())
        return
    _feed_pickle(h, value)


def _feed_container(h: Any, value: Any, path: list[int]) -> None:
    kind = type(value)
    h.update(f"{kind.__name__}{len(value)}(".encode())
    if kind in (set, frozenset):
        # order free: the sorted digests of the items
        for digest in sorted(_digest(item, path) for item in value):
            h.update(digest)
    elif _plain(value, _PLAIN_DEPTH):
        h.update(repr(value).encode("utf-8", "surrogatepass"))
    elif kind is dict:
        for k, v in value.items():
            _feed(h, k, path)
            _feed(h, v, path)
    else:
        for item in value:
            _feed(h, item, path)
    h.update(b")")


_PLAIN_DEPTH = 3  # levels of lists, tuples and dicts read in one repr (a cycle is deeper)


def _plain(value: Any, depth: int) -> bool:
    """Is `value` scalars in at most `depth` levels of lists, tuples and
    dicts (exact types)? Its repr then says all it holds, unambiguously."""
    kind = type(value)
    if kind in _ATOMS:
        return True
    if depth == 0 or kind not in (list, tuple, dict):
        return False
    items = value.items() if kind is dict else value
    if kind is dict:
        return all(type(k) in _ATOMS and _plain(v, depth - 1) for k, v in items)
    if set(map(type, items)) <= _ATOMS:
        return True  # the common case, without a call per item
    return all(_plain(item, depth - 1) for item in items)


def _digest(value: Any, path: list[int]) -> bytes:
    h = xxhash.xxh3_128()
    _feed(h, value, path)
    return h.digest()


def _feed_array(h: Any, value: Any, np: Any) -> None:
    h.update(f"n{value.dtype.str}{value.dtype.descr}{value.shape}".encode())
    if value.dtype.hasobject:
        text = texts.encode(value, remember=True) if value.dtype == object else None
        if text is not None:  # mostly strings: their UTF-8 (10M in ~0.3 s), the other items one by one
            _feed_text(h, text)
            return
        items = value.ravel().tolist() if value.dtype == object else None
        if items is not None and set(map(type, items)) <= _ATOMS:
            h.update(repr(items).encode("utf-8", "surrogatepass"))
        else:
            _feed_pickle(h, value)
        return
    data = np.ascontiguousarray(value)  # no copy when it already is (the common case)
    h.update(data.reshape(-1).view(np.uint8))


def _feed_text(h: Any, text: texts.Text) -> None:
    """An object array of strings as texts.encode read it: its items' order,
    the strings' UTF-8 joined by NUL (no string holds one, and the shape,
    fed before, says how many there are), their codes when it has them,
    where the other items are, and those items; each length-prefixed, so
    the digest tells every array apart. Its layout (with codes or without)
    is chosen by the items alone: equal arrays are read the same way."""
    data = memoryview(text.data)
    h.update(struct.pack("<cQ", b"F" if text.fortran else b"C", data.nbytes))
    h.update(data)
    if text.codes is None:
        h.update(b"-")
    else:
        codes = text.codes.astype(text.codes.dtype.newbyteorder("<"), copy=False)
        h.update(struct.pack("<cQ", codes.dtype.char.encode(), codes.size))
        h.update(codes.view("u1"))
    h.update(struct.pack("<Q", len(text.positions)))
    h.update(text.positions.astype("<i8").tobytes())
    _feed(h, text.others, [])


def _feed_pandas(h: Any, value: Any, pd: Any) -> None:
    """A frame, series or index: its labels, dtypes and values, column by column."""
    if isinstance(value, pd.RangeIndex):
        h.update(f"R{value.start},{value.stop},{value.step},{value.name!r}".encode())
        return
    if isinstance(value, pd.MultiIndex):
        _feed_pickle(h, value)
        return
    if isinstance(value, pd.Index):
        h.update(f"I{type(value).__name__}".encode())
        _feed(h, value.names, [])
        _feed_values(h, value.array, value.dtype)
        return
    h.update(f"P{type(value).__name__}{value.shape}".encode())
    _feed(h, value.attrs, [])
    _feed_pandas(h, value.index, pd)
    if isinstance(value, pd.Series):
        h.update(repr(value.name).encode())
        _feed_values(h, value.array, value.dtype)
        return
    _feed_pandas(h, value.columns, pd)
    for i in range(value.shape[1]):
        column = value.iloc[:, i]
        _feed_values(h, column.array, column.dtype)


def _feed_values(h: Any, array: Any, dtype: Any) -> None:
    """The values of a pandas column or index: the NumPy array behind them
    when there is one (NumPy, datetime, Python-string and categorical
    columns), else their pickle (masked and Arrow arrays: buffers)."""
    np, pd = sys.modules["numpy"], sys.modules["pandas"]
    h.update(repr(dtype).encode())
    if isinstance(array, pd.Categorical):
        _feed_array(h, array.codes, np)
        _feed_pandas(h, array.categories, pd)
        return
    values = getattr(array, "_ndarray", None)  # NumpyExtensionArray, DatetimeArray, StringArray
    if type(values) is np.ndarray:
        _feed_array(h, values, np)
    else:
        _feed_pickle(h, array)


def _feed_function(h: Any, func: types.FunctionType, path: list[int]) -> None:
    h.update(f"F{func.__module__}.{func.__qualname__}".encode())
    _feed_code(h, func.__code__)
    _feed(h, func.__defaults__, path)
    _feed(h, func.__kwdefaults__, path)
    for cell in func.__closure__ or ():
        try:
            _feed(h, cell.cell_contents, path)
        except ValueError:  # an empty cell
            h.update(b"-")


def _feed_code(h: Any, code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(h, const)
        else:
            _feed(h, const, [])


class _Hashing:
    """A file for a pickler: hashes what is written, up to `PICKLE_LIMIT` bytes."""

    def __init__(self, h: Any) -> None:
        self._h = h
        self._size = 0

    def write(self, data: Any) -> int:  # bytes, or a PickleBuffer of an array's data
        size = memoryview(data).nbytes
        self._size += size
        if self._size > PICKLE_LIMIT:
            raise _Unknown("too big to pickle")
        self._h.update(data)
        return size


def _feed_pickle(h: Any, value: Any) -> None:
    h.update(f"p{type(value).__module__}.{type(value).__qualname__}".encode())
    try:
        cloudpickle.CloudPickler(_Hashing(h), protocol=5).dump(value)
    except _Unknown:
        raise
    except Exception as e:  # does not pickle: PicklingError, TypeError, whatever __reduce__ raises
        raise _Unknown(str(e)) from None
