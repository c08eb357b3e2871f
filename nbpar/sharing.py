"""Large buffers cross between the kernel and worker processes as shared files, not pickled bytes.

Tasks and outcomes are pickled with protocol 5: NumPy arrays (and pandas
objects, through theirs) hand their data to pickle as out-of-band buffers.
A contiguous buffer of `THRESHOLD` bytes or more is not copied into the
pickle: it is in a file of the kernel's directory on tmpfs
(``/dev/shm/nbpar-share-PID-RANDOM``, 0700; `NBPAR_SHARED_DIR` chooses another
place; see folders.py),
and the pickle carries a reference ``(path, offset, length)``. The receiver
maps the file privately (copy-on-write) and the array lives on the mapped
pages, with no copy: a step that changes its input in place changes its
own pages only, never the kernel's array or another step's.

Data flow::

    kernel                                           worker process
    ------                                           --------------
    dump_tasks -> dumps(tasks, run=run)
      (run: the process backend's BackendRun)
      buffer on pages mapped here, unchanged:
        a reference to that file (forwarding an
        output costs nothing; a slice is an offset)
      other buffer (the kernel's heap): written
        once a run, pinned until end_run(run)
        (ProcessBackend.close_run)
      pandas object, object array: pickled
        once a run (_share), by reference
        to that pickle (small: in the task's
        pickle; else a file pinned as above) ---> _load_value: map it, loads
    MAGIC, references, pickle ---------------------> loads: map each file, pickle.loads(buffers=)
                                                     run the steps
                                                     dump_outcomes -> dumps(outcomes), `replying`
                                                       buffer on an input's pages, unchanged: a reference
                                                       other buffer: new file o<token>-<pid>-<n>.buf
    relay: loads: map the files, finish(token) <---- MAGIC, references, pickle

Lifetimes. Only the kernel deletes files, and only in its own directory
(once it is dead, its watchdog removes the directory: folders.py). A file
is kept while the kernel maps it (while an array lives on it: the mapping
goes when the last array using it is garbage collected), while a run pins
it (a kernel array written for the run's tasks, a value pickled once for
them), or while the flight whose
worker writes it is in flight (its token is live). A flight that ends
without an outcome (crash, kill, cancel) has its files deleted at once, and
again when the workers that were alive then have died (loky fails the
futures before it kills the workers). `end_run` sweeps what nothing needs;
the directory goes at exit, or, if the kernel is killed, a few seconds
later. Files are mapped through libc's mmap where there is one (Python's
mmap keeps a file descriptor open per mapping).

Changed pages. Mappings are private: a page written in place becomes the
process's own (anonymous) page and the file keeps the old bytes. Before a
buffer on mapped pages is sent as a reference to its file, /proc/self/pagemap
tells whether any of its pages was written (elsewhere: the bytes are
compared); if so the buffer is written to a new file.

Within one run, a kernel array is written once: changing it in place in the
kernel during the run (a thread step, a cell during a background run) does
not reach the steps that read it after the first. A buffer that cannot be
written (the file system is full) travels in the pickle, as do small and
non-contiguous arrays.

Arrays NumPy's own pickle would copy (`reduce_array`): a datetime64 or
timedelta64 array goes as its int64 view (NumPy pickles those dtypes' data
in the pickle); an object array of mostly strings (a text column without
pyarrow) as one UTF-8 buffer and its other items (texts.py; a column that
repeats its strings: the distinct ones and a buffer of codes), the buffers
going as any other (a file when large). A text array the kernel encoded
(the check of a notebook input) or rebuilt, and did not change, is not
encoded again (one it rebuilt goes on as a reference to the file it came
in); a worker that rebuilds the strings of one file twice (two
steps reading one frame) decodes them once and copies them (`serving`).

Values pickled once a run. What is not a buffer (a string's Python object,
a categorical's categories, an object array's other items) has to be
pickled. A pandas object (DataFrame, Series, Index) or a NumPy object
array that a run's tasks send is pickled once for the run, by itself
(`_Sharer`; its large buffers go as above), and every task that sends it
carries a reference to that pickle instead: in the pickle when it is small,
else in a file of the own directory, pinned by the run like a written
array, which the worker maps and unpickles (each worker that reads it
unpickles it: every step gets its own object). Outcomes are not pickled
so: a step's outputs are one pickle, so that the objects they share (a
list in a frame's cell and the same list as another output) are shared in
the kernel too, as after a top-to-bottom run; a frame a step made is
pickled by the kernel once, for the run's readers. The rule is the arrays':
within one run the value is pickled once (an in-place change in the kernel
during the run does not reach the steps sent after the first); the next
run pickles it again. Such a value is its own pickle: the tasks' other
inputs share no object with what is inside it (a reference to the value
itself is kept: the receiver gets one object for every place it is in).

State. What this process keeps (its directory, the files it holds and
why, the flights in flight, the runs' written arrays, the mappings, the
counters) is one `Registry`, `_registry`; `reset()` puts it back as a
fresh process has it, between tests.
"""

from __future__ import annotations

import array
import ctypes
import functools
import importlib
import io
import itertools
import linecache
import marshal
import mmap
import os
import pickle
import re
import struct
import sys
import threading
import time
import types
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import cloudpickle

from . import folders, texts
from .contract import Home, Outcome, Task

THRESHOLD = 1 << 20  # bytes: smaller buffers stay in the pickle
VALUE_FILE = 1 << 16  # bytes: a value pickled once a run goes in a file from this size (smaller: in each task's pickle)
_WRITE_CHUNK = 1 << 30  # write() moves at most ~2 GiB at once on Linux


class Ref(NamedTuple):
    path: str
    offset: int
    length: int


# A pickle with shared buffers travels as MAGIC, the length of the pickled
# references (8 bytes, little-endian), those references, then the pickle. A
# pickle with none is sent as it is (a pickle starts with b"\x80").
MAGIC = b"NBPS1"
_LENGTH = struct.Struct("<Q")


# -- this process's state: one registry ------------------------------------------


class Registry:
    """Everything this module keeps about the process it is in: one instance,
    `_registry`; the module's functions are its interface. `lock` guards
    the tables (finalizers take it too); `local` is per thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.stats = dict.fromkeys(
            ("written", "files", "forwarded", "mapped", "inband", "checked", "values", "reused"), 0
        )
        self.own_dir: str | None = None  # the directory for shared files, once made (directory())
        self.owner_pid = 0  # the process it was made by (a forked child makes its own)
        self.files: dict[str, _File] = {}  # own directory only: files mapped here or pinned by a run
        self.live: set[str] = set()  # tokens of flights in flight: their files are on their way
        self.tokens = 0  # flights' tokens and the kernel's files are numbered from it
        self.runs: dict[int, _Run] = {}  # id(run) -> kernel arrays written for its tasks
        self.maps: dict[int, _Mapping] = {}  # id(pages object) -> mapping
        self.numbers = itertools.count()  # of the files a worker writes
        self.local = threading.local()  # `reply`: where a worker's outcomes put large buffers (replying)
        self.idle: threading.Timer | None = None  # in a worker between payloads: when its kept strings go (serving)


_registry = Registry()


def reset() -> None:
    """For tests, between runs (nothing in flight): every run ended (its
    pinned files let go), every flight finished, the files nothing needs
    removed, the counters zero. Mappings that arrays still live on stay
    registered (each lets go of its file when its arrays go), and so do the
    directory and the numbering of tokens and files (a number is never
    given twice: a file of that name may still be there)."""
    with _registry.lock:
        runs, live = list(_registry.runs), list(_registry.live)
    for key in runs:
        _end(key)
    for token in live:
        finish(token)
    sweep()
    reset_stats()


# -- counters (this process) ---------------------------------------------------


def stats() -> dict[str, int]:
    """This process's counters: bytes `written` to shared files (and `files`
    written), bytes sent as references to files already there (`forwarded`),
    bytes received on mapped files (`mapped`), bytes of pickles (`inband`),
    bytes pickled to check that a value can be (`checked`, large buffers left out),
    values pickled once for a run (`values`: how many) and how many times a
    task was sent such a value's pickle after its first (`reused`)."""
    return dict(_registry.stats)


def reset_stats() -> None:
    for key in _registry.stats:
        _registry.stats[key] = 0


# -- the kernel's directory --------------------------------------------------------


def directory() -> str:
    """This process's own directory for shared files (folders.shared(): made
    on first use, 0700, removed at exit or by the watchdog)."""
    with _registry.lock:
        if _registry.own_dir is None or _registry.owner_pid != os.getpid():
            _registry.own_dir, _registry.owner_pid = folders.shared(), os.getpid()
        return _registry.own_dir


# -- files the kernel keeps: mapped here, pinned by a run, or in flight ----------


@dataclass
class _File:
    maps: int = 0  # live mappings of it in this process
    pins: int = 0  # runs that wrote it for their tasks


def _owned(path: str) -> bool:
    return (
        _registry.own_dir is not None
        and _registry.owner_pid == os.getpid()
        and os.path.dirname(path) == _registry.own_dir
    )


def _hold(path: str, pins: int = 0, maps: int = 0) -> None:
    with _registry.lock:
        entry = _registry.files.setdefault(path, _File())
        entry.pins += pins
        entry.maps += maps


def _let_go(path: str, pins: int = 0, maps: int = 0) -> None:
    if _registry.owner_pid != os.getpid():
        return  # a forked child of the kernel: the files are the kernel's
    with _registry.lock:
        entry = _registry.files.get(path)
        if entry is None:
            return
        entry.pins -= pins
        entry.maps -= maps
        if entry.pins > 0 or entry.maps > 0:
            return
        del _registry.files[path]
    _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def new_token() -> str:
    """A token for one flight: its worker names its files with it; they
    are kept until `finish` or `discard`."""
    with _registry.lock:
        _registry.tokens += 1
        token = f"t{_registry.tokens}"
        _registry.live.add(token)
    return token


def reply_to(token: str) -> tuple[str, str]:
    """Where a worker puts the large buffers of a flight's outcomes."""
    return directory(), token


def finish(token: str) -> None:
    """The flight's outcomes were loaded (or never will be): remove its
    files that no mapping needs."""
    with _registry.lock:
        _registry.live.discard(token)
    _remove_token_files(token)


def discard(token: str, writers: Iterable[int] = ()) -> None:
    """The flight ended without an outcome. Its files go now, and again once
    the `writers` (its pool's workers, which loky kills after failing the
    futures) are dead, in case one of them was writing."""
    finish(token)
    living = [pid for pid in writers if pid != os.getpid() and folders.alive(pid)]
    if living:
        threading.Thread(target=_after_death, args=(token, living), name="nbpar-share-sweep", daemon=True).start()


def _after_death(token: str, pids: list[int], patience: float = 120.0) -> None:
    deadline = time.monotonic() + patience
    while any(folders.alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    _remove_token_files(token)


def _token_of(name: str) -> str | None:
    match = re.fullmatch(r"o(t\d+)-\d+-\d+\.buf", name)
    return match[1] if match else None


def _remove_token_files(token: str) -> None:
    _sweep(lambda name: _token_of(name) == token)


def sweep() -> None:
    """Remove the files of the own directory that nothing needs: not mapped,
    not pinned, not of a flight in flight."""
    _sweep(lambda name: True)


def _sweep(selected: Any) -> None:
    if _registry.own_dir is None or _registry.owner_pid != os.getpid():
        return
    try:
        names = os.listdir(_registry.own_dir)
    except OSError:
        return
    for name in names:
        if not selected(name):
            continue
        path = os.path.join(_registry.own_dir, name)
        with _registry.lock:
            if path in _registry.files or _token_of(name) in _registry.live:
                continue
            _unlink(path)


# -- runs: kernel arrays written for a run's tasks -------------------------------


@dataclass
class _Run:
    cache: dict[tuple[int, int, int], tuple[str, Any]] = field(default_factory=dict)
    pinned: list[str] = field(default_factory=list)
    values: dict[int, tuple[Any, Any]] = field(default_factory=dict)  # id(value) -> (keep, its reduce: _share)


def _run(scope: object) -> _Run:
    key = id(scope)
    with _registry.lock:
        run = _registry.runs.get(key)
        if run is None:
            run = _registry.runs[key] = _Run()
            try:
                weakref.finalize(scope, _end, key).atexit = False
            except TypeError:
                pass  # not weak-referenceable: end_run only
    return run


def end_run(scope: object) -> None:
    """The run `scope` is over: the kernel arrays written for its tasks are
    no longer needed (unless a mapping uses them); sweep the rest."""
    _end(id(scope))
    sweep()


def _end(key: int) -> None:
    with _registry.lock:
        run = _registry.runs.pop(key, None)
    if run is not None:
        for path in run.pinned:
            _let_go(path, pins=1)


# -- mappings ---------------------------------------------------------------------


@dataclass
class _Mapping:
    ref: weakref.ref[Any]
    address: int
    size: int
    path: str


def _libc() -> Any:
    if not hasattr(os, "fork"):
        return None  # not POSIX: Python's mmap (one open file descriptor per mapping)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = (
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int64,
        )
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()
_MAP_FAILED = ctypes.c_void_p(-1).value


def _map(path: str) -> memoryview:
    """Map `path` privately (copy-on-write) and register the mapping; the
    bytes view keeps it alive. Through libc where there is one: Python's mmap
    keeps a file descriptor open per mapping, and a kernel may hold thousands."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pages: Any
        if _LIBC is not None:
            address = _LIBC.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE, fd, 0)
            if address is None or address == _MAP_FAILED:
                err = ctypes.get_errno()
                raise OSError(err, f"cannot map {path}: {os.strerror(err)}")
            pages = (ctypes.c_char * size).from_address(address)
        else:
            pages = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
            probe = ctypes.c_char.from_buffer(pages)
            address = ctypes.addressof(probe)
            del probe
    finally:
        os.close(fd)
    owned = _owned(path)
    with _registry.lock:
        _registry.maps[id(pages)] = _Mapping(weakref.ref(pages), address, size, path)
        if owned:
            _hold(path, maps=1)
    unmap = _LIBC is not None
    weakref.finalize(pages, _unmapped, id(pages), address, size, path, owned, unmap).atexit = False
    _registry.stats["mapped"] += size
    return memoryview(pages).cast("B")


def _unmapped(key: int, address: int, size: int, path: str, owned: bool, unmap: bool) -> None:
    with _registry.lock:
        _registry.maps.pop(key, None)
    if unmap:
        _LIBC.munmap(address, size)
    if owned:
        _let_go(path, maps=1)


def _mapping_of(exporter: Any) -> _Mapping | None:
    """The registered mapping that `exporter`'s memory is on (following
    NumPy's `base` and memoryviews' `obj`), if any."""
    obj = exporter
    for _ in range(64):
        if isinstance(obj, memoryview):
            try:
                obj = obj.obj
            except ValueError:  # released
                return None
            continue
        entry = _registry.maps.get(id(obj))
        if entry is not None and entry.ref() is obj:
            return entry
        try:
            base = getattr(obj, "base", None)
        except Exception:
            return None
        if base is None or base is obj:
            return None
        obj = base
    return None


def _mapping_at(address: int, length: int) -> _Mapping | None:
    """The registered mapping whose pages hold `length` bytes at `address`,
    for an exporter whose chain does not lead to it (an Arrow buffer on a
    mapped file): the bytes being alive keep their mapping alive, and no
    other memory is at an address of a live mapping."""
    with _registry.lock:
        for entry in _registry.maps.values():
            if entry.address <= address and address + length <= entry.address + entry.size and entry.ref() is not None:
                return entry
    return None


def _memory_owner(exporter: Any) -> Any:
    """The object at the end of `exporter`'s NumPy base chain (what owns the memory)."""
    obj = exporter
    for _ in range(64):
        try:
            base = getattr(obj, "base", None)
        except Exception:
            break
        if base is None or base is obj or isinstance(base, (bytes, memoryview)):
            break
        obj = base
    return obj


def backing_file(value: Any) -> str | None:
    """The shared file that `value`'s memory (a NumPy array's, say) is
    mapped from, if it is."""
    entry = _mapping_of(value)
    return entry.path if entry is not None else None


def _address(buffer: memoryview) -> int | None:
    try:
        import numpy

        return int(numpy.frombuffer(buffer, numpy.uint8).__array_interface__["data"][0])
    except Exception:
        pass
    if buffer.readonly:
        return None
    probe = ctypes.c_char.from_buffer(buffer)
    try:
        return ctypes.addressof(probe)
    finally:
        del probe


_PAGE = mmap.PAGESIZE


def _unchanged(entry: _Mapping, address: int, length: int) -> bool:
    """Whether the bytes at `address` on `entry`'s private mapping are still
    the file's: no page of them was written here."""
    first, last = address // _PAGE, (address + length - 1) // _PAGE
    try:
        with open("/proc/self/pagemap", "rb") as f:
            f.seek(first * 8)
            raw = f.read((last - first + 1) * 8)
    except OSError:
        raw = b""
    if len(raw) == (last - first + 1) * 8:
        # bit 63 present, 62 swapped, 61 file page: a written private page is
        # an anonymous one, present or swapped
        try:
            import numpy

            flags = numpy.frombuffer(raw, numpy.uint64) >> numpy.uint64(61)
            return not bool(numpy.any(((flags & numpy.uint64(6)) != 0) & ((flags & numpy.uint64(1)) == 0)))
        except ImportError:
            entries = array.array("Q", raw)
            return not any((e >> 61) & 6 and not (e >> 61) & 1 for e in entries)
    try:  # no pagemap: compare with the file
        with open(entry.path, "rb") as f:
            f.seek(address - entry.address)
            return f.read(length) == ctypes.string_at(address, length)
    except OSError:
        return False


# -- pickling ---------------------------------------------------------------------


class _Packer:
    """The buffer_callback of one pickling: decides, per out-of-band buffer,
    in the pickle (small, or nowhere to put it) or a reference to a file."""

    def __init__(self, run: _Run | None, reply: tuple[str, str] | None) -> None:
        self.run = run
        self.reply = reply
        self.refs: list[Ref] = []
        self.written: list[str] = []  # files this pickling wrote (a worker's, removed if it fails)
        self.pinned: list[str] = []  # files this pickling pinned for the run

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        raw = buffer.raw()
        if raw.nbytes < THRESHOLD:
            return True
        address = _address(raw)
        ref = self._existing(raw, address) or self._cached(raw, address) or self._write(raw, address)
        if ref is None:
            return True
        self.refs.append(ref)
        return False

    def _existing(self, raw: memoryview, address: int | None) -> Ref | None:
        """A reference to the file `raw` is mapped from, if its bytes there are unchanged."""
        if address is None:
            return None
        entry = _mapping_of(raw.obj) or _mapping_at(address, raw.nbytes)
        if entry is None:
            return None
        if not entry.address <= address <= entry.address + entry.size - raw.nbytes:
            return None
        if not os.path.exists(entry.path) or not _unchanged(entry, address, raw.nbytes):
            return None
        _registry.stats["forwarded"] += raw.nbytes
        return Ref(entry.path, address - entry.address, raw.nbytes)

    def _cached(self, raw: memoryview, address: int | None) -> Ref | None:
        """A reference to the file this run already wrote `raw` to."""
        if self.run is None or address is None:
            return None
        owner = _memory_owner(raw.obj)
        with _registry.lock:
            hit = self.run.cache.get((id(owner), address, raw.nbytes))
        if hit is None:
            return None
        path, keep = hit
        if (keep() if isinstance(keep, weakref.ref) else keep) is not owner:
            return None  # another object at the same address
        _registry.stats["forwarded"] += raw.nbytes
        return Ref(path, 0, raw.nbytes)

    def _write(self, raw: memoryview, address: int | None) -> Ref | None:
        if self.reply is not None:
            folder, token = self.reply
            path = os.path.join(folder, f"o{token}-{os.getpid()}-{next(_registry.numbers)}.buf")
        elif self.run is not None:
            with _registry.lock:
                _registry.tokens += 1
                path = os.path.join(directory(), f"i{_registry.tokens}.buf")
            _hold(path, pins=1)  # before the file exists: a sweep must not take it
            self.pinned.append(path)
        else:
            return None
        try:
            _write_file(path, raw)
        except OSError:  # full, or gone: this buffer travels in the pickle
            self._forget(path)
            return None
        except BaseException:
            self._forget(path)
            raise
        if self.reply is not None:
            self.written.append(path)
        elif self.run is not None:
            owner = _memory_owner(raw.obj)
            try:
                keep: Any = weakref.ref(owner)
            except TypeError:
                keep = owner
            with _registry.lock:
                self.run.pinned.append(path)
                self.pinned.remove(path)
                if address is not None:
                    self.run.cache[(id(owner), address, raw.nbytes)] = (path, keep)
        _registry.stats["written"] += raw.nbytes
        _registry.stats["files"] += 1
        return Ref(path, 0, raw.nbytes)

    def _forget(self, path: str) -> None:
        if path in self.pinned:
            self.pinned.remove(path)
            _let_go(path, pins=1)
        _unlink(path)

    def undo(self) -> None:
        """The pickling failed: what it wrote for nothing goes."""
        for path in self.written:
            _unlink(path)
        for path in list(self.pinned):
            self._forget(path)
        self.written, self.refs = [], []


def _write_file(path: str, raw: memoryview) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = raw.cast("B") if raw.format != "B" or raw.ndim != 1 else raw
        done = 0
        while done < len(view):
            done += os.write(fd, view[done : done + _WRITE_CHUNK])
    finally:
        os.close(fd)


OWN_TYPES: frozenset[type] = frozenset((Task, Outcome, Home))  # nbpar's types that pickle by their own __reduce__


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, with five changes, each independent of cloudpickle's version:

    - nbpar's own types (a batch holds thousands of tasks) reduce at once:
      cloudpickle would first try its checks, then its dispatch table, a
      ChainMap that takes a Python call and two raised KeyErrors per object.
      Twice as fast on a batch of tiny steps.
    - code objects (of functions pickled by value: the notebook's, a step's)
      keep their filename and carry the source lines the receiver's linecache
      lacks (`_reduce_code`): tracebacks show the cell, its line and its code.
    - `functools.cache` / `lru_cache` wrappers that pickle cannot find by name
      (defined in the notebook or a step) travel as the function they wrap
      (`_reduce_cached`).
    - a class or function whose module is a submodule not imported yet (NumPy's
      lazily loaded `numpy.rec`, of `recarray`) is pickled by reference after
      importing that module, not by value as a broken copy (`_import_home`).
    - a text file open for reading is refused, as cloudpickle refuses one open
      for writing: cloudpickle would copy its whole content into the pickle,
      to arrive as a StringIO (`_readable`).
    """

    share: Any = None  # in the kernel, pickling for a run: values pickled once a run (`_share`)
    remember = False  # in the kernel: text arrays encoded are remembered (texts.encode)

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in OWN_TYPES:
            return obj.__reduce__()
        if self.share is not None and _shareable(kind, obj):
            return self.share(obj)
        numpy = sys.modules.get("numpy")
        if numpy is not None and kind is numpy.ndarray:
            return reduce_array(obj, self.remember)
        if _arrow_backed(kind):
            return _reduce_arrow(obj)
        if kind is types.CodeType:
            return _reduce_code(obj)
        if kind is functools._lru_cache_wrapper and not _by_reference(obj):
            return _reduce_cached(obj)
        if kind is types.FunctionType or issubclass(kind, type):
            _import_home(obj)
        if kind is io.TextIOWrapper and _readable(obj):
            raise pickle.PicklingError(f"cannot pickle an open file ({obj.name!r}, mode {obj.mode!r})")
        return super().reducer_override(obj)


def reduce_array(array: Any, remember: bool = False) -> Any:
    """How a NumPy array (exactly `ndarray`) is pickled, where NumPy's own
    way copies what need not be: a datetime64 or timedelta64 array as its
    int64 view (NumPy pickles those dtypes' data in the pickle, not as an
    out-of-band buffer), an object array of strings as one UTF-8 buffer
    (texts.py; with `remember`, the kernel's: kept to be sent again unread);
    NotImplemented for the rest (NumPy's way)."""
    dtype = array.dtype
    if dtype.kind in "mM" and (array.flags.c_contiguous or array.flags.f_contiguous):
        return _retyped, (array.view(f"{dtype.byteorder}i8"), dtype)
    if dtype.hasobject and dtype.fields is None and dtype.metadata is None:
        text = texts.encode(array, remember)
        if text is not None:
            data = pickle.PickleBuffer(text.data)
            return _rebuild_text, (text.shape, text.fortran, data, text.codes, text.positions, text.others)
    return NotImplemented


def _retyped(array: Any, dtype: Any) -> Any:
    """Unpickle what `reduce_array` made of a datetime64 or timedelta64 array."""
    return array.view(dtype)


def _rebuild_text(
    shape: tuple[int, ...], fortran: bool, data: Any, codes: Any, positions: Any, others: list[Any]
) -> Any:
    """Unpickle what `reduce_array` made of an object array of strings
    (texts.rebuild). When its text is on a file of another process's
    directory (a worker reading the kernel's), the file names it: a second
    step on this worker reading the same file copies the strings the first
    decoded (see `serving`)."""
    source = None
    if isinstance(data, memoryview):
        entry = _mapping_of(data)
        address = _address(data)
        if entry is not None and address is not None and not _owned(entry.path):
            source = (entry.path, address - entry.address, data.nbytes)
    return texts.rebuild(shape, fortran, data, codes, positions, others, source)


_ARROW: dict[type, bool] = {}  # type -> whether it is a pandas array on Arrow (ArrowExtensionArray)


def _arrow_backed(kind: type) -> bool:
    known = _ARROW.get(kind)
    if known is None:
        arrays = getattr(sys.modules.get("pandas"), "arrays", None)
        base = getattr(arrays, "ArrowExtensionArray", None)
        known = _ARROW[kind] = base is not None and issubclass(kind, base)
    return known


def _reduce_arrow(array: Any) -> Any:
    """A pandas array on Arrow with its chunks as they are: pandas' own
    pickle first copies them into one (`combine_chunks`), so the buffers it
    sends are never those of a mapped file (which go on by reference). Not
    for a chunk that is a slice of larger buffers (Arrow would pickle those
    whole): pandas' way then."""
    chunked = array.__dict__.get("_pa_array")
    chunks = getattr(chunked, "chunks", None)
    if chunks is None or any(c.offset or c.get_total_buffer_size() - c.nbytes > 64 for c in chunks):
        return NotImplemented
    return _restore, (type(array), {**array.__dict__, "_cache": {}})  # (pandas' state, less its cache)


def _restore(kind: Any, state: dict[str, Any]) -> Any:
    """Unpickle what `_reduce_arrow` made, as pandas' own pickle does."""
    array = kind.__new__(kind)
    array.__setstate__(state)
    return array


def _reduce_code(code: types.CodeType) -> Any:
    """Pickle `code` with marshal, which keeps every field (cloudpickle 3.1
    sets `co_filename` to "<dynamic-code>"), and with the lines of its file
    when they are only in this process's linecache (an IPython or ipykernel
    cell, a step): one list per cell, pickled once per pickle. Both sides run
    the same interpreter (loky starts `sys.executable`), as marshal requires."""
    try:
        data = marshal.dumps(code)
    except ValueError:  # a constant marshal cannot write (code built by hand)
        return NotImplemented
    entry = linecache.cache.get(code.co_filename)
    lines = entry[2] if entry is not None and len(entry) == 4 and entry[1] is None else None
    return _load_code, (data, lines)


def _load_code(data: bytes, lines: list[str] | None) -> types.CodeType:
    """Unpickle what `_reduce_code` made; the lines go into linecache, unless
    it has that file's lines from the disk."""
    code: types.CodeType = marshal.loads(data)
    if lines is not None:
        name = code.co_filename
        entry = linecache.cache.get(name)
        if entry is None or (len(entry) == 4 and entry[1] is None):
            linecache.cache[name] = (sum(map(len, lines)), None, lines, name)
    return code


def _by_reference(obj: Any) -> bool:
    """Whether pickle can find `obj` by its module and name where it is loaded
    (never in `__main__`: the notebook's and a step's are not the worker's)."""
    module = sys.modules.get(getattr(obj, "__module__", None) or "__main__")
    if module is None or module.__name__ == "__main__":
        return False
    found: Any = module
    for part in getattr(obj, "__qualname__", "<>").split("."):
        found = getattr(found, part, None)
    return found is obj


def _reduce_cached(wrapper: Any) -> Any:
    """A cached function travels as the function it wraps, its cache
    parameters and its attributes; its cache does not (it starts empty)."""
    parameters = wrapper.cache_parameters()
    return _cached, (wrapper.__wrapped__, parameters["maxsize"], parameters["typed"]), dict(vars(wrapper))


def _cached(function: Any, maxsize: int | None, typed: bool) -> Any:
    return functools.lru_cache(maxsize=maxsize, typed=typed)(function)


def _import_home(obj: Any) -> None:
    """Import `obj`'s module if it is a submodule, not imported yet, of a
    package that is: cloudpickle pickles by value what it cannot find in
    sys.modules, and a copy of a library's class is not that class."""
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str) or module in sys.modules or module.partition(".")[0] not in sys.modules:
        return
    try:
        importlib.import_module(module)
    except Exception:
        pass  # not a module after all: cloudpickle decides


def _readable(file: io.TextIOWrapper) -> bool:
    """Whether `file` is open for reading, which cloudpickle would pickle as a
    copy of its whole content (a StringIO, not a file): refused here, as
    cloudpickle refuses files open for writing."""
    return not file.closed and ("r" in file.mode or "+" in file.mode)


def _pickle(obj: Any, buffer_callback: Any = None, share: Any = None, remember: bool = False) -> bytes:
    with io.BytesIO() as file:
        pickler = _Pickler(file, protocol=5, buffer_callback=buffer_callback)
        pickler.share = share
        pickler.remember = remember
        pickler.dump(obj)
        return file.getvalue()


# -- values pickled once a run ----------------------------------------------------

_SHAREABLE: dict[type, bool] = {}  # type -> whether its values are pickled once a run


def _shareable(kind: type, obj: Any) -> bool:
    """Whether `obj` is pickled once a run: a pandas DataFrame, Series or
    Index (subclasses too), or a NumPy array of Python objects. Their items
    are values (strings, timestamps, categories), which no other input
    shares with them in a way a step could see."""
    known = _SHAREABLE.get(kind)
    if known is None:
        known = _SHAREABLE[kind] = _shareable_type(kind)
    if not known:
        return False
    if kind.__module__ == "numpy":
        return bool(obj.dtype.hasobject)
    return True


def _shareable_type(kind: type) -> bool:
    numpy, pandas = sys.modules.get("numpy"), sys.modules.get("pandas")
    if numpy is not None and kind is numpy.ndarray:
        return True
    if pandas is None:
        return False
    try:
        return issubclass(kind, (pandas.DataFrame, pandas.Series, pandas.Index))
    except (AttributeError, TypeError):
        return False


class _Sharer:
    """The `share` hook of one kernel pickling for a run: the reduce of a
    value that the run pickles once (`_Run.values`), made on its first use."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    def __call__(self, obj: Any) -> Any:
        with _registry.lock:
            hit = self.run.values.get(id(obj))
        if hit is not None:
            keep, reduce = hit
            if (keep() if isinstance(keep, weakref.ref) else keep) is obj:
                _registry.stats["reused"] += 1
                return reduce
        reduce = self._pickle_once(obj)
        try:
            keep = weakref.ref(obj)
        except TypeError:
            keep = obj  # (a NumPy array is weak-referenceable; this is for the odd subclass)
        with _registry.lock:
            self.run.values[id(obj)] = (keep, reduce)
        _registry.stats["values"] += 1
        return reduce

    def _pickle_once(self, obj: Any) -> Any:
        """Pickle `obj` by itself (its large buffers to the run's files, as
        for any pickle of the run); the pickle travels in each task's pickle
        when it is small, else in a file pinned by the run."""
        packer = _Packer(self.run, None)
        try:
            data = _pickle(obj, buffer_callback=packer, remember=True)
        except BaseException:
            packer.undo()
            raise
        _registry.stats["inband"] += len(data)
        payload = _framed(data, packer.refs)
        if len(payload) < VALUE_FILE:
            return loads, (payload,)
        with _registry.lock:
            _registry.tokens += 1
            path = os.path.join(directory(), f"v{_registry.tokens}.pkl")
        _hold(path, pins=1)  # before the file exists: a sweep must not take it
        try:
            _write_file(path, memoryview(payload))
        except OSError:  # full, or gone: the pickle travels in each task's
            _let_go(path, pins=1)
            return loads, (payload,)
        with _registry.lock:
            self.run.pinned.append(path)
        _registry.stats["written"] += len(payload)
        _registry.stats["files"] += 1
        return _load_value, (path,)


def _load_value(path: str) -> Any:
    """In the worker: the value pickled once for the run, from its file
    (mapped, read without a copy, let go once unpickled)."""
    return loads(_map(path))


def dumps(obj: Any, *, run: object | None = None, reply: tuple[str, str] | None = None) -> bytes:
    """Pickle `obj` (cloudpickle, protocol 5). In the kernel, with `run` (the
    run the pickle is for): large buffers go by reference to the files they
    are mapped from, else to files written for the run. In a worker, with
    `reply` (the kernel's directory and the flight's token; by default the
    one `replying` set): large buffers go by reference to the input files
    they are on, else to new files there. With neither, everything is in the
    pickle."""
    if reply is None:
        reply = getattr(_registry.local, "reply", None)
    if run is None and reply is None:
        data = _pickle(obj)
        _registry.stats["inband"] += len(data)
        return data
    scope = _run(run) if run is not None else None
    packer = _Packer(scope, reply)
    try:
        data = _pickle(obj, buffer_callback=packer, share=_Sharer(scope) if scope is not None else None)
    except BaseException:
        packer.undo()
        raise
    _registry.stats["inband"] += len(data)
    return _framed(data, packer.refs)


def _framed(data: bytes, refs: list[Ref]) -> bytes:
    """A pickle as it travels: as it is, or after MAGIC and its references."""
    if not refs:
        return data
    pickled = pickle.dumps(tuple(tuple(r) for r in refs))
    return b"".join((MAGIC, _LENGTH.pack(len(pickled)), pickled, data))


def loads(payload: bytes | memoryview) -> Any:
    """Unpickle what `dumps` made: each referenced file is mapped (once per
    call), and the arrays live on the mapped pages."""
    view = memoryview(payload)
    if view[: len(MAGIC)] != MAGIC:
        return pickle.loads(view)
    start = len(MAGIC) + _LENGTH.size
    (size,) = _LENGTH.unpack_from(payload, len(MAGIC))
    refs = [Ref(*r) for r in pickle.loads(view[start : start + size])]
    views: dict[str, memoryview] = {}
    buffers = []
    for path, offset, length in refs:
        pages = views.get(path)
        if pages is None:
            pages = views[path] = _map(path)
        buffers.append(pages[offset : offset + length])
    return pickle.loads(view[start + size :], buffers=buffers)


IDLE = 1.0  # seconds: a worker idle this long lets go of the strings it kept (texts.forget_decoded)


@contextmanager
def serving() -> Iterator[None]:
    """In a worker, around each payload of tasks: the strings decoded from
    the kernel's files (texts.py, `_rebuild_text`) are kept for the next
    payload, until the worker has been idle for `IDLE` seconds."""
    with _registry.lock:
        timer, _registry.idle = _registry.idle, None
    if timer is not None:
        timer.cancel()
    if texts.decoded():
        texts.forget_decoded(keep=lambda source: os.path.exists(source[0]))  # (a run's files go when it ends)
    try:
        yield
    finally:
        if texts.decoded():
            timer = threading.Timer(IDLE, texts.forget_decoded)
            timer.daemon = True
            with _registry.lock:
                _registry.idle = timer
            timer.start()


@contextmanager
def replying(reply: tuple[str, str] | None) -> Iterator[None]:
    """In a worker: outcomes pickled meanwhile (`dumps` without `reply`)
    put their large buffers where `reply` says."""
    previous = getattr(_registry.local, "reply", None)
    _registry.local.reply = reply
    try:
        yield
    finally:
        _registry.local.reply = previous


def pickle_problem(value: Any) -> str | None:
    """Why `value` cannot be pickled, or None; large buffers are not copied."""
    try:
        _registry.stats["checked"] += len(_pickle(value, buffer_callback=_leave_out, remember=True))
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def _leave_out(buffer: pickle.PickleBuffer) -> bool:
    return False
