"""Compare two notebook namespaces name by name: is what nbpar left what a
top-to-bottom run (Run All) leaves?

`compare_namespaces(expected, actual)` takes the user's names of each run
(`user_names(shell)`: IPython's own and cell-private `_` names left out) and
sorts every name into one of four lists of a `Comparison`: equal, different
(with where and why), missing from one side, or not compared (with why).

Equality is by value, never by identity, since the two runs made their own
objects:

- NumPy arrays: same dtype and shape, same elements, NaN equal to NaN;
  object and structured arrays element by element. NumPy scalars and
  floats: NaN-aware.
- pandas objects: `.equals` (NaN equal), plus the dtypes, index, columns
  and name, which `.equals` does not always check.
- lists, tuples, dicts (keys in order too), sets: recursively.
- modules by name; functions by qualified name, code (bytecode, constants,
  names, nested code) and defaults; classes by qualified name and the
  functions they define; instances of the notebook's own classes (each run
  defines its own class) by class name and attributes.
- random number generators by state (`bit_generator.state`,
  `RandomState.get_state()`).
- other objects with an `__eq__` of their own: `==`.

Not compared, with the reason: matplotlib objects (figures, axes, artists),
generators and iterators, open files, and objects with no equality but
identity (or a container holding one of these). A notebook's namespace is
equal when nothing is different or missing.
"""

from __future__ import annotations

import dis
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})


class NotComparable(Exception):
    """The value cannot be compared; the message says why."""


@dataclass(frozen=True)
class Comparison:
    """Where two namespaces agree and where not, name by name."""

    equal: tuple[str, ...]
    different: tuple[tuple[str, str], ...]  # (name, where and why)
    missing: tuple[tuple[str, str], ...]  # (name, which run lacks it)
    not_compared: tuple[tuple[str, str], ...]  # (name, why)

    @property
    def ok(self) -> bool:
        return not self.different and not self.missing

    def describe(self) -> str:
        lines = [f"{len(self.equal)} names equal, {len(self.not_compared)} not compared"]
        lines += [f"different: {name}: {why}" for name, why in self.different]
        lines += [f"missing: {name}: {why}" for name, why in self.missing]
        lines += [f"not compared: {name}: {why}" for name, why in self.not_compared]
        return "\n".join(lines)


def user_names(shell: Any) -> dict[str, object]:
    """The names the notebook's code bound: not IPython's (`In`, `Out`, `_5`,
    hidden names) and not cell-private ones (a leading `_`, which nbpar
    keeps inside a step)."""
    hidden = shell.user_ns_hidden
    return {
        name: value
        for name, value in shell.user_ns.items()
        if not name.startswith("_") and name not in IPYTHON_NAMES and not (name in hidden and hidden[name] is value)
    }


def compare_namespaces(expected: Mapping[str, object], actual: Mapping[str, object]) -> Comparison:
    """Compare every name of either namespace (see the module's docstring)."""
    equal: list[str] = []
    different: list[tuple[str, str]] = []
    missing: list[tuple[str, str]] = []
    not_compared: list[tuple[str, str]] = []
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            missing.append((name, "only in the expected run"))
        elif name not in expected:
            missing.append((name, "only in the actual run"))
        else:
            try:
                why = difference(expected[name], actual[name])
            except NotComparable as reason:
                not_compared.append((name, str(reason)))
                continue
            if why is None:
                equal.append(name)
            else:
                different.append((name, why))
    return Comparison(tuple(equal), tuple(different), tuple(missing), tuple(not_compared))


def difference(a: object, b: object, where: str = "") -> str | None:
    """None if `a` and `b` are equal by value, else where (a path such as
    `[2]['x']`) and how they differ. Raises NotComparable when they cannot
    be compared."""
    if a is b:
        return None
    if not _same_type(type(a), type(b)):
        return f"{where or 'value'}: {_type_name(type(a))} vs {_type_name(type(b))}"
    for test in _TESTS:
        verdict = test(a, b, where)
        if verdict is not _PASS:
            return verdict  # type: ignore[return-value]
    raise NotComparable(f"{where + ': ' if where else ''}{_type_name(type(a))} has no equality but identity")


_PASS = object()  # a test that does not apply to the values


def _differs(where: str, what: str) -> str:
    return f"{where or 'value'}: {what}"


def _not_compared(a: object, b: object, where: str) -> object:
    module = type(a).__module__
    label = f"{where + ': ' if where else ''}{_type_name(type(a))}"
    if module.startswith(("matplotlib", "mpl_toolkits")):
        raise NotComparable(f"{label}: a matplotlib object, drawn, not compared")
    if isinstance(a, (types.GeneratorType, types.CoroutineType)) or type(a).__name__.endswith("iterator"):
        raise NotComparable(f"{label}: an iterator, whose state cannot be read")
    if hasattr(a, "read") and hasattr(a, "close") and hasattr(a, "fileno"):
        raise NotComparable(f"{label}: an open file")
    return _PASS


def _numbers(a: object, b: object, where: str) -> object:
    if isinstance(a, (float, complex, np.inexact)):
        if isinstance(a, np.generic) and a.dtype != b.dtype:  # type: ignore[attr-defined]
            return _differs(where, f"dtype {a.dtype} vs {b.dtype}")  # type: ignore[attr-defined]
        both_nan = all(_isnan(x) for x in (a, b))
        return None if both_nan or a == b else _differs(where, f"{a!r} vs {b!r}")
    if isinstance(a, (int, str, bytes, bool, type(None), np.generic)):
        return None if a == b else _differs(where, f"{a!r} vs {b!r}")
    return _PASS


def _isnan(x: object) -> bool:
    if isinstance(x, (complex, np.complexfloating)):
        return math.isnan(x.real) or math.isnan(x.imag)
    return math.isnan(x)  # type: ignore[arg-type]


def _arrays(a: object, b: object, where: str) -> object:
    if not isinstance(a, np.ndarray):
        return _PASS
    assert isinstance(b, np.ndarray)
    if a.dtype != b.dtype:
        return _differs(where, f"dtype {a.dtype} vs {b.dtype}")
    if a.shape != b.shape:
        return _differs(where, f"shape {a.shape} vs {b.shape}")
    if isinstance(a, np.ma.MaskedArray):
        mask = difference(np.ma.getmaskarray(a), np.ma.getmaskarray(b), where + ".mask")
        return mask or difference(np.ma.filled(a, 0), np.ma.filled(b, 0), where + ".data")
    if a.dtype.kind in "fc":
        return None if np.array_equal(a, b, equal_nan=True) else _differs(where, "elements differ")
    if a.dtype.kind in "biumMSUV" and a.dtype.names is None:
        return None if np.array_equal(a, b) else _differs(where, "elements differ")
    return difference(a.tolist(), b.tolist(), where)  # object and structured arrays, element by element


def _pandas(a: object, b: object, where: str) -> object:
    if isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame)
        parts = [("columns", a.columns, b.columns), ("index", a.index, b.index), ("dtypes", a.dtypes, b.dtypes)]
    elif isinstance(a, pd.Series):
        assert isinstance(b, pd.Series)
        parts = [("index", a.index, b.index), ("dtype", a.dtype, b.dtype), ("name", a.name, b.name)]
    elif isinstance(a, pd.Index):
        assert isinstance(b, pd.Index)
        parts = [("dtype", a.dtype, b.dtype), ("names", list(a.names), list(b.names))]
    else:
        return _PASS
    for label, x, y in parts:
        if isinstance(x, (pd.Index, pd.Series)):
            why = difference(x, y, f"{where}.{label}")
        else:
            why = None if x == y else _differs(f"{where}.{label}", f"{x!r} vs {y!r}")
        if why:
            return why
    return None if a.equals(b) else _differs(where, "values differ")


def _containers(a: object, b: object, where: str) -> object:
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple))
        if len(a) != len(b):
            return _differs(where, f"length {len(a)} vs {len(b)}")
        return _first(difference(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True)))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        if list(a) != list(b):
            return _differs(where, f"keys {list(a)!r} vs {list(b)!r}")
        return _first(difference(a[key], b[key], f"{where}[{key!r}]") for key in a)
    if isinstance(a, (set, frozenset)):
        assert isinstance(b, (set, frozenset))
        return None if a == b else _differs(where, f"{sorted(repr(x) for x in a)} vs {sorted(repr(x) for x in b)}")
    return _PASS


def _first(verdicts: Any) -> str | None:
    return next((verdict for verdict in verdicts if verdict is not None), None)


def _code(a: object, b: object, where: str) -> object:
    if isinstance(a, types.ModuleType):
        return None if a.__name__ == b.__name__ else _differs(where, f"module {a.__name__} vs {b.__name__}")  # type: ignore[attr-defined]
    if isinstance(a, types.FunctionType):
        assert isinstance(b, types.FunctionType)
        if a.__qualname__ != b.__qualname__:
            return _differs(where, f"function {a.__qualname__} vs {b.__qualname__}")
        if not _same_code(a.__code__, b.__code__):
            return _differs(where, f"function {a.__qualname__}: its code differs")
        return difference(a.__defaults__, b.__defaults__, f"{where}.__defaults__")
    if isinstance(a, type):
        assert isinstance(b, type)
        if a.__qualname__ != b.__qualname__:
            return _differs(where, f"class {a.__qualname__} vs {b.__qualname__}")
        methods_a, methods_b = _own_functions(a), _own_functions(b)
        return difference(methods_a, methods_b, f"{where}.{a.__qualname__}")
    return _PASS


def _own_functions(cls: type) -> dict[str, object]:
    return {name: value for name, value in vars(cls).items() if isinstance(value, types.FunctionType)}


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    """Same instructions, names and constants (nested code alike); not the
    file or line the code came from, which differ between a cell and a step,
    nor how a call of an imported module's function compiles: IPython
    compiles a cell's statements one by one, a step compiles the cell whole,
    and Python 3.11 compiles `np.empty(n)` as a method call only when `np`
    is not imported in the code compiled with it (LOAD_METHOD vs LOAD_ATTR)."""
    if (a.co_names, a.co_varnames, a.co_freevars) != (b.co_names, b.co_varnames, b.co_freevars):
        return False
    if _instructions(a) != _instructions(b):
        return False
    if len(a.co_consts) != len(b.co_consts):
        return False
    for x, y in zip(a.co_consts, b.co_consts, strict=True):
        if isinstance(x, types.CodeType) and isinstance(y, types.CodeType):
            if not _same_code(x, y):
                return False
        elif type(x) is not type(y) or (x != y and not (isinstance(x, float) and _isnan(x) and _isnan(y))):
            return False
    return True


_SAME_OP = {"LOAD_METHOD": "LOAD_ATTR"}


def _instructions(code: types.CodeType) -> list[tuple[str, object]]:
    """The code's instructions as (operation, argument), jumps by the index
    of their target, nested code left to the constants' comparison."""
    instructions = list(dis.get_instructions(code))
    index = {instruction.offset: n for n, instruction in enumerate(instructions)}
    jumps = set(dis.hasjrel) | set(dis.hasjabs)
    found: list[tuple[str, object]] = []
    for instruction in instructions:
        arg = instruction.argval
        if instruction.opcode in jumps:
            arg = index.get(arg, arg)
        elif isinstance(arg, types.CodeType):
            arg = None
        found.append((_SAME_OP.get(instruction.opname, instruction.opname), arg))
    return found


def _random_states(a: object, b: object, where: str) -> object:
    if isinstance(a, np.random.Generator):
        return difference(a.bit_generator.state, b.bit_generator.state, f"{where}.bit_generator.state")  # type: ignore[attr-defined]
    if isinstance(a, np.random.RandomState):
        return difference(a.get_state(legacy=False), b.get_state(legacy=False), f"{where}.state")  # type: ignore[attr-defined]
    return _PASS


def _by_equality(a: object, b: object, where: str) -> object:
    if type(a).__eq__ is object.__eq__:
        return _PASS
    try:
        same = bool(a == b)
    except Exception as error:  # an __eq__ that answers with an array, or raises
        raise NotComparable(f"{where + ': ' if where else ''}{_type_name(type(a))}: == raised {error!r}") from None
    return None if same else _differs(where, f"{a!r} vs {b!r}")


def _instances(a: object, b: object, where: str) -> object:
    if type(a).__module__ != "__main__" or not hasattr(a, "__dict__"):
        return _PASS
    return difference(vars(a), vars(b), f"{where}.__dict__")


_TESTS = (_not_compared, _numbers, _arrays, _pandas, _containers, _code, _random_states, _instances, _by_equality)


def _same_type(a: type, b: type) -> bool:
    """The same type, or the same class of the notebook's own, defined once
    by each run."""
    return a is b or (a.__module__ == b.__module__ == "__main__" and a.__qualname__ == b.__qualname__)


def _type_name(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ in ("builtins", "__main__") else f"{cls.__module__}.{cls.__qualname__}"
