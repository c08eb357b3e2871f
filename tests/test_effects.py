"""Spec-style tests for nbpar.effects: what a step changes in place, and its global effects."""

from __future__ import annotations

import json
import random
import types

import numpy as np
import pytest

from nbpar.analysis import Function, analyze
from nbpar.effects import EFFECTS, binding_of, changed, effects, qualnames

# a data-science notebook's names: modules and imported functions, and values (None)
BINDINGS: dict[str, str | None] = {
    "np": "numpy",
    "pd": "pandas",
    "plt": "matplotlib.pyplot",
    "mpl": "matplotlib",
    "sns": "seaborn",
    "random": "random",
    "os": "os",
    "sys": "sys",
    "warnings": "warnings",
    "json": "json",
    "pickle": "pickle",
    "heapq": "heapq",
    "bisect": "bisect",
    "shutil": "shutil",
    "gzip": "gzip",
    "torch": "torch",
    "init": "torch.nn.init",
    "train_test_split": "sklearn.model_selection.train_test_split",
    "shuffle": "random.shuffle",
    **dict.fromkeys("df items model X y arr rng fig ax h d fh path frame rows opts callback".split()),
}
QUALNAME_OF = qualnames(BINDINGS)

# functions another step defines
HELPERS = analyze(
    "def add_col(frame, name):\n    frame[name] = 0\n"
    "def total(frame):\n    return frame.sum()\n"
    "def remember(v):\n    log.append(v)\n"
    "def draw(v):\n    plt.plot(v)\n"
    "def fill(out, v):\n    add_col(out, v)\n"
).functions


def function_of(callee: str) -> Function | None:
    return HELPERS.get(callee)


# (id, cell, the names it changes, its effects)
CASES = [
    # -- stores and inplace --------------------------------------------------
    ("new-column", "df['c'] = df['a'] * 2", {"df"}, set()),
    ("inplace", "df.dropna(inplace=True)", {"df"}, set()),
    ("attribute", "model.best = 3", {"model"}, set()),
    ("out", "np.add(arr, 1, out=arr)", {"arr"}, set()),
    # -- method calls --------------------------------------------------------
    ("append", "items.append(2)", {"items"}, set()),
    ("fit", "model.fit(X, y)", {"model"}, set()),
    ("generator-draws", "sample = rng.normal(size=3)", {"rng"}, set()),
    ("pure-pandas", "s = df.groupby('k').agg('sum')\nt = df.head()\nu = df.drop(columns='a')", set(), set()),
    ("pure-replace", "t = df.replace(0, 1)", set(), set()),
    ("sort-mutates", "items.sort()", {"items"}, set()),
    ("update-mutates", "d.update(k=1)", {"d"}, set()),
    ("pure-accessor", "u = df['a'].str.upper()", set(), set()),
    ("pure-numpy", "m = arr.reshape(2, -1).mean()", set(), set()),
    ("fill-mutates", "arr.fill(0)", {"arr"}, set()),
    ("alias", "col = df['a']\ncol.fillna(0, inplace=True)", {"df"}, set()),
    # -- arguments -----------------------------------------------------------
    ("module-mutator", "np.random.shuffle(arr)", {"arr"}, {"random"}),
    ("module-mutator-imported", "shuffle(items)", {"items"}, {"random"}),
    ("heap", "heapq.heappush(h, item)", {"h"}, set()),
    ("bisect", "bisect.insort(items, 3)", {"items"}, set()),
    ("method-mutator", "rng.shuffle(arr)", {"rng", "arr"}, set()),
    ("torch-inplace-convention", "init.zeros_(model)", {"model"}, set()),
    (
        "builtins-and-module-functions",
        "print(df)\nn = len(items)\nm = np.mean(arr)\nc = pd.concat([df, df])",
        set(),
        set(),
    ),
    ("next-advances", "first = next(rows)", {"rows"}, set()),
    ("setattr", "setattr(model, 'a', 1)", {"model"}, set()),
    ("imported-function", "a, b = train_test_split(X, y)", set(), set()),
    ("axes-draws", "ax.scatter(X, y)\nax.set_title('t')", {"ax"}, {"pyplot"}),
    ("unknown-callee", "callback(df)", {"df"}, set()),
    ("unresolved-callee", "fs[0](df)", {"df"}, set()),
    ("method-of-result", "r = df.groupby('k').apply(total)", set(), set()),
    ("notebook-function-changes", "add_col(df, 'c')", {"df"}, set()),
    ("notebook-function-keyword", "add_col(name='c', frame=df)", {"df"}, set()),
    ("notebook-function-reads", "t = total(df)", set(), set()),
    ("notebook-function-through-another", "fill(df, 'c')", {"df"}, set()),
    ("notebook-function-changes-global", "remember(3)", {"log"}, set()),
    ("notebook-function-passed-on", "df.apply(remember)", {"log"}, set()),
    ("own-function", "def grow(a):\n    a.append(1)\ngrow(items)", {"items"}, set()),
    ("own-function-not-called", "def grow(a):\n    a.append(1)\nf = 1", set(), set()),
    ("own-function-global", "def push(v):\n    items.append(v)\npush(2)", {"items"}, set()),
    # -- modules are never changed -------------------------------------------
    ("module-store", "os.environ['OMP_NUM_THREADS'] = '1'", set(), {"process"}),
    ("module-option-store", "pd.options.display.max_rows = 10", set(), {"process"}),
    ("rcparams", "plt.rcParams['figure.dpi'] = 90\nmpl.rcParams.update({})", set(), {"process"}),
    # -- random --------------------------------------------------------------
    ("seed", "np.random.seed(0)", set(), {"random"}),
    ("global-draws", "a = np.random.rand(3)\nb = random.choice(items)", set(), {"random"}),
    ("generator-made", "rng = np.random.default_rng(0)\nr = random.Random(1)", set(), set()),
    ("torch-seed", "torch.manual_seed(0)", set(), {"random"}),
    ("pandas-sample", "s = df.sample(3)", {"df"}, {"random"}),
    # -- pyplot --------------------------------------------------------------
    ("plt", "plt.plot(X)", set(), {"pyplot"}),
    ("subplots", "fig, ax = plt.subplots()", set(), {"pyplot"}),
    ("seaborn", "sns.heatmap(df.corr())", set(), {"pyplot"}),
    ("pandas-plot", "df.plot()\ndf['a'].hist()\ndf.plot.bar()", set(), {"pyplot"}),
    ("function-draws", "draw(arr)", set(), {"pyplot"}),
    # -- files ---------------------------------------------------------------
    ("open-read", "with open(path) as fh:\n    text = fh.read()", set(), set()),
    ("open-write", "with open(path, 'w') as fh:\n    json.dump(d, fh)", set(), {"files"}),
    ("open-mode-unknown", "fh = open(path, mode)", set(), {"files"}),
    ("gzip-append", "fh = gzip.open(path, 'at')", set(), {"files"}),
    ("path-open-write", "fh = path.open('w')", set(), {"files"}),
    ("path-open-read", "fh = path.open()", set(), set()),
    ("to-csv", "df.to_csv('out.csv')", set(), {"files"}),
    ("savefig", "fig.savefig('a.png')", set(), {"files"}),
    ("numpy-save", "np.save('a.npy', arr)", set(), {"files"}),
    ("pickle", "pickle.dump(model, fh)", set(), {"files"}),
    ("shutil", "shutil.rmtree('tmp')\np = shutil.which('ls')", set(), {"files"}),
    ("write-to-a-file-object", "fh.write('x')", {"fh"}, {"files"}),
    ("shell", "get_ipython().system('touch a')", set(), {"files"}),
    # -- process -------------------------------------------------------------
    ("chdir", "os.chdir('/tmp')", set(), {"process"}),
    ("environ-read", "home = os.environ.get('HOME')", set(), set()),
    ("environ-update", "os.environ.update(A='1')", set(), {"process"}),
    ("sys-path", "sys.path.append('src')", set(), {"process"}),
    ("warnings", "warnings.filterwarnings('ignore')", set(), {"process"}),
    ("options", "pd.set_option('display.width', 200)\nnp.set_printoptions(precision=3)", set(), {"process"}),
    ("style", "plt.style.use('ggplot')", set(), {"process", "pyplot"}),
    ("seaborn-theme", "sns.set_theme()", set(), {"process", "pyplot"}),
    ("import-in-the-cell", "import os\nos.environ['A'] = '1'", set(), {"process"}),
]


@pytest.mark.parametrize(
    ("source", "names", "kinds"),
    [pytest.param(src, c, e, id=case_id) for case_id, src, c, e in CASES],
)
def test_cases(source: str, names: set[str], kinds: set[str]) -> None:
    cell = analyze(source)
    qualname_of = qualnames({**BINDINGS, **cell.imports})
    assert changed(cell, qualname_of, function_of) == names
    assert effects(cell, qualname_of, function_of) == kinds
    assert kinds <= set(EFFECTS)


def test_case_ids_unique() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


def test_qualnames_resolve_roots_and_builtins() -> None:
    qualname_of = qualnames({"np": "numpy", "print": None, "split": "sklearn.model_selection.train_test_split"})
    assert qualname_of("np.random.shuffle") == "numpy.random.shuffle"
    assert qualname_of("split") == "sklearn.model_selection.train_test_split"
    assert qualname_of("len") == "builtins.len"
    assert qualname_of("print") is None  # bound to a value: the builtin is hidden
    assert qualname_of("pd.concat") is None  # unknown: no conventional alias is guessed
    assert qualname_of("?.agg") is None


def test_binding_of_namespace_values() -> None:
    def notebook_function() -> None:
        pass

    notebook_function.__module__ = "__main__"
    assert binding_of(np) == "numpy"
    assert binding_of(np.random.shuffle) == "numpy.random.shuffle"
    assert binding_of(random.shuffle) == "random.shuffle"
    assert binding_of(json.dump) == "json.dump"
    assert binding_of(types.SimpleNamespace) == "types.SimpleNamespace"
    assert binding_of(notebook_function) is None
    assert binding_of([1, 2]) is None and binding_of(np.zeros(2)) is None


def test_a_recursive_notebook_function_is_decided() -> None:
    functions = analyze("def walk(node):\n    walk(node.child)\n    node.seen = True").functions
    cell = analyze("walk(tree)")
    assert changed(cell, QUALNAME_OF, functions.get) == {"tree"}
    pure = analyze("def walk(node):\n    return walk(node.child)").functions
    assert changed(cell, QUALNAME_OF, pure.get) == set()
