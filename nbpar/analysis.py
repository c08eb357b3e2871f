"""Infer which names a notebook cell reads and writes.

``analyze(source, future_annotations)`` parses one cell (plain Python, after
IPython's ``transform_cell``) and returns a :class:`CellNames`:

* ``writes``: names bound at the cell's top level by any binding form
  (assignments of every shape, imports, ``def``, ``class``, ``for``/``with``
  targets, walrus (also inside a comprehension), ``match`` captures), plus
  names a nested scope declares ``global`` and binds, and names removed by
  ``del`` (also in ``deletes``; ``always``: those bound or deleted on every
  path through the cell, by its top-level statements and top-level
  ``with`` blocks). Names starting with ``_`` are cell-private
  and never writes. Attribute and subscript targets (``df.x = 1``) bind
  nothing: they read base and index.
* ``reads``: names loaded where the cell has not bound them yet, in source
  order (flow-insensitive: a binding inside an ``if`` counts). Builtins are
  not filtered. ``except E as e`` names are handler-local (neither read nor
  written, also for functions defined in the handler). A name a nested scope
  declares ``global`` is read like a free name; one it binds, and ``del x``
  of a name the cell has not bound before, count as a read and a write.
  Annotations are not reads under ``from __future__ import annotations``
  (in the cell, or ``future_annotations``: the notebook's compiler flags).
* the code IPython's code-running magics run is analysed where the magic's
  call is (``%time``, ``%debug``: in the step's namespace; ``%timeit``,
  ``%%timeit``: reads only, its bindings do not outlive it; ``%%time``,
  ``%%debug``, ``%%capture``, ``%prun``, ``%%prun``: in the notebook's
  namespace, so what it binds is in ``shell_writes``, which a step cannot
  return); ``magics`` names the magics found, and ``unseen`` the names
  the cell binds that such code would take from the notebook's namespace
  instead (a comprehension or function inside ``%time``: IPython runs the
  code with the notebook's namespace as its globals). ``star_imports`` lists the modules of ``from M import *``,
  whose names cannot be known from the cell.

Changes in place (raw syntax; ``nbpar.effects`` gives them meaning). For
each read, ``changes`` lists the ways the cell's own code may change that
object: ``"store"`` (``x[k] = v``, ``x.a.b[k] += v``, ``del x[k]``, ``del
x.a``, also as a ``for``/``with``/comprehension target), ``"call:PATH"`` for
a method call ``x.M()`` (PATH the attributes after the root, subscripts
skipped: ``x.a[0].M()`` is ``call:a.M``), ``"call:PATH:inplace"`` when it
passes ``inplace=`` (anything but False/None), ``"arg:CALLEE:WHERE"`` when
an argument holds it (WHERE the position, the keyword, or ``*`` from a
starred argument on or in ``**kw``), ``"out:CALLEE"`` for ``out=``. CALLEE
is as written (``f``, ``np.random.shuffle``, ``rng.shuffle``), ``?.M`` for
a method of an object no name chain gives (``df.groupby(k).agg``,
``models[0].fit``), ``?`` else (``fs[0]``). An argument holds x when it is
``x``, ``x.a``, ``x[k]``, ``x.items()``, ``x.values()``, ``enumerate``,
``zip`` or ``reversed`` of such, a display of such (``[x, y]``, dict
values) or starred; no expression with another call. *Aliases*: ``y =``,
``for y in``, ``with ... as y`` and comprehension targets bound to a value
that holds x (same forms) make y stand for x in that scope until y is bound
again, so ``y.append(1)`` and ``y += [1]`` are changes of x. ``calls``,
``stores`` (``os.environ``, ``df``) and ``opens`` are the same facts taken
as written, whatever the root. Code in lambdas, methods, decorated or
nested defs counts as the code around it (it may run there); the bodies of
top-level plain ``def``s do not: each is a ``Function`` in ``functions``
(its free names, transitively through the cell's other such functions; its
parameters; the changes of its parameters and free names; its calls,
stores, opens), unless the cell also binds the name another way.
``deferred``: the reads only those bodies load, which the cell's code
never loads, neither directly nor through a function of ``functions`` it
loads; a step needs ``reads - deferred``, a caller of f needs f's ``free``.

Data flow: one visitor walks the tree in execution order, keeping a stack of
scopes (cell, class, function, comprehension, magic). A load is resolved from
the current scope outwards. An *immediate* load (cell, class body,
comprehension, magic) that reaches the cell is a read unless the cell bound
the name earlier. Function and lambda bodies are *deferred*: their loads are
collected, and when the scope is popped the free ones (not parameters, not
bound in the body, not ``nonlocal``) are resolved outwards from the parent;
one reaching the cell is a read only if the cell binds that name nowhere,
which is checked after the whole cell is visited. Class-body names are
visible only to loads made directly in the class body, not to its methods or
comprehensions. Decorators, defaults, annotations, class bases and a
comprehension's first iterable are visited in the enclosing scope before the
new scope is pushed. What code does to objects goes to the current
``_Facts``: the cell's, or while a top-level plain def's body is visited,
that function's (keyed by its parameters and free names); ``_roots`` finds
which input (or parameter) a name stands for where it is loaded, through the
scopes' aliases.
"""

from __future__ import annotations

import ast
import builtins
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = ["CellNames", "Function", "OpenCall", "analyze", "is_builtin"]

_Kind = Literal["cell", "class", "function", "comprehension", "magic"]


@dataclass(frozen=True)
class OpenCall:
    """A call of a callee named ``open`` as written (``open(p, "w")``,
    ``gzip.open(p)``, ``path.open("a")``): the string literal it passes where
    a mode may be, ``"?"`` when that argument is not a string literal, None
    when it passes none there (the mode then defaults to reading). A
    ``mode=`` keyword fills both. Which of the two is the mode depends on
    the callee (first for a method like ``Path.open``, second for a function
    like ``open`` or ``gzip.open``): ``nbpar.effects`` decides."""

    callee: str
    first: str | None
    second: str | None


@dataclass(frozen=True)
class Function:
    """What a top-level plain ``def`` of a cell does when it is called.

    ``free``: the cell-level names its body loads (not its parameters or
    locals; defaults, decorators and annotations are the defining cell's
    reads), through the other functions of the same cell it loads,
    transitively. ``changes``: for each parameter and each free name, the
    ways the body may change that object in place (the strings of
    ``CellNames.changes``). ``calls``, ``stores``, ``opens``: as in
    ``CellNames``, for the body (and functions and lambdas nested in it)."""

    free: frozenset[str]
    positional: tuple[str, ...]  # the parameters an argument can be given to by position, in order
    keywords: frozenset[str]  # the parameters an argument can be given to by keyword
    varargs: str | None  # *args
    varkw: str | None  # **kwargs
    changes: Mapping[str, frozenset[str]]
    calls: frozenset[str]
    stores: frozenset[str]
    opens: frozenset[OpenCall]

    def receiving(self, where: str) -> frozenset[str]:
        """The parameters that may receive an argument passed at ``where``
        (a position ``"0"``, a keyword name, or ``"*"``: unknown, as after a
        starred argument or in ``**kw``)."""
        if where == "*":
            every = [*self.positional, *self.keywords, self.varargs, self.varkw]
            return frozenset(n for n in every if n is not None)
        if where.isdigit():
            index = int(where)
            named = self.positional[index] if index < len(self.positional) else self.varargs
        else:
            named = where if where in self.keywords else self.varkw
        return frozenset({named} if named is not None else ())


@dataclass(frozen=True)
class CellNames:
    """Names a cell reads (external inputs) and writes (top-level bindings)."""

    reads: frozenset[str]
    writes: frozenset[str]
    # the writes bound only by import statements, each to what it imports
    # ("np": "numpy", "path": "os.path"): two steps may import the same thing
    imports: Mapping[str, str] = field(default_factory=dict)
    deletes: frozenset[str] = frozenset()  # the writes the cell makes by `del` (it removes them)
    star_imports: tuple[str, ...] = ()  # the modules of `from M import *`, in source order
    # names that code run by %%capture or %prun binds, in the notebook's
    # namespace and not the step's, each to the magic ("%%capture")
    shell_writes: Mapping[str, str] = field(default_factory=dict)
    magics: frozenset[str] = frozenset()  # the code-running magics the cell uses ("time", "debug")
    # names the cell binds that code run by a magic loads from the notebook's
    # namespace instead (IPython gives %time's nested scopes, and %prun's
    # code, the notebook's names as globals), each to the magic
    unseen: Mapping[str, str] = field(default_factory=dict)
    # for each read, the ways the cell's own code may change that object in
    # place (see "Changes in place" in the module docstring)
    changes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    calls: frozenset[str] = frozenset()  # the callees the cell's own code calls, as written ("np.random.seed")
    # the objects the cell's own code stores into or deletes from, as written
    # without subscripts: "os.environ" for `os.environ["K"] = v`, "df" for `df["c"] = v`
    stores: frozenset[str] = frozenset()
    opens: frozenset[OpenCall] = frozenset()  # the cell's own calls of callees named `open`
    functions: Mapping[str, Function] = field(default_factory=dict)  # its top-level plain `def`s, by name
    # the reads only functions of `functions` need, which the cell itself
    # never loads, directly or through a function it loads
    deferred: frozenset[str] = frozenset()
    # the writes the cell binds or deletes whenever it runs to its end: by a
    # statement at its top level (or a top-level `with ... as` target), not in
    # an `if`, loop, `try`, `with` body or `match`; its version always replaces the one above
    always: frozenset[str] = frozenset()


def is_builtin(name: str) -> bool:
    """True for names Python provides everywhere (`print`, `len`, ...)."""
    return hasattr(builtins, name)


@functools.lru_cache(maxsize=4096)  # a notebook re-registers the same cells again and again
def analyze(source: str, future_annotations: bool = False) -> CellNames:
    """Return the names ``source`` reads and writes; ``SyntaxError`` propagates.
    ``future_annotations``: the notebook compiles with ``from __future__
    import annotations`` (annotations are then never evaluated).
    The result is shared: do not change it."""
    try:
        tree = ast.parse(source)
        visitor = _CellVisitor(future_annotations or _imports_future_annotations(tree))
        visitor.visit(tree)
    except RecursionError:
        raise SyntaxError("an expression is nested too deeply to analyze: split it over several lines") from None
    names = visitor.result()
    return replace(names, always=_always_bound(tree.body) & names.writes)


def _always_bound(body: list[ast.stmt]) -> frozenset[str]:
    """The names statements `body` bind or delete on every path that ends
    normally: their own targets, and the `as` targets of `with` statements
    among them (a context manager may swallow an exception of its body)."""
    found: set[str] = set()
    for stmt in body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                found.update(_names_bound(target))
        elif isinstance(stmt, ast.AnnAssign | ast.AugAssign) and (
            isinstance(stmt, ast.AugAssign) or stmt.value is not None
        ):
            found.update(_names_bound(stmt.target))
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            found.update((a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*")
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(stmt.name)
        elif isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                found.update(_names_bound(target))
        elif isinstance(stmt, ast.With | ast.AsyncWith):  # (not its body: `with suppress(E):` may skip the rest)
            for item in stmt.items:
                if item.optional_vars is not None:
                    found.update(_names_bound(item.optional_vars))
    return frozenset(found)


def _imports_future_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    )


# IPython's magics that run code given to them, and where its bindings land
# as a line magic and as a cell magic (IPython 9: `IPython/core/magics/
# execution.py` and `basic.py`, `InteractiveShell.run_line_magic` and
# `run_cell_magic`):
#   "step": the caller's namespace (a line magic's `needs_local_scope`), the step's;
#   "dropped": a function of the magic's own, gone when it returns;
#   "notebook": the shell's `user_ns` (also a cell magic's `needs_local_scope`),
#   where nbpar cannot take a step's writes from.
_Lands = Literal["step", "dropped", "notebook"]
_CODE_MAGICS: dict[str, tuple[_Lands, _Lands]] = {
    "time": ("step", "notebook"),
    "debug": ("step", "notebook"),
    "timeit": ("dropped", "dropped"),
    "prun": ("notebook", "notebook"),
    "capture": ("notebook", "notebook"),
}
# the magics with short options (`-n1`), each to the letters that take a
# value, and the long options that take one; the others have long flags only
_SHORT = {"timeit": "nrpv", "prun": "DlsT", "debug": "b"}
_LONG_VALUED = ("--breakpoint",)


def _magic_call(node: ast.Call) -> tuple[str, str, str | None] | None:
    """(magic, line, cell) for `get_ipython().run_line_magic(...)` or
    `run_cell_magic(...)` (what IPython turns `%time ...`, `%%time` into) of
    a code-running magic, with constant arguments; else None."""
    func = node.func
    if not (
        isinstance(func, ast.Attribute)
        and func.attr in ("run_line_magic", "run_cell_magic")
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "get_ipython"
        and not node.keywords
    ):
        return None
    args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args]
    wanted = 2 if func.attr == "run_line_magic" else 3
    if len(args) != wanted or None in args or args[0] not in _CODE_MAGICS:
        return None
    name, line, *cell = args
    assert name is not None and line is not None
    return name, line, cell[0] if cell else None


def _split_options(magic: str, line: str) -> tuple[dict[str, str], str]:
    """The leading options of a magic's line (as its getopt would read them:
    `-n1`, `-n 1`, `-qo`, `--no-raise-error`) and the rest of the line."""
    letters = _SHORT.get(magic)
    options: dict[str, str] = {}
    rest = line
    while True:
        rest = rest.lstrip()
        token, _, after = rest.partition(" ")
        if token == "--":
            return options, after
        if token.startswith("--"):
            options[token], rest = "", after
            if token in _LONG_VALUED:
                options[token], _, rest = after.lstrip().partition(" ")
            continue
        if letters is None or not (len(token) > 1 and token[0] == "-" and token[1].isalpha()):
            return options, rest
        rest = after
        for i, letter in enumerate(token[1:], 1):
            if letter in letters:
                value = token[i + 1 :]
                if not value:
                    value, _, rest = rest.lstrip().partition(" ")
                options[letter] = value
                break
            options[letter] = ""


def _magic_code(magic: str, line: str, cell: str | None) -> tuple[list[str], list[str]]:
    """The code `magic` runs, in order, and the names it binds in the
    notebook's namespace besides (`%%capture NAME`, `%timeit -v NAME`)."""
    options, rest = _split_options(magic, line)
    if magic == "capture":
        return [cell or ""], rest.split()[:1]
    if magic == "timeit":
        return [rest, cell or ""], [options["v"]] if options.get("v") else []
    return ["\n".join(part for part in (rest, cell) if part)], []


def _as_python(code: str) -> ast.Module:
    """Parse the code a magic runs; IPython syntax in it (`!cmd`, `%magic`),
    which the magic itself transforms, is transformed as IPython does."""
    try:
        return ast.parse(code)
    except SyntaxError:
        from IPython.core.inputtransformer2 import TransformerManager  # only a cell IPython made gets here

        return ast.parse(TransformerManager().transform_cell(code))


def _chain(node: ast.expr) -> tuple[str, list[str]] | None:
    """The root name and the attributes after it of `x`, `x.a`, `x[k].b`
    (subscripts skipped); None when the expression is anything else or
    goes through a call (`x.copy().a`)."""
    attributes: list[str] = []
    while not isinstance(node, ast.Name):
        if isinstance(node, ast.Attribute):
            attributes.append(node.attr)
        elif not isinstance(node, ast.Subscript):
            return None
        node = node.value
    return node.id, attributes[::-1]


def _callee(func: ast.expr) -> str:
    """A callee as written: `f`, `np.random.shuffle`; `?.agg` for a method
    of an object no name chain gives (`df.groupby(k).agg`, `models[0].fit`);
    `?` for anything else (`fs[0]`, `make()`)."""
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return "?." + parts[0] if parts else "?"
    return ".".join([func.id, *reversed(parts)])


def _open_call(callee: str, node: ast.Call) -> OpenCall:
    def mode(arg: ast.expr) -> str:
        return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else "?"

    for keyword in node.keywords:
        if keyword.arg == "mode":
            return OpenCall(callee, mode(keyword.value), mode(keyword.value))
    first, second = [mode(a) for a in node.args[:2]] + [None] * (2 - len(node.args[:2]))
    return OpenCall(callee, first, second)


def _inplace(node: ast.Call) -> bool:
    """The call passes `inplace=` anything but a literal False or None."""
    return any(
        k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and k.value.value in (False, None))
        for k in node.keywords
    )


def _names_bound(target: ast.expr) -> list[str]:
    """The names a target binds directly (`y`, `a, *b`), not via attributes or subscripts."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Starred):
        return _names_bound(target.value)
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _names_bound(element)]
    return []


@dataclass
class _Facts:
    """What one piece of code does to objects it does not bind: the cell's
    own code (home 0), or a top-level plain def's body (home: the index of
    its scope in the stack)."""

    home: int
    changes: dict[str, set[str]] = field(default_factory=dict)  # root -> ways
    calls: set[str] = field(default_factory=set)
    stores: set[str] = field(default_factory=set)
    opens: set[OpenCall] = field(default_factory=set)
    free: set[str] = field(default_factory=set)  # a function's: its loads that reach the cell
    locals: set[str] = field(default_factory=set)  # a function's: names its body binds (so far)
    args: ast.arguments = field(default_factory=lambda: ast.arguments([], [], None, [], [], None, []))
    defined: int = 0  # a function's: how many defs of its name the cell has (their facts are merged)
    params: set[str] = field(default_factory=set)  # a function's: the parameters of all its definitions


def _function(facts: _Facts, free: frozenset[str]) -> Function:
    """The Function of a def's facts (``args``: of its last definition)."""
    args = facts.args
    positional = tuple(a.arg for a in args.posonlyargs + args.args)
    keywords = frozenset(a.arg for a in args.args + args.kwonlyargs)
    varargs = args.vararg.arg if args.vararg else None
    varkw = args.kwarg.arg if args.kwarg else None
    return Function(
        free=free,
        positional=positional,
        keywords=keywords,
        varargs=varargs,
        varkw=varkw,
        changes={n: frozenset(w) for n, w in facts.changes.items() if n in facts.params or n in facts.free},
        calls=frozenset(facts.calls),
        stores=frozenset(facts.stores),
        opens=frozenset(facts.opens),
    )


@dataclass
class _Scope:
    kind: _Kind
    bound: set[str] = field(default_factory=set)  # names bound in this scope
    loads: set[str] = field(default_factory=set)  # function: names loaded
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)
    hidden: list[str] = field(default_factory=list)  # cell: active `except ... as` names
    magic: str | None = None  # magic: the magic running it, when it binds in the notebook's namespace
    aliases: dict[str, frozenset[str]] = field(default_factory=dict)  # names bound here to inputs' objects


class _CellVisitor(ast.NodeVisitor):
    def __init__(self, future_annotations: bool) -> None:
        self._future_annotations = future_annotations  # annotations are never evaluated
        self._stack: list[_Scope] = [_Scope("cell")]
        self._reads: set[str] = set()
        self._writes: set[str] = set()
        self._deferred: set[str] = set()  # free names of function bodies
        self._imported: dict[str, str] = {}  # cell-level import bindings
        self._assigned: set[str] = set()  # cell-level bindings of any other kind
        self._deletes: set[str] = set()
        self._stars: list[str] = []
        self._shell_writes: dict[str, str] = {}
        self._magics: set[str] = set()
        # while visiting the code of a magic the cell runs: (the magic, whether
        # all its loads go to the notebook's namespace, not just its nested scopes')
        self._magic: tuple[str, bool] | None = None
        self._from_notebook: dict[str, str] = {}  # names such code loads from the notebook, to the magic
        self._facts = _Facts(0)  # where what the code being visited does goes: the cell's, or a function's
        self._cell_facts = self._facts
        self._functions: dict[str, _Facts] = {}  # the top-level plain defs
        self._bindings: dict[str, int] = {}  # cell-level names: how many times the cell binds each
        self._cell_loads: set[str] = set()  # cell-level names loaded by code that is not in _functions

    def result(self) -> CellNames:
        late = self._deferred - self._stack[0].bound
        reads = frozenset(self._reads | late)
        imports = {n: o for n, o in self._imported.items() if n in self._writes and n not in self._assigned}
        cell = self._cell_facts
        functions = self._functions_bound()
        needed = set(self._cell_loads)
        for name, facts in self._functions.items():
            if name not in functions:  # also bound otherwise: its body's needs are the cell's
                needed |= facts.free
        for name in self._cell_loads & functions.keys():
            needed |= functions[name].free
        return CellNames(
            reads,
            frozenset(self._writes),
            imports,
            deletes=frozenset(self._deletes & self._writes),
            star_imports=tuple(self._stars),
            shell_writes=self._shell_writes,
            magics=frozenset(self._magics),
            unseen={n: m for n, m in self._from_notebook.items() if n in self._stack[0].bound},
            changes={n: frozenset(ways) for n, ways in cell.changes.items() if n in reads},
            calls=frozenset(cell.calls),
            stores=frozenset(cell.stores),
            opens=frozenset(cell.opens),
            functions=functions,
            deferred=reads - needed,
        )

    def _functions_bound(self) -> dict[str, Function]:
        """The top-level plain defs whose names the cell binds no other way,
        their free names closed over the others they load."""
        own = {n: f for n, f in self._functions.items() if self._bindings.get(n) == f.defined}
        functions: dict[str, Function] = {}
        for name, facts in own.items():
            reached, todo = set(), [name]
            while todo:
                other = todo.pop()
                if other not in reached:
                    reached.add(other)
                    todo.extend(own[other].free & own.keys())
            functions[name] = _function(facts, frozenset().union(*(own[n].free for n in reached)))
        return functions

    @property
    def _scope(self) -> _Scope:
        return self._stack[-1]

    def _visit_all(self, nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            self.visit(node)

    def _resolve(self, name: str, start: int, deferred: bool) -> None:
        """Resolve a load of ``name`` made in scope ``start`` (or, when
        ``deferred``, a free name of a function whose parent is ``start``)."""
        for index in range(start, -1, -1):
            scope = self._stack[index]
            if scope.kind == "cell":
                if name in scope.hidden:
                    return  # an `except ... as` name: the handler's own
                if self._magic is not None and (self._magic[1] or deferred or start > 0):
                    self._from_notebook.setdefault(name, self._magic[0])
                if self._facts is self._cell_facts:
                    self._cell_loads.add(name)
                else:
                    self._facts.free.add(name)
                if deferred:
                    self._deferred.add(name)
                elif name not in scope.bound:
                    self._reads.add(name)
                return
            if name in scope.globals:  # the cell's name, loaded when the function runs
                self._resolve(name, 0, deferred=deferred or scope.kind == "function")
                return
            if scope.kind == "function":
                scope.loads.add(name)  # resolved when the function is popped
                return
            # class-body names are visible only to loads made in the class body
            if name in scope.bound and (scope.kind in ("comprehension", "magic") or (index == start and not deferred)):
                return

    def _load(self, name: str) -> None:
        self._resolve(name, len(self._stack) - 1, deferred=False)

    def _bind(self, name: str, index: int = -1, origin: str | None = None) -> None:
        scope = self._stack[index]
        scope.aliases.pop(name, None)
        if index % len(self._stack) == self._facts.home and name not in scope.globals:
            self._facts.locals.add(name)
        if scope.kind == "cell":
            if name in scope.hidden:
                return
            self._bindings[name] = self._bindings.get(name, 0) + 1
            if origin is None:
                self._assigned.add(name)
            elif self._imported.setdefault(name, origin) != origin:
                self._assigned.add(name)  # one name, two modules: not a plain import
            scope.bound.add(name)
            if not name.startswith("_"):
                self._writes.add(name)
        elif name in scope.globals:  # a write of the cell's name (when the function runs)
            self._reads.add(name)  # which the step then returns as it was, if the function does not run
            self._cell_loads.add(name)  # (so the defining cell needs it, whoever calls the function)
            if not name.startswith("_"):
                self._writes.add(name)
        elif name not in scope.nonlocals:
            scope.bound.add(name)

    def _delete(self, name: str) -> None:
        scope = self._scope
        if name in scope.hidden:
            return
        if (scope.kind == "cell" or name in scope.globals) and not name.startswith("_"):
            self._deletes.add(name)
        if scope.kind != "cell":
            self._bind(name)
        elif name not in scope.bound:
            self._reads.add(name)
            self._cell_loads.add(name)
            self._bind(name)

    def _roots(self, name: str) -> frozenset[str]:
        """The objects ``name`` is where the code being visited loads it, as
        keys of the current facts: the name itself when it is an input (the
        cell's read, or a function's parameter or free name), the inputs it
        aliases, or none (a name of the code's own)."""
        top = len(self._stack) - 1
        deferred = False
        for index in range(top, -1, -1):
            scope = self._stack[index]
            visible = scope.kind != "class" or (index == top and not deferred)
            if visible and name in scope.aliases:
                return scope.aliases[name]
            if name in scope.globals:
                return frozenset({name})  # the cell's name (loaded when the function runs)
            if index == self._facts.home and scope.kind == "function":
                return frozenset() if name in self._facts.locals else frozenset({name})
            if scope.kind == "cell":
                if name in scope.hidden or (name in scope.bound and not deferred):
                    return frozenset()
                return frozenset({name})  # a deferred load of a name the cell binds: no read (dropped at the end)
            if scope.kind == "function":
                if name in scope.bound or name in scope.nonlocals:
                    return frozenset()
                deferred = True
            elif visible and name in scope.bound:
                return frozenset()
        return frozenset()

    def _held(self, node: ast.expr) -> frozenset[str]:
        """The inputs whose objects the value of ``node`` is or holds: a
        chain (`x`, `x.a`, `x[k]`), `x.items()` and `x.values()`,
        `enumerate`, `zip` and `reversed` of such, displays (`[x, y]`, dict
        values) and starred of such; none for any other expression."""
        if isinstance(node, ast.Starred):
            return self._held(node.value)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return frozenset().union(*(self._held(e) for e in node.elts))
        if isinstance(node, ast.Dict):
            return frozenset().union(*(self._held(v) for v in node.values))
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("items", "values") and not node.args:
                return self._held(func.value)
            if isinstance(func, ast.Name) and func.id in ("enumerate", "zip", "reversed"):
                return frozenset().union(*(self._held(a) for a in node.args))
            return frozenset()
        chain = _chain(node)
        return self._roots(chain[0]) if chain else frozenset()

    def _alias(self, targets: Iterable[ast.expr], roots: frozenset[str]) -> None:
        """The names ``targets`` bind (just bound) now stand for ``roots``."""
        if roots:
            for target in targets:
                for name in _names_bound(target):
                    self._scope.aliases[name] = roots

    def _change(self, roots: Iterable[str], way: str) -> None:
        for root in roots:
            self._facts.changes.setdefault(root, set()).add(way)

    def _store(self, node: ast.Attribute | ast.Subscript) -> None:
        """A store into (or deletion from) the object ``node.value`` is."""
        chain = _chain(node.value)
        if chain is not None:
            self._facts.stores.add(".".join([chain[0], *chain[1]]))
            self._change(self._roots(chain[0]), "store")

    def _pop_function(self) -> None:
        scope = self._stack.pop()
        for name in scope.loads - scope.bound:
            self._resolve(name, len(self._stack) - 1, deferred=True)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._load(node.id)
        elif isinstance(node.ctx, ast.Store):
            self._bind(node.id)
        else:
            self._delete(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if not isinstance(node.ctx, ast.Load):
            self._store(node)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load):
            self._store(node)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        roots = self._held(node.value)
        self._visit_all(node.targets)
        self._alias(node.targets, roots)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            if node.target.id in self._scope.aliases:  # `y += [1]` changes the list y aliases
                self._change(self._scope.aliases[node.target.id], "store")
            self._load(node.target.id)
        self.visit(node.value)
        self.visit(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        in_function = self._scope.kind == "function"
        if not in_function and not self._future_annotations:  # annotations of function locals are not evaluated
            self.visit(node.annotation)
        if node.value is not None or not isinstance(node.target, ast.Name):
            self.visit(node.target)
        elif in_function:  # a bare `x: int` still makes x local
            self._bind(node.target.id)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        index = len(self._stack) - 1
        while self._stack[index].kind == "comprehension":
            index -= 1
        self._bind(node.target.id, index)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        roots = self._held(node.iter)
        self.visit(node.target)
        self._alias([node.target], roots)
        self._visit_all([*node.body, *node.orelse])

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                roots = self._held(item.context_expr)
                self.visit(item.optional_vars)
                self._alias([item.optional_vars], roots)
        self._visit_all(node.body)

    visit_AsyncWith = visit_With

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self._bind(alias.asname, origin=alias.name)
            else:
                top = alias.name.split(".")[0]
                self._bind(top, origin=top)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        prefix = "." * node.level + (f"{node.module}." if node.module else "")
        for alias in node.names:
            if alias.name == "*":
                self._stars.append(prefix.rstrip(".") or prefix)
            else:
                self._bind(alias.asname or alias.name, origin=prefix + alias.name)

    def visit_Global(self, node: ast.Global) -> None:
        if self._scope.kind != "cell":
            self._scope.globals.update(node.names)  # a read when loaded, a write when bound (see _bind)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self._scope.nonlocals.update(node.names)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        name, scope = node.name, self._scope
        if name is not None and scope.kind == "cell":  # Python unbinds it afterwards
            scope.hidden.append(name)
            self._visit_all(node.body)
            scope.hidden.remove(name)
            return
        if name is not None:
            self._bind(name)
        self._visit_all(node.body)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name is not None:
            self._bind(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name is not None:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self._visit_all([*node.keys, *node.patterns])
        if node.rest is not None:
            self._bind(node.rest)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        args = node.args
        self._visit_all([*args.defaults, *(d for d in args.kw_defaults if d is not None)])
        params = args.posonlyargs + args.args + args.kwonlyargs
        params += [a for a in (args.vararg, args.kwarg) if a is not None]
        scope = _Scope("function", bound={a.arg for a in params})
        if isinstance(node, ast.Lambda):
            body: list[ast.AST] = [node.body]
        else:
            if not self._future_annotations:
                annotations = [a.annotation for a in params] + [node.returns]
                self._visit_all(a for a in annotations if a is not None)
            self._bind(node.name)
            body = list(node.body)
        outer = self._facts
        if isinstance(node, ast.FunctionDef) and not node.decorator_list and len(self._stack) == 1:
            self._facts = self._functions.setdefault(node.name, _Facts(home=1))
            self._facts.defined += 1
            self._facts.args, self._facts.locals = args, set()
            self._facts.params |= scope.bound
        self._stack.append(scope)
        self._visit_all(body)
        self._pop_function()
        self._facts = outer

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._visit_all(node.decorator_list)
        self._visit_function(node)

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_all([*node.decorator_list, *node.bases, *node.keywords])
        self._stack.append(_Scope("class"))
        self._visit_all(node.body)
        self._stack.pop()
        self._bind(node.name)

    def _visit_comprehension(self, generators: list[ast.comprehension], results: list[ast.expr]) -> None:
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        roots = self._held(generators[0].iter)
        self._stack.append(_Scope("comprehension"))
        for i, generator in enumerate(generators):
            if i > 0:
                self.visit(generator.iter)
                roots = self._held(generator.iter)
            self.visit(generator.target)
            self._alias([generator.target], roots)
            self._visit_all(generator.ifs)
        self._visit_all(results)
        self._stack.pop()

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._visit_comprehension(node.generators, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node.generators, [node.key, node.value])

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        callee = _callee(node.func)
        self._facts.calls.add(callee)
        if callee == "open" or callee.endswith(".open"):
            self._facts.opens.add(_open_call(callee, node))
        if isinstance(node.func, ast.Attribute) and (chain := _chain(node.func.value)) is not None:
            root, path = chain
            way = "call:" + ".".join([*path, node.func.attr]) + (":inplace" if _inplace(node) else "")
            self._change(self._roots(root), way)
        where = ""
        for i, arg in enumerate(node.args):
            where = "*" if where == "*" or isinstance(arg, ast.Starred) else str(i)
            self._change(self._held(arg), f"arg:{callee}:{where}")
        for keyword in node.keywords:
            way = f"out:{callee}" if keyword.arg == "out" else f"arg:{callee}:{keyword.arg or '*'}"
            self._change(self._held(keyword.value), way)
        call = _magic_call(node)
        if call is not None:
            self._visit_magic(node, *call)

    def _visit_magic(self, node: ast.Call, magic: str, line: str, cell: str | None) -> None:
        """Visit the code a magic runs, where the magic runs it."""
        self._magics.add(magic)
        lands = _CODE_MAGICS[magic][cell is not None]
        shown = ("%%" if cell is not None else "%") + magic
        codes, named = _magic_code(magic, line, cell)
        try:
            trees = [_as_python(code) for code in codes]
        except SyntaxError as e:
            raise SyntaxError(f"the code {shown} runs is not valid Python: {e.msg}", ("", node.lineno, 0, "")) from None
        outer = self._magic
        if len(self._stack) == 1 and lands != "dropped":  # (%timeit puts the step's names in its globals)
            self._magic = (shown, lands == "notebook")
        if lands != "step":
            self._stack.append(_Scope("magic", magic=shown if lands == "notebook" else None))
        for tree in trees:
            self._visit_all(tree.body)
        self._magic = outer
        if lands != "step":
            scope = self._stack.pop()
            named += sorted(scope.bound) if scope.magic else []
        for name in named:
            if not name.startswith("_"):
                self._shell_writes.setdefault(name, shown)

    def visit_TypeAlias(self, node: Any) -> None:  # ast.TypeAlias, Python >= 3.12
        name = node.name
        self._bind(name.id)
        self._stack.append(_Scope("function"))  # the value is evaluated lazily
        self.visit(node.value)
        self._pop_function()
