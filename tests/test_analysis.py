"""Spec-style tests for nbpar.analysis: what a cell reads and writes."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.inputtransformer2 import TransformerManager

from nbpar.analysis import analyze

CASES = [
    # -- assignments ---------------------------------------------------------
    ("assign-constant", "x = 1", set(), {"x"}),
    ("assign-chain", "a = b = 1", set(), {"a", "b"}),
    ("assign-from-name", "y = x", {"x"}, {"y"}),
    ("bind-then-use", "x = 1\ny = x", set(), {"x", "y"}),
    ("use-then-bind", "y = x\nx = 1", {"x"}, {"x", "y"}),
    ("self-update", "x = x + 1", {"x"}, {"x"}),
    ("tuple-unpack", "a, b = pair", {"pair"}, {"a", "b"}),
    ("nested-starred-unpack", "[a, (b, *c)] = v", {"v"}, {"a", "b", "c"}),
    ("starred-unpack", "a, *b = items", {"items"}, {"a", "b"}),
    ("augmented", "x += 1", {"x"}, {"x"}),
    ("augmented-after-bind", "x = 0\nx += y", {"y"}, {"x"}),
    ("annotated-with-value", "x: int = n", {"int", "n"}, {"x"}),
    ("bare-annotation", "x: int", {"int"}, set()),
    ("walrus", "if (n := size()) > 3:\n    m = n", {"size"}, {"n", "m"}),
    # -- attribute and subscript targets -------------------------------------
    ("attribute-target", "df.x = 1", {"df"}, set()),
    ("subscript-target", "d[k] = v", {"d", "k", "v"}, set()),
    ("augmented-subscript", "a[0] += 1", {"a"}, set()),
    ("annotated-attribute", "obj.attr: int = 1", {"obj", "int"}, set()),
    # -- imports -------------------------------------------------------------
    ("import-dotted", "import os.path", set(), {"os"}),
    ("import-as", "import numpy.linalg as la", set(), {"la"}),
    ("from-import-as", "from m import x as y, z", set(), {"y", "z"}),
    # -- private names -------------------------------------------------------
    ("private-not-written", "_tmp = 1\ny = _tmp", set(), {"y"}),
    ("private-read", "y = _cache", {"_cache"}, {"y"}),
    # -- control flow --------------------------------------------------------
    ("for-target", "for i in range(n):\n    total = i", {"range", "n"}, {"i", "total"}),
    ("for-iter-before-target", "for x in x:\n    pass", {"x"}, {"x"}),
    ("if-binding-counts", "if c:\n    x = 1\nprint(x)", {"c", "print"}, {"x"}),
    ("while", "while x < 3:\n    x = x + 1", {"x"}, {"x"}),
    ("with-as", "with open(p) as fh:\n    data = fh.read()", {"open", "p"}, {"fh", "data"}),
    ("with-tuple-target", "with ctx() as (a, b):\n    pass", {"ctx"}, {"a", "b"}),
    (
        "try-except-else-finally",
        "try:\n    v = f()\nexcept E:\n    v = None\nelse:\n    ok = v\nfinally:\n    done = 1",
        {"f", "E"},
        {"v", "ok", "done"},
    ),
    (
        "except-as-is-local",
        "try:\n    pass\nexcept E as e:\n    msg = str(e)",
        {"E", "str"},
        {"msg"},
    ),
    ("except-as-reassigned", "try:\n    pass\nexcept E as e:\n    e = 2", {"E"}, set()),
    ("except-as-in-lambda", "try:\n    pass\nexcept E as e:\n    f = lambda: e", {"E"}, {"f"}),
    (
        "except-as-in-def",
        "try:\n    pass\nexcept E as e:\n    def g():\n        return str(e)",
        {"E", "str"},
        {"g"},
    ),
    ("except-as-outside-handler-is-read", "try:\n    pass\nexcept E as e:\n    pass\nf = lambda: e", {"E", "e"}, {"f"}),
    ("del-unbound-name", "del x", {"x"}, {"x"}),
    ("del-bound-name", "x = 1\ndel x", set(), {"x"}),
    ("del-subscript", "del d[k]", {"d", "k"}, set()),
    # -- functions and lambdas (deferred) -------------------------------------
    ("def-binds-name", "def f(a):\n    return a", set(), {"f"}),
    ("def-free-name", "def f():\n    return g()", {"g"}, {"f"}),
    ("def-free-bound-later", "def f():\n    return y\ny = 1", set(), {"f", "y"}),
    ("def-local-not-read", "def f():\n    z = 1\n    return z", set(), {"f"}),
    ("def-recursive", "def f(n):\n    return f(n - 1)", set(), {"f"}),
    (
        "def-params-all-kinds",
        "def f(a, /, b, *c, d, **e):\n    return a, b, c, d, e",
        set(),
        {"f"},
    ),
    (
        "def-decorator-default-annotations",
        "@deco\ndef f(a: T = dflt, *, b=kw) -> R:\n    pass",
        {"deco", "T", "dflt", "kw", "R"},
        {"f"},
    ),
    ("def-decorator-immediate", "@deco\ndef f():\n    pass\ndeco = 1", {"deco"}, {"f", "deco"}),
    ("def-local-annotation-not-read", "def f():\n    x: Hidden = 1\n    return x", set(), {"f"}),
    (
        "future-annotations-def",
        "from __future__ import annotations\ndef f(a: Foo = d) -> Bar:\n    pass",
        {"d"},
        {"annotations", "f"},
    ),
    (
        "future-annotations-assign",
        '"doc"\nfrom __future__ import annotations\nx: Foo = n\nclass C:\n    y: Bar',
        {"n"},
        {"annotations", "x", "C"},
    ),
    (
        "async-def",
        "async def f():\n    await g()\n    async for i in s:\n        pass\n    async with m as c:\n        pass",
        {"g", "m", "s"},
        {"f"},
    ),
    ("lambda-free-name", "f = lambda a: a + b", {"b"}, {"f"}),
    ("lambda-free-bound-later", "f = lambda: b\nb = 2", set(), {"f", "b"}),
    ("lambda-default-immediate", "f = lambda a=d: a\nd = 1", {"d"}, {"f", "d"}),
    (
        "nested-function-local",
        "def outer():\n    v = 1\n    def inner():\n        return v + w\n    return inner",
        {"w"},
        {"outer"},
    ),
    (
        "nonlocal",
        "def outer():\n    n = 0\n    def inc():\n        nonlocal n\n        n += 1\n    return inc",
        set(),
        {"outer"},
    ),
    (
        "global-in-function",
        "def f():\n    global counter\n    counter = 1",
        {"counter"},
        {"counter", "f"},
    ),
    ("global-private", "def f():\n    global _hidden\n    _hidden = 1", {"_hidden"}, {"f"}),
    ("global-top-level-noop", "global x\nx = 1", set(), {"x"}),
    ("global-only-read", "def f():\n    global x\n    return x", {"x"}, {"f"}),
    ("global-read-bound-later", "def f():\n    global x\n    return x\nx = 1", set(), {"f", "x"}),
    ("global-augmented", "def f():\n    global n\n    n += 1", {"n"}, {"f", "n"}),
    ("global-deleted", "def f():\n    global x\n    del x", {"x"}, {"f", "x"}),
    ("global-def-binds", "def f():\n    global g\n    def g():\n        pass", {"g"}, {"f", "g"}),
    (
        "global-in-nested-function-read",
        "def f():\n    def g():\n        global x\n        return x\n    return g",
        {"x"},
        {"f"},
    ),
    ("global-in-class-body-read", "class C:\n    global x\n    y = x", {"x"}, {"C"}),
    # -- classes -------------------------------------------------------------
    ("class-binds-name", "class C:\n    pass", set(), {"C"}),
    ("class-body-attrs-not-written", "class C:\n    a = 1\n    b = a + k", {"k"}, {"C"}),
    (
        "class-bases-keywords",
        "@deco\nclass C(Base, metaclass=Meta):\n    pass",
        {"Base", "Meta", "deco"},
        {"C"},
    ),
    ("class-name-bound-after-body", "class C:\n    x = C", {"C"}, {"C"}),
    ("class-body-immediate", "class C:\n    x = y\ny = 1", {"y"}, {"C", "y"}),
    ("method-deferred", "class C:\n    def m(self):\n        return y\ny = 1", set(), {"C", "y"}),
    (
        "method-does-not-see-class-names",
        "class C:\n    a = 1\n    def m(self):\n        return a",
        {"a"},
        {"C"},
    ),
    # -- comprehensions ------------------------------------------------------
    ("listcomp-target-local", "ys = [x * k for x in xs]", {"xs", "k"}, {"ys"}),
    ("setcomp", "s = {x for x in xs if x > lo}", {"xs", "lo"}, {"s"}),
    ("dictcomp", "d = {k: v for k, v in items}", {"items"}, {"d"}),
    ("genexp", "t = sum(x for x in xs)", {"sum", "xs"}, {"t"}),
    ("nested-generators", "p = [(a, b) for a in A for b in a]", {"A"}, {"p"}),
    ("comprehension-immediate", "ys = [k for _ in xs]\nk = 1", {"xs", "k"}, {"ys", "k"}),
    ("walrus-in-comprehension", "ys = [last := x for x in xs]", {"xs"}, {"ys", "last"}),
    ("lambda-in-comprehension", "fs = [lambda: i for i in range(3)]", {"range"}, {"fs"}),
    ("comprehension-in-class", "class C:\n    a = 1\n    b = [a for _ in r]", {"a", "r"}, {"C"}),
    # -- match ---------------------------------------------------------------
    ("match-capture", "match v:\n    case a:\n        pass", {"v"}, {"a"}),
    (
        "match-class-keyword",
        "match v:\n    case Point(x=a, y=0):\n        pass",
        {"Point", "v"},
        {"a"},
    ),
    ("match-sequence-star", "match v:\n    case [a, *rest]:\n        pass", {"v"}, {"a", "rest"}),
    (
        "match-mapping-rest",
        "match v:\n    case {'k': val, **kw}:\n        pass",
        {"v"},
        {"kw", "val"},
    ),
    (
        "match-as",
        "match v:\n    case str() as s if s:\n        out = s",
        {"str", "v"},
        {"out", "s"},
    ),
    ("match-value-pattern", "match v:\n    case Color.RED:\n        pass", {"v", "Color"}, set()),
    # -- misc ----------------------------------------------------------------
    ("fstring", "msg = f'{name!r:>{width}}'", {"name", "width"}, {"msg"}),
    ("builtins-are-reads", "print(len(xs))", {"print", "len", "xs"}, set()),
    ("builtin-shadowed", "len = 3\nprint(len)", {"print"}, {"len"}),
    ("keyword-args-not-names", "f(a=1).b", {"f"}, set()),
]


@pytest.mark.parametrize(
    ("source", "reads", "writes"),
    [pytest.param(src, r, w, id=case_id) for case_id, src, r, w in CASES],
)
def test_cases(source: str, reads: set[str], writes: set[str]) -> None:
    result = analyze(source)
    assert (result.reads, result.writes) == (reads, writes)


def test_case_ids_unique() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


def test_syntax_error_propagates() -> None:
    with pytest.raises(SyntaxError):
        analyze("x = = 1")


def test_private_names_readable_not_written() -> None:
    result = analyze("_a = _b\n_c, d = _a, _e")
    assert result.writes == {"d"}
    assert result.reads == {"_b", "_e"}


def test_result_is_frozen() -> None:
    result = analyze("x = 1")
    assert isinstance(result.reads, frozenset) and isinstance(result.writes, frozenset)
    with pytest.raises(AttributeError):
        result.reads = frozenset()  # type: ignore[misc]


def test_realistic_cell() -> None:
    source = textwrap.dedent(
        """
        import pandas as pd

        def clean(frame, cols=DEFAULT_COLS):
            return frame[cols].dropna().pipe(normalize)

        df = clean(pd.read_csv(path))
        summary = {c: df[c].mean() for c in df.columns}
        """
    )
    result = analyze(source)
    assert result.reads == {"DEFAULT_COLS", "normalize", "path"}
    assert result.writes == {"pd", "clean", "df", "summary"}
    assert result.imports == {"pd": "pandas"}


_POOL = [f"v{i}" for i in range(5)]
_LINE = st.tuples(st.sampled_from(_POOL), st.sampled_from(_POOL), st.sampled_from(_POOL))


@settings(database=None)
@given(st.lists(_LINE, max_size=12))
def test_straight_line_programs(lines: list[tuple[str, str, str]]) -> None:
    source = "\n".join(f"{k} = {i} + {j} + 1" for k, i, j in lines)
    assigned: set[str] = set()
    expected_reads: set[str] = set()
    for k, i, j in lines:
        expected_reads |= {i, j} - assigned
        assigned.add(k)
    result = analyze(source)
    assert result.reads == expected_reads
    assert result.writes == assigned


@pytest.mark.parametrize(
    "source, imports",
    [
        ("import numpy as np", {"np": "numpy"}),
        ("import os.path", {"os": "os"}),
        ("import os.path as osp", {"osp": "os.path"}),
        ("from os import path", {"path": "os.path"}),
        ("from . import sibling", {"sibling": ".sibling"}),
        ("import numpy as np\nnp = 3", {}),
        ("import numpy as np\nimport pandas as np", {}),
        ("import time\nfor time in []: pass", {}),
        ("import _private", {}),
    ],
)
def test_imports_are_told_apart_from_other_writes(source: str, imports: dict[str, str]) -> None:
    assert dict(analyze(source).imports) == imports


def test_future_annotations_from_the_notebook() -> None:
    source = "def f(a: Foo) -> Bar:\n    pass\nx: Baz = 1"
    assert analyze(source).reads == {"Foo", "Bar", "Baz"}
    assert analyze(source, future_annotations=True).reads == set()


def test_star_imports_are_listed_and_bind_nothing() -> None:
    result = analyze("from math import *\nif c:\n    from .pkg.mod import *\nfrom .. import *")
    assert result.star_imports == ("math", ".pkg.mod", "..")
    assert result.writes == set()


def test_deletes_are_told_apart() -> None:
    result = analyze("del a\nb = 1\ndel b\nc = 2\ndel _p\ndef f():\n    global g\n    del g")
    assert result.deletes == {"a", "b", "g"}
    assert result.writes == {"a", "b", "c", "f", "g"}


_IPYTHON = TransformerManager()

# (id, cell as IPython syntax, reads, writes, names bound in the notebook's namespace)
MAGIC_CASES = [
    ("time-line", "%time y = x + 1", {"x"}, {"y"}, set()),
    ("time-line-option", "%time --no-raise-error y = x", {"x"}, {"y"}, set()),
    ("time-line-after-binding", "x = 1\n%time y = x", set(), {"x", "y"}, set()),
    ("time-line-in-loop", "for i in r:\n    %time t = i", {"r"}, {"i", "t"}, set()),
    ("time-line-ipython-inside", "%time out = !ls", set(), {"out"}, set()),
    ("time-expression", "t = %time f(a)", {"f", "a"}, {"t"}, set()),
    ("time-cell", "%%time\ny = x + 1", {"x"}, set(), {"y"}),
    ("time-cell-reads-only", "%%time\nf(x)", {"f", "x"}, set(), set()),
    ("timeit-line", "%timeit -n1 -r 3 -q y = [v for v in x]", {"x"}, set(), set()),
    ("timeit-result", "t = %timeit -o f(x)", {"f", "x"}, {"t"}, set()),
    ("timeit-save", "%timeit -v res f(x)", {"f", "x"}, set(), {"res"}),
    ("timeit-cell", "%%timeit -n1 s = setup()\ny = s + x", {"setup", "x"}, set(), set()),
    ("prun-line", "%prun -s cumulative -q y = f(x)", {"f", "x"}, set(), {"y"}),
    ("prun-cell", "%%prun -l 5\ng(x)", {"g", "x"}, set(), set()),
    ("capture-reads-only", "%%capture\n!pip install nothing\nfit(model)", {"fit", "model"}, set(), set()),
    ("capture-binds", "%%capture out --no-stderr\ny = f()", {"f"}, set(), {"out", "y"}),
    ("capture-private", "%%capture\n_tmp = f()", {"f"}, set(), set()),
    ("debug-line", "%debug --breakpoint f.py:3 y = f()", {"f"}, {"y"}, set()),
    ("other-magic", "%matplotlib inline\ny = 1", set(), {"y"}, set()),
]


@pytest.mark.parametrize(
    ("cell", "reads", "writes", "in_notebook"),
    [pytest.param(cell, r, w, n, id=case_id) for case_id, cell, r, w, n in MAGIC_CASES],
)
def test_code_run_by_magics(cell: str, reads: set[str], writes: set[str], in_notebook: set[str]) -> None:
    result = analyze(_IPYTHON.transform_cell(cell))
    assert (result.reads - {"get_ipython"}, result.writes, set(result.shell_writes)) == (reads, writes, in_notebook)


def test_magics_are_named() -> None:
    result = analyze(_IPYTHON.transform_cell("%time a = 1\n%debug\n%matplotlib inline"))
    assert result.magics == {"time", "debug"}
    assert dict(analyze(_IPYTHON.transform_cell("%%capture c\nx = 1")).shell_writes) == {
        "c": "%%capture",
        "x": "%%capture",
    }


def test_code_of_a_magic_that_is_not_python_is_a_syntax_error() -> None:
    with pytest.raises(SyntaxError, match="the code %%time runs is not valid Python") as info:
        analyze("x = 1\n" + _IPYTHON.transform_cell("%%time\ny = = 2"))
    assert info.value.lineno == 2


@pytest.mark.parametrize(
    ("cell", "unseen"),
    [
        ("k = 2\n%time s = sum(x * k for x in range(3))", {"k": "%time"}),  # the genexp sees the notebook's k
        ("%time k = 1; f = lambda: k", {"k": "%time"}),
        ("%time f = lambda: k\nk = 1", {"k": "%time"}),
        ("_k = 1\n%prun g(_k)", {"_k": "%prun"}),  # %prun runs all its code in the notebook's namespace
        ("%time s = sum(x * k for x in r)", {}),  # k from the notebook: the same value there
        ("k = 1\n%time s = [x for x in k]", {}),  # the first iterable is evaluated in the step's namespace
        ("k = 1\n%time s = k + 1", {}),
        ("k = 1\n%timeit [x * k for x in r]", {}),  # %timeit copies the step's names into its globals
    ],
)
def test_names_a_magic_would_take_from_the_notebook(cell: str, unseen: dict[str, str]) -> None:
    assert dict(analyze(_IPYTHON.transform_cell(cell)).unseen) == unseen


# (id, cell, the ways it may change each read in place)
CHANGE_CASES = [
    # -- stores --------------------------------------------------------------
    ("new-column", "df['c'] = df['a'] * 2", {"df": {"store"}}),
    ("attribute", "obj.attr = 1", {"obj": {"store"}}),
    ("augmented-subscript", "counts[k] += 1", {"counts": {"store"}}),
    ("deep-store", "x.a.b[k] = v", {"x": {"store"}}),
    ("del-item", "del d[k]", {"d": {"store"}}),
    ("del-attribute", "del obj.cache", {"obj": {"store"}}),
    ("store-in-loop", "for i in range(3):\n    if i:\n        a[i] = i", {"a": {"store"}}),
    ("store-in-with-try", "with lock:\n    try:\n        d['k'] = 1\n    finally:\n        pass", {"d": {"store"}}),
    ("store-as-for-target", "for row[0] in values:\n    pass", {"row": {"store"}}),
    (
        "call-in-comprehension",
        "[d.__setitem__(k, 1) for k in ks]",
        {"d": {"call:__setitem__"}, "ks": {"arg:d.__setitem__:0"}},
    ),
    ("store-in-comprehension-target", "[0 for d[0] in ks]", {"d": {"store"}}),
    ("own-object-not-a-change", "df = load()\ndf['c'] = 1", {}),
    ("rebinding-is-not-a-change", "n = n + 1\nitems = items + [2]", {}),
    # -- method calls --------------------------------------------------------
    ("method", "items.append(2)", {"items": {"call:append"}}),
    ("inplace", "final.dropna(inplace=True)", {"final": {"call:dropna:inplace"}}),
    (
        "inplace-variable",
        "df.fillna(0, inplace=flag)",
        {"df": {"call:fillna:inplace"}, "flag": {"arg:df.fillna:inplace"}},
    ),
    ("inplace-false", "df2 = df.fillna(0, inplace=False)", {"df": {"call:fillna"}}),
    ("attribute-path", "df['a'].str.lower()", {"df": {"call:str.lower"}}),
    ("method-on-item", "groups[0].append(x)", {"groups": {"call:append"}, "x": {"arg:?.append:0"}}),
    ("chain-through-call-is-the-result's", "df.groupby('k').mean()", {"df": {"call:groupby"}}),
    ("model-fit", "model.fit(X, y)", {"model": {"call:fit"}, "X": {"arg:model.fit:0"}, "y": {"arg:model.fit:1"}}),
    ("generator-draw", "sample = rng.normal(size=3)", {"rng": {"call:normal"}}),
    ("module-call", "np.random.seed(0)", {"np": {"call:random.seed"}}),
    # -- arguments -----------------------------------------------------------
    ("arg-positional", "f(x, 1, y)", {"x": {"arg:f:0"}, "y": {"arg:f:2"}}),
    ("arg-keyword", "sns.heatmap(data=corr)", {"corr": {"arg:sns.heatmap:data"}, "sns": {"call:heatmap"}}),
    ("arg-starred", "f(a, *rest, b)", {"a": {"arg:f:0"}, "rest": {"arg:f:*"}, "b": {"arg:f:*"}}),
    ("arg-double-starred", "f(**opts)", {"opts": {"arg:f:*"}}),
    (
        "arg-out",
        "np.add(a, b, out=c)",
        {"np": {"call:add"}, "a": {"arg:np.add:0"}, "b": {"arg:np.add:1"}, "c": {"out:np.add"}},
    ),
    ("arg-part-of", "f(df['a'], obj.x)", {"df": {"arg:f:0"}, "obj": {"arg:f:1"}}),
    (
        "arg-in-display",
        "f([a, (b, c)], {'k': d})",
        {"a": {"arg:f:0"}, "b": {"arg:f:0"}, "c": {"arg:f:0"}, "d": {"arg:f:1"}},
    ),
    ("arg-through-call-is-not-held", "f(g(x))", {"x": {"arg:g:0"}}),
    ("arg-unknown-callee", "fs[0](x)", {"x": {"arg:?:0"}}),
    ("arg-method-of-result", "df.groupby('k').agg(fn)", {"df": {"call:groupby"}, "fn": {"arg:?.agg:0"}}),
    ("builtin-call", "print(items)", {"items": {"arg:print:0"}}),
    # -- aliases -------------------------------------------------------------
    ("alias-assign", "y = x\ny.append(1)", {"x": {"call:append"}}),
    ("alias-part", "col = df['a']\ncol[0] = 1", {"df": {"store"}}),
    ("alias-of-alias", "y = x\nz = y.b\nz.c = 1", {"x": {"store"}}),
    ("alias-rebound", "y = x\ny = []\ny.append(1)", {}),
    ("alias-for", "for row in rows:\n    row.append(0)", {"rows": {"call:append"}}),
    ("alias-for-items", "for k, v in d.items():\n    v.clear()", {"d": {"call:items", "call:clear"}}),
    ("alias-for-enumerate", "for i, r in enumerate(rows):\n    r[0] = i", {"rows": {"arg:enumerate:0", "store"}}),
    ("alias-with", "with x as y:\n    y.close()", {"x": {"call:close"}}),
    ("alias-comprehension", "[r.pop() for r in rows]", {"rows": {"call:pop"}}),
    ("alias-augmented", "y = x\ny += [1]", {"x": {"store"}}),
    ("alias-tuple", "a, b = x, z\nb.sort()", {"x": {"call:sort"}, "z": {"call:sort"}}),
    ("no-alias-through-call", "y = list(x)\ny.append(1)", {"x": {"arg:list:0"}}),
    # -- function bodies are not the cell's; lambdas are --------------------
    ("def-body-not-the-cell's", "def f():\n    items.append(1)", {}),
    (
        "lambda-body-is-the-cell's",
        "df.apply(lambda r: items.append(r))",
        {"df": {"call:apply"}, "items": {"call:append"}},
    ),
    ("method-body-is-the-cell's", "class C:\n    def m(self):\n        log.append(self)", {"log": {"call:append"}}),
]


@pytest.mark.parametrize(
    ("source", "changes"),
    [pytest.param(src, c, id=case_id) for case_id, src, c in CHANGE_CASES],
)
def test_changes_in_place(source: str, changes: dict[str, set[str]]) -> None:
    result = analyze(source)
    assert {n: set(w) for n, w in result.changes.items() if w} == changes
    assert set(result.changes) <= result.reads


def test_change_case_ids_unique() -> None:
    ids = [case[0] for case in CHANGE_CASES]
    assert len(ids) == len(set(ids))


def test_calls_are_the_cells_own_as_written() -> None:
    source = "np.random.seed(0)\nplt.plot(x)\ndf.groupby('k').plot()\nfs[0]()\n"
    source += "def f():\n    os.chdir(p)\ng = lambda: open(q)"
    assert analyze(source).calls == {"np.random.seed", "plt.plot", "df.groupby", "?.plot", "?", "open"}


def test_stores_are_objects_as_written() -> None:
    source = (
        "import os\nos.environ['A'] = '1'\npd.options.display.max_rows = 5\nplt.rcParams['figure.dpi'] = 90\nx[0].a = 1"
    )
    assert analyze(source).stores == {"os.environ", "pd.options.display", "plt.rcParams", "x"}


@pytest.mark.parametrize(
    ("source", "opens"),
    [
        ("open(p)", {("open", "?", None)}),
        ("open('data.csv')", {("open", "data.csv", None)}),
        ("open(p, 'w')", {("open", "?", "w")}),
        ("open(p, mode=m)", {("open", "?", "?")}),
        ("gzip.open(p, 'rt')", {("gzip.open", "?", "rt")}),
        ("path.open('a')", {("path.open", "a", None)}),
    ],
)
def test_open_calls_keep_their_possible_modes(source: str, opens: set[tuple[str, str | None, str | None]]) -> None:
    assert {(o.callee, o.first, o.second) for o in analyze(source).opens} == opens


def test_a_function_records_its_free_names_parameters_and_changes() -> None:
    source = textwrap.dedent(
        """
        def add(row, /, total, *rest, scale=SCALE, key, **opts):
            history.append(row)
            total[key] = helper(row) * scale
            local = []
            local.append(1)
            for r in rest:
                r.sort()
            return {k: opts[k] for k in LIMITS}

        def helper(v):
            np.random.shuffle(v)
            with open(OUT, 'w') as fh:
                fh.write(str(v))
            return v
        """
    )
    result = analyze(source)
    add, helper = result.functions["add"], result.functions["helper"]
    assert add.free == {"history", "helper", "LIMITS", "np", "open", "OUT", "str"}  # through helper
    assert (add.positional, add.keywords, add.varargs, add.varkw) == (
        ("row", "total"),
        {"total", "scale", "key"},
        "rest",
        "opts",
    )
    assert {n: set(w) for n, w in add.changes.items()} == {
        "history": {"call:append"},
        "row": {"arg:history.append:0", "arg:helper:0"},
        "total": {"store"},
        "rest": {"call:sort"},
    }
    assert helper.changes["v"] == {"arg:np.random.shuffle:0", "arg:str:0"}
    assert helper.calls == {"np.random.shuffle", "open", "fh.write", "str"}
    assert {o.second for o in helper.opens} == {"w"}
    assert result.reads == {"SCALE", "history", "LIMITS", "np", "open", "OUT", "str"}
    assert result.changes == {} and result.calls == set()  # the bodies run when the functions are called
    assert result.deferred == {"history", "LIMITS", "np", "open", "OUT", "str"}  # SCALE: a default, read now


@pytest.mark.parametrize(
    ("parameter", "where", "receiving"),
    [
        ("f", "0", {"a"}),
        ("f", "1", {"b"}),
        ("f", "2", {"more"}),
        ("f", "b", {"b"}),
        ("f", "c", {"c"}),
        ("f", "a", {"kw"}),
        ("f", "zz", {"kw"}),
        ("f", "*", {"a", "b", "c", "more", "kw"}),
        ("g", "5", set()),
        ("g", "x", set()),
    ],
)
def test_which_parameters_receive_an_argument(parameter: str, where: str, receiving: set[str]) -> None:
    functions = analyze("def f(a, /, b, *more, c, **kw):\n    pass\ndef g(x, /):\n    pass").functions
    assert functions[parameter].receiving(where) == receiving


@pytest.mark.parametrize(
    ("source", "functions", "deferred"),
    [
        ("def f():\n    return K", {"f"}, {"K"}),
        ("def f():\n    return K\ny = f()", {"f"}, set()),  # the cell calls f: it needs K now
        ("def f():\n    return g()\ndef g():\n    return K\nf()", {"f", "g"}, set()),  # through g
        ("def f():\n    return K\nh = [f]", {"f"}, set()),  # referenced, maybe called
        ("def f():\n    return K\ncb = lambda: f()", {"f"}, set()),  # a lambda counts as the cell's code
        ("def f():\n    return K\nz = K", {"f"}, set()),  # the cell loads K itself
        ("@deco\ndef f():\n    return K", set(), set()),  # decorated: the decorator may call it
        ("async def f():\n    return K", set(), set()),
        ("class C:\n    def m(self):\n        return K", set(), set()),
        ("def f():\n    return K\nf = wrap(f)", set(), set()),  # bound otherwise too: not a Function
        ("if c:\n    def f():\n        return K\nelse:\n    def f():\n        return L", {"f"}, {"K", "L"}),
        ("def f():\n    global n\n    n = K", {"f"}, {"K"}),  # n: written by the defining cell, read now
        ("def f():\n    def inner():\n        return K\n    return inner", {"f"}, {"K"}),
        ("def f(a=D):\n    return a", {"f"}, set()),
    ],
)
def test_functions_and_the_reads_only_they_need(source: str, functions: set[str], deferred: set[str]) -> None:
    result = analyze(source)
    assert (set(result.functions), result.deferred) == (functions, deferred)
    assert result.deferred <= result.reads


def test_a_redefined_function_merges_its_definitions() -> None:
    source = "if c:\n    def f(a):\n        a.append(1)\nelse:\n    def f(b):\n        b[0] = K"
    f = analyze(source).functions["f"]
    assert (f.positional, f.free, dict(f.changes)) == (("b",), {"K"}, {"a": {"call:append"}, "b": {"store"}})


def test_analyze_still_caches_its_results() -> None:
    source = "def f(x):\n    x.append(1)\nf(items)"
    assert analyze(source) is analyze(source)


@pytest.mark.parametrize(
    ("source", "always"),
    [
        ("x = 1\ny, *z = 2, 3", {"x", "y", "z"}),
        ("import numpy as np\nimport os.path\nfrom a import b as c", {"np", "os", "c"}),
        ("def f(): pass\nclass C: pass\nx: int = 1\nw: int", {"f", "C", "x"}),
        ("del x", {"x"}),
        ("with open(p) as f:\n    data = f.read()", {"f"}),  # (a context manager may swallow the body's error)
        ("with suppress(KeyError):\n    x = d['k']", set()),
        ("if c:\n    x = 1\nfor i in r:\n    y = i\nwhile c:\n    z = 1", set()),
        ("try:\n    x = 1\nexcept E:\n    pass", set()),
        ("n = 0\nn += 1\n_private = 2", {"n"}),
    ],
)
def test_always_lists_the_names_bound_on_every_path(source, always):
    assert analyze(source).always == always
