"""What a step changes in place, and which global effects it has.

``nbpar.analysis`` gives raw syntactic facts about a cell (a ``CellNames``)
and about each function it defines (a ``Function``): the ways its code may
change each input (``changes``: ``"store"``, ``"call:PATH[:inplace]"``,
``"arg:CALLEE:WHERE"``, ``"out:CALLEE"``), the callees it calls as written
(``calls``), what it stores into (``stores``) and its ``open`` calls
(``opens``). This module decides what those facts mean, given two resolvers
the caller builds from the notebook's namespace and the steps' imports:

* ``qualname_of(dotted)``: the full dotted name of a callee or root as
  written, when its root is bound to a module or to a function or class of a
  module (``"np.random.shuffle"`` -> ``"numpy.random.shuffle"``, ``"print"``
  -> ``"builtins.print"``), else None (a value, a notebook function, an
  unknown name). ``qualnames(bindings)`` builds one; ``binding_of(value)``
  gives a namespace value's entry.
* ``function_of(callee)``: the notebook ``Function`` a callee as written
  names (defined by another step), else None. A cell's own ``functions``
  are looked up first.

``changed`` -- the inputs a step may change in place. A root with a
qualname (a module, an imported function or class) is never changed: what
is done to it is an effect or nothing. For any other input, one way is
enough:

* ``store`` (``x[k] = v``, ``x.a = v``, ``del x[k]``) and ``out:F``
  (``np.add(a, b, out=x)``): changed.
* ``call:PATH``: changed unless its last part is in ``PURE_METHODS``
  (methods known to leave their object as it was, whatever its type among
  pandas, NumPy and the builtins; a name that mutates on one of those types,
  ``sort``, ``update``, ``add``, ``pop``, ``insert``, is not pure) or its
  first part is a pandas accessor (``df.str.lower()``, ``df.plot.bar()``).
  ``:inplace`` (``inplace=`` anything but False/None): changed.
* ``arg:F:WHERE`` (passed at position or keyword WHERE, ``*`` when unknown):
  F a notebook function: changed if the parameters receiving it may be
  changed by its body (the same rules, recursively); F resolving to a module
  function: changed only if it is in ``MUTATING_FUNCTIONS`` at WHERE, or its
  name ends in ``_`` (PyTorch's in-place convention: ``nn.init.zeros_(w)``);
  F a method of a value (``rng.shuffle``, ``?.agg``): changed only if the
  method is in ``ARG_MUTATING_METHODS``; F anything else (``?``, a name
  bound to no module and no notebook function): changed.

Besides its inputs, a step changes the free names a notebook function it
calls (or passes on: ``df.apply(f)``) changes.

``effects`` -- the global effects of a step, a closed set (``EFFECTS``):
calls of module functions by their qualname, method calls on values by their
last part, ``open`` calls by their mode, stores into a module's objects,
and the effects of the notebook functions it calls or passes on.

What is not seen (documented limits): aliasing through calls (``y =
np.asarray(x)``), state kept by objects the analysis cannot name (an Axes
drawn into through a method not in the plot table), reading files (only
writing is an effect), global random state used implicitly
(``train_test_split`` without ``random_state``), line magics (``%cd``).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, Protocol

from .analysis import CellNames, Function, OpenCall, is_builtin

__all__ = [
    "EFFECTS",
    "Effect",
    "FunctionOf",
    "QualnameOf",
    "binding_of",
    "changed",
    "effects",
    "qualnames",
]

Effect = Literal["random", "pyplot", "files", "process"]
EFFECTS: Mapping[Effect, str] = {
    "random": "uses a module's global random state (random.*, numpy.random.* functions, torch's global generator)",
    "pyplot": "draws into matplotlib's current figure (pyplot and seaborn functions, pandas' plot methods)",
    "files": "writes files (open for writing, to_csv and friends, savefig, numpy.save, pickle.dump, shutil, "
    "os.remove, shell commands)",
    "process": "changes interpreter-wide state later cells see (os.chdir, os.environ, sys.path, warnings "
    "filters, pandas/NumPy/matplotlib options, logging configuration, a store into a module's object)",
}

QualnameOf = Callable[[str], "str | None"]
FunctionOf = Callable[[str], "Function | None"]

# methods that leave their object as it was (without inplace=True / out=)
PURE_METHODS = frozenset(
    # pandas
    "head tail describe info copy groupby agg aggregate transform apply applymap map mean median mode sum prod "
    "std var sem min max idxmin idxmax count value_counts unique nunique isna isnull notna notnull dropna fillna "
    "ffill bfill drop drop_duplicates duplicated rename reset_index set_index sort_values sort_index replace "
    "astype query eval merge join concat pivot pivot_table melt stack unstack explode to_numpy to_dict to_list "
    "to_frame to_string to_html to_markdown to_latex to_records to_csv to_parquet to_json to_excel to_pickle "
    "to_hdf to_feather to_sql to_period to_timestamp corr cov cumsum cumprod cummax cummin diff pct_change shift "
    "rolling expanding ewm resample where mask isin between clip round abs rank nlargest nsmallest quantile "
    "select_dtypes filter reindex set_axis assign interpolate get_dummies memory_usage equals any all "
    "plot hist boxplot get_group items iterrows itertuples keys values"
    # NumPy ndarray
    " reshape argmax argmin argsort astype dot flatten ravel transpose tolist tobytes nonzero squeeze swapaxes "
    "take repeat view item conj conjugate diagonal trace ptp searchsorted"
    # builtins: list, tuple, dict, set, str, bytes
    " index get startswith endswith split rsplit splitlines join format format_map lower upper strip lstrip "
    "rstrip find rfind title capitalize casefold zfill center ljust rjust encode decode isdigit isalpha "
    "isnumeric isdecimal isspace isupper islower isalnum isidentifier partition rpartition expandtabs translate "
    "union intersection difference symmetric_difference issubset issuperset isdisjoint fromkeys"
    # pathlib paths (the file is another matter: see effects), figures and models, read only
    " open read_text read_bytes exists is_file is_dir glob rglob iterdir stat resolve with_suffix with_name "
    "joinpath relative_to savefig get_params predict predict_proba score".split()
)
PURE_ACCESSORS = frozenset({"str", "dt", "cat", "plot", "sparse"})  # pandas: `df.str.lower()` returns a new object

# module functions that change an argument in place, each to where it is passed (position, keyword)
MUTATING_FUNCTIONS: Mapping[str, frozenset[str]] = {
    q: frozenset(where.split())
    for q, where in {
        "random.shuffle": "0 x",
        "numpy.random.shuffle": "0 x",
        "heapq.heappush": "0",
        "heapq.heappop": "0",
        "heapq.heapify": "0",
        "heapq.heapreplace": "0",
        "heapq.heappushpop": "0",
        "bisect.insort": "0 a",
        "bisect.insort_left": "0 a",
        "bisect.insort_right": "0 a",
        "numpy.copyto": "0 dst",
        "numpy.put": "0 a",
        "numpy.place": "0 arr",
        "numpy.putmask": "0 a",
        "numpy.fill_diagonal": "0 a",
        "numpy.put_along_axis": "0 arr",
        "builtins.setattr": "0",
        "builtins.delattr": "0",
        "builtins.next": "0",
        "operator.setitem": "0",
        "operator.delitem": "0",
        "operator.iadd": "0",
        "operator.iconcat": "0",
    }.items()
}
ARG_MUTATING_METHODS = frozenset({"shuffle", "at"})  # `rng.shuffle(x)`, `np.add.at(x, i, v)`

_NUMPY_RANDOM_OBJECTS = frozenset(
    "default_rng Generator RandomState SeedSequence BitGenerator PCG64 PCG64DXSM MT19937 Philox SFC64".split()
)
_RANDOM_OBJECTS = frozenset({"Random", "SystemRandom"})
_TORCH_RANDOM = frozenset("manual_seed seed rand randn randint randperm normal bernoulli multinomial".split())

_FILES = frozenset(
    "numpy.save numpy.savez numpy.savez_compressed numpy.savetxt pickle.dump json.dump joblib.dump torch.save "
    "os.remove os.unlink os.rename os.renames os.replace os.mkdir os.makedirs os.rmdir os.removedirs os.symlink "
    "os.link os.truncate os.chmod os.system os.popen urllib.request.urlretrieve".split()
)
_FILES_PREFIXES = ("shutil.", "subprocess.")
_FILES_PURE = frozenset({"shutil.which", "shutil.disk_usage", "shutil.get_terminal_size"})
_PROCESS = frozenset(
    "os.chdir os.putenv os.unsetenv sys.setrecursionlimit sys.setswitchinterval warnings.filterwarnings "
    "warnings.simplefilter warnings.resetwarnings pandas.set_option pandas.reset_option numpy.set_printoptions "
    "numpy.seterr numpy.seterrcall matplotlib.use matplotlib.rc matplotlib.rcdefaults matplotlib.style.use "
    "matplotlib.pyplot.rc matplotlib.pyplot.rcdefaults matplotlib.pyplot.style.use matplotlib.pyplot.switch_backend "
    "matplotlib.pyplot.ion matplotlib.pyplot.ioff logging.basicConfig logging.disable sklearn.set_config "
    "seaborn.set seaborn.set_theme seaborn.set_style seaborn.set_context seaborn.set_palette seaborn.reset_defaults "
    "seaborn.reset_orig torch.set_num_threads torch.set_default_dtype locale.setlocale socket.setdefaulttimeout "
    "importlib.reload".split()
)
# objects of modules whose methods change them, but for these read-only ones
_PROCESS_OBJECTS: Mapping[str, frozenset[str]] = {
    "os.environ": frozenset({"get", "copy", "keys", "values", "items"}),
    "sys.path": frozenset({"index", "count", "copy"}),
}
_METHOD_EFFECTS: Mapping[str, frozenset[Effect]] = {
    # pandas' plot methods (pure for the frame), and Axes' drawing methods (which change the Axes too)
    **dict.fromkeys(
        "plot hist boxplot scatter bar barh imshow pie fill_between errorbar contour contourf pcolormesh "
        "axhline axvline annotate legend set_title set_xlabel set_ylabel set_xlim set_ylim".split(),
        frozenset({"pyplot"}),
    ),
    **dict.fromkeys(
        "to_csv to_parquet to_json to_excel to_pickle to_hdf to_feather to_stata to_sql to_netcdf savefig "
        "write_text write_bytes write writelines writerow writerows tofile save save_model dump mkdir touch "
        "unlink rmdir symlink_to system getoutput".split(),  # (system, getoutput: IPython's `!cmd`)
        frozenset({"files"}),
    ),
    "sample": frozenset({"random"}),  # pandas' sample without random_state draws from NumPy's global state
}
_WRITE_MODE = frozenset("wax+")


class _Code(Protocol):
    """The facts of a cell's code or of a function's body."""

    @property
    def changes(self) -> Mapping[str, frozenset[str]]: ...
    @property
    def calls(self) -> frozenset[str]: ...
    @property
    def stores(self) -> frozenset[str]: ...
    @property
    def opens(self) -> frozenset[OpenCall]: ...


def binding_of(value: object) -> str | None:
    """The qualname a namespace value gives the name bound to it: a module's
    name, ``module.name`` for a function or class of a module (not of the
    notebook's ``__main__``), else None (a value, a notebook function)."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    module, name = getattr(value, "__module__", None), getattr(value, "__name__", None)
    if callable(value) and isinstance(module, str) and isinstance(name, str) and module != "__main__":
        return f"{module}.{name}"
    return None


def qualnames(bindings: Mapping[str, str | None]) -> QualnameOf:
    """A ``qualname_of`` from what each root name is bound to: a qualname
    (``{"np": "numpy", "shuffle": "random.shuffle"}``: from ``binding_of`` of
    the namespace's values and the steps' ``CellNames.imports``), or None
    for a name bound to anything else (which hides a builtin of that name).
    A root not in ``bindings`` is a builtin's (``builtins.print``) or
    unknown (None): no table of conventional aliases is guessed."""

    def qualname_of(dotted: str) -> str | None:
        root, _, rest = dotted.partition(".")
        if root in bindings:
            bound = bindings[root]
        else:
            bound = f"builtins.{root}" if is_builtin(root) else None
        if bound is None:
            return None
        return f"{bound}.{rest}" if rest else bound

    return qualname_of


class _Resolver:
    """The rules of the module docstring, for one step's resolvers."""

    def __init__(self, names: CellNames, qualname_of: QualnameOf, function_of: FunctionOf) -> None:
        self._own = names.functions
        self._qualname_of = qualname_of
        self._function_of = function_of
        self._visiting: set[tuple[int, str]] = set()  # (function, parameter) being decided: recursion

    def function(self, callee: str) -> Function | None:
        own = self._own.get(callee)
        return own if own is not None else self._function_of(callee)

    def is_change(self, way: str) -> bool:
        kind, _, rest = way.partition(":")
        if kind == "call":
            path, _, inplace = rest.partition(":")
            parts = path.split(".")
            return bool(inplace) or not (parts[-1] in PURE_METHODS or parts[0] in PURE_ACCESSORS)
        if kind == "arg":
            callee, _, where = rest.rpartition(":")
            return self._arg_changed(callee, where)
        return True  # store, out

    def _arg_changed(self, callee: str, where: str) -> bool:
        function = self.function(callee)
        if function is not None:
            return any(self._param_changed(function, p) for p in function.receiving(where))
        qualname = self._qualname_of(callee) if callee != "?" else None
        if qualname is not None:
            positions = MUTATING_FUNCTIONS.get(qualname)
            if positions is not None:
                return where == "*" or where in positions
            last = qualname.rsplit(".", 1)[-1]
            return last.endswith("_") and not last.startswith("_") and where in ("0", "*")
        if "." in callee:
            return callee.rsplit(".", 1)[1] in ARG_MUTATING_METHODS
        return True  # nothing nbpar knows: a value called, `fs[0](x)`

    def _param_changed(self, function: Function, param: str) -> bool:
        key = (id(function), param)
        if key in self._visiting:
            return False  # a recursive call: the function's other ways decide
        self._visiting.add(key)
        try:
            return any(self.is_change(w) for w in function.changes.get(param, ()))
        finally:
            self._visiting.discard(key)

    def changed_by(self, root: str, ways: frozenset[str]) -> bool:
        return self._qualname_of(root) is None and any(self.is_change(w) for w in ways)

    def called(self, code: _Code) -> list[Function]:
        """The notebook functions ``code`` calls, or passes on (to be called)."""
        named = [*code.calls, *code.changes]
        return [f for f in (self.function(n) for n in named) if f is not None]

    def changed(self, code: _Code, seen: set[int]) -> set[str]:
        """The inputs ``code`` changes, and the free names the notebook
        functions it calls change (``seen``: functions already counted)."""
        out = {root for root, ways in code.changes.items() if self.changed_by(root, ways)}
        for function in self.called(code):
            if id(function) not in seen:
                seen.add(id(function))
                params = function.receiving("*")
                out |= {n for n in self.changed(function, seen) if n not in params}
        return out

    def effects(self, code: _Code, seen: set[int]) -> set[Effect]:
        kinds: set[Effect] = set()
        for callee in code.calls:
            qualname = self._qualname_of(callee)
            if qualname is not None:
                kinds |= _module_call_effects(qualname)
            elif "." in callee:
                path = callee.split(".")[1:]
                kinds |= _METHOD_EFFECTS.get(path[-1], frozenset())
                if "plot" in path[:-1]:  # df.plot.bar()
                    kinds.add("pyplot")
        kinds |= {"files" for call in code.opens if self._opens_for_writing(call)}
        kinds |= {"process" for store in code.stores if self._qualname_of(store.split(".")[0]) is not None}
        for function in self.called(code):
            if id(function) not in seen:
                seen.add(id(function))
                kinds |= self.effects(function, seen)
        return kinds

    def _opens_for_writing(self, call: OpenCall) -> bool:
        """The mode is a function's second argument (``open``, ``gzip.open``)
        and a method's first (``path.open("w")``); None means reading."""
        function_like = "." not in call.callee or self._qualname_of(call.callee) is not None
        mode = call.second if function_like else call.first
        return mode is not None and (mode == "?" or bool(_WRITE_MODE & set(mode)))


def _module_call_effects(qualname: str) -> set[Effect]:
    kinds: set[Effect] = set()
    module, _, last = qualname.rpartition(".")
    if (
        (module == "random" and last not in _RANDOM_OBJECTS)
        or (qualname.startswith("numpy.random.") and qualname.split(".")[2] not in _NUMPY_RANDOM_OBJECTS)
        or (module == "torch" and last in _TORCH_RANDOM)
        or qualname == "tensorflow.random.set_seed"
    ):
        kinds.add("random")
    if qualname.startswith(("matplotlib.pyplot.", "seaborn.", "pandas.plotting.")):
        kinds.add("pyplot")
    if qualname in _FILES or (qualname.startswith(_FILES_PREFIXES) and qualname not in _FILES_PURE):
        kinds.add("files")
    pure = _PROCESS_OBJECTS.get(module)
    if (
        qualname in _PROCESS
        or (pure is not None and last not in pure)
        or (qualname.startswith("matplotlib.") and "rcParams" in qualname.split("."))
    ):
        kinds.add("process")
    return kinds


def changed(names: CellNames, qualname_of: QualnameOf, function_of: FunctionOf) -> frozenset[str]:
    """The names a step may change in place: its reads changed by its own
    code, and the free names changed by the notebook functions it calls."""
    return frozenset(_Resolver(names, qualname_of, function_of).changed(names, set()))


def effects(names: CellNames, qualname_of: QualnameOf, function_of: FunctionOf) -> frozenset[Effect]:
    """The global effects (``EFFECTS``) of a step's code and of the notebook
    functions it calls."""
    return frozenset(_Resolver(names, qualname_of, function_of).effects(names, set()))


# callees that look names up by string, in the caller's namespace or their
# own globals, where the analysis cannot see which: `eval("a + b")`,
# `pd.eval("df1 < df2")`, `df.query("a < @limit")`, `df.eval(...)`,
# numexpr's `evaluate`, and the namespace itself (`globals()`, `locals()`, `vars()`)
LOOKUPS = frozenset({"eval", "exec", "query", "evaluate", "globals", "locals", "vars"})


def looks_up(calls: Iterable[str]) -> str | None:
    """The first of `calls` (callees as written, in sorted order) that may
    read names nbpar cannot see; None if there is none."""
    return next((callee for callee in sorted(calls) if callee.rpartition(".")[2] in LOOKUPS), None)
