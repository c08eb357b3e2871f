"""Partitioned folders: ``nbpar.partitions(source)``, a folder's files as lazy handles.

Data flow::

    partitions("sales/" or "sales/*.csv", loader, settings=, suffix=)
      in the kernel: list the files (a folder recursively, hidden ones
      skipped; or those a glob pattern matches), name each by its path
      relative to the folder, without its extension or ``suffix``
      -> {name: Partition(name, path, loader, settings)}, sorted by name;
         nothing is loaded
    a step fanned out over it (``--over``) gets its slices of that dict
    (partition.py cuts it as any dict), the Partitions pickled as they are
    Partition() in the step, in the worker
      -> ``loader(path)``, or the reader of its extension (CSV, JSON, text,
         Parquet, pickle; else the bytes)

Like Kedro's ``PartitionedDataset``. The module is pure: only the default
CSV and Parquet readers import pandas, when a partition is loaded (CSV
without pandas gives a list of dicts).
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import json
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Partition", "partitions"]


@dataclass(frozen=True, repr=False)
class Partition:
    """One file of a partitioned folder; calling it loads the file."""

    name: str  # path relative to the folder, without extension, "/" separators
    path: str  # absolute path
    loader: Callable[[str], Any] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        """Load the file: with ``loader``, or by its extension."""
        if self.loader is not None:
            return self.loader(self.path)
        return _LOADERS.get(os.path.splitext(self.path)[1].lower(), _read_bytes)(self.path)

    load = __call__

    def __repr__(self) -> str:
        extra = f", settings={dict(self.settings)!r}" if self.settings else ""
        return f"Partition({self.name!r}{extra})"


def partitions(
    source: str | os.PathLike[str],
    loader: Callable[[str], Any] | None = None,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    suffix: str | None = None,
) -> dict[str, Partition]:
    """The files of a folder (recursively, hidden ones skipped) or of a glob pattern, by partition name.

    A partition's name is its path relative to the folder (for a pattern: its
    longest leading part without wildcards), with "/" separators and without
    the extension (without ``suffix`` instead, when ``suffix`` starts with a
    dot, so ``suffix=".tar.gz"`` names ``a.tar.gz`` ``a``). ``settings`` maps
    glob patterns on names to dicts; a partition gets the merge of every
    matching one, in order. Nothing is loaded here.
    """
    text = os.path.expanduser(os.fspath(source))
    if os.path.isdir(text):
        base, files, looked = os.path.abspath(text), _walk(os.path.abspath(text)), "files in folder"
    elif any(c in text for c in "*?["):
        pattern = os.path.abspath(text)
        base = _fixed_prefix(pattern)
        files = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        looked = "files matching"
    elif os.path.exists(text):
        raise NotADirectoryError(f"partitions: {text!r} is a file; give its folder or a glob pattern")
    else:
        raise FileNotFoundError(f"partitions: no folder {text!r} (looked for a folder or a glob pattern of files)")
    if suffix:
        files = [p for p in files if p.endswith(suffix)]
    if not files:
        ending = f" ending with {suffix!r}" if suffix else ""
        raise FileNotFoundError(f"partitions: no {looked} {text!r}{ending}")
    found: dict[str, Partition] = {}
    for path in files:
        name = _name(os.path.relpath(path, base), suffix)
        if name in found:
            raise ValueError(f"partitions: {found[name].path!r} and {path!r} both have the name {name!r}")
        found[name] = Partition(name, os.path.abspath(path), loader, _settings_for(name, settings or {}))
    return dict(sorted(found.items()))


def _walk(folder: str) -> list[str]:
    files: list[str] = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files.extend(os.path.join(top, n) for n in names if not n.startswith("."))
    return sorted(files)


def _fixed_prefix(pattern: str) -> str:
    """The longest leading folder of an absolute ``pattern`` without wildcards."""
    head, parts = pattern, []
    while True:
        head, tail = os.path.split(head)
        if not tail:
            break
        parts.append(tail)
    fixed = head  # the root
    for part in reversed(parts[1:]):  # never the last part: that names files
        if any(c in part for c in "*?["):
            break
        fixed = os.path.join(fixed, part)
    return fixed


def _name(relative: str, suffix: str | None) -> str:
    relative = relative.replace(os.sep, "/")
    if suffix and suffix.startswith(".") and len(os.path.basename(relative)) > len(suffix):
        return relative[: -len(suffix)]
    return os.path.splitext(relative)[0]


def _settings_for(name: str, settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for pattern, values in settings.items():
        if fnmatch.fnmatchcase(name, pattern):
            merged.update(values)
    return merged


def _read_csv(path: str) -> Any:
    try:
        import pandas
    except ImportError:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    return pandas.read_csv(path)


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _read_parquet(path: str) -> Any:
    import pandas

    return pandas.read_parquet(path)


def _read_pickle(path: str) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


_LOADERS: dict[str, Callable[[str], Any]] = {
    ".csv": _read_csv,
    ".json": _read_json,
    ".txt": _read_text,
    ".md": _read_text,
    ".parquet": _read_parquet,
    ".pkl": _read_pickle,
    ".pickle": _read_pickle,
}
