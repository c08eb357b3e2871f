"""Infer which names a notebook cell reads and writes.

``analyze(source, future_annotations)`` parses one cell (plain Python, after
IPython's ``transform_cell``) and returns a :class:`CellNames`:

* ``writes``: names bound at the cell's top level by any binding form
  (assignments of every shape, imports, ``def``, ``class``, ``for``/``with``
  targets, walrus (also inside a comprehension), ``match`` captures), plus
  names a nested scope declares ``global`` and binds, and names removed by
  ``del`` (also in ``deletes``). Names starting with ``_`` are cell-private
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
new scope is pushed.
"""

from __future__ import annotations

import ast
import builtins
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CellNames", "analyze", "is_builtin"]

_Kind = Literal["cell", "class", "function", "comprehension", "magic"]


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
    return visitor.result()


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


@dataclass
class _Scope:
    kind: _Kind
    bound: set[str] = field(default_factory=set)  # names bound in this scope
    loads: set[str] = field(default_factory=set)  # function: names loaded
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)
    hidden: list[str] = field(default_factory=list)  # cell: active `except ... as` names
    magic: str | None = None  # magic: the magic running it, when it binds in the notebook's namespace


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

    def result(self) -> CellNames:
        late = self._deferred - self._stack[0].bound
        imports = {n: o for n, o in self._imported.items() if n in self._writes and n not in self._assigned}
        return CellNames(
            frozenset(self._reads | late),
            frozenset(self._writes),
            imports,
            deletes=frozenset(self._deletes & self._writes),
            star_imports=tuple(self._stars),
            shell_writes=self._shell_writes,
            magics=frozenset(self._magics),
            unseen={n: m for n, m in self._from_notebook.items() if n in self._stack[0].bound},
        )

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
        if scope.kind == "cell":
            if name in scope.hidden:
                return
            if origin is None:
                self._assigned.add(name)
            elif self._imported.setdefault(name, origin) != origin:
                self._assigned.add(name)  # one name, two modules: not a plain import
            scope.bound.add(name)
            if not name.startswith("_"):
                self._writes.add(name)
        elif name in scope.globals:  # a write of the cell's name (when the function runs)
            self._reads.add(name)  # which the step then returns as it was, if the function does not run
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
            self._bind(name)

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

    def visit_Assign(self, node: ast.Assign) -> None:
        self._visit_all([node.value, *node.targets])

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
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
        self._visit_all([node.iter, node.target, *node.body, *node.orelse])

    visit_AsyncFor = visit_For

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
        self._stack.append(scope)
        self._visit_all(body)
        self._pop_function()

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
        self._stack.append(_Scope("comprehension"))
        for i, generator in enumerate(generators):
            if i > 0:
                self.visit(generator.iter)
            self._visit_all([generator.target, *generator.ifs])
        self._visit_all(results)
        self._stack.pop()

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._visit_comprehension(node.generators, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node.generators, [node.key, node.value])

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
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
