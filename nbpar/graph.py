"""Steps and the dependency graph between them. Pure: no IPython, no loky.

Responsibilities:
- hold the registered steps in notebook order (`Graph.steps`: the order
  their cells were first registered; replacing a step keeps its place);
- refuse a step that would make the graph invalid (`--after` naming an
  unknown step, a cycle through `--after`), leaving the graph as it was;
- bind each read to the version it sees, as a top-to-bottom run would:
  a step reading `x` reads the value of the nearest step above it that
  writes `x` (several steps may write one name: each writes a version), or
  the notebook's `x` when no step above writes it (`sources`);
- find what each step needs (`inputs`): the names its code reads and, for
  each function it reads that a step defines, that function's free names,
  again and again through the functions those are. A function looks its
  globals up where it is called, so each is resolved from the caller's
  place: functions in different cells may call each other, and only their
  callers wait for what they read (the defining step needs none of it);
- derive edges: B depends on the steps whose version of a name it needs
  (the nearest writer above it, and the writers above that one while each
  might leave the name as it found it without reading it: a write in an
  `if` or a loop), on the nearest step above it with each global effect it has
  (`Step.effects`: two steps that write files, or use a module's global
  random state, keep their notebook order), and on the steps it names in
  `after`. Every edge but `after` points up the notebook, so only `after`
  can close a cycle;
- select what a run needs (named steps and their ancestors) and hand out a
  topological order.

Errors are `GraphError`s whose message names the steps and the variable.
"""

from __future__ import annotations

import bisect
import collections
import functools
import graphlib
import itertools
from collections.abc import Callable, Container, Iterable, Mapping, Sequence, Set
from dataclasses import KW_ONLY, dataclass, field

from .analysis import Function, is_builtin
from .effects import Effect
from .options import BackendName, backend_problem, limits_problem
from .partition import MERGES

# each global effect (effects.EFFECTS) as a step's summary line says it
EFFECT_LABELS: Mapping[Effect, str] = {
    "random": "uses a global random state",
    "pyplot": "draws with pyplot",
    "files": "writes files",
    "process": "changes interpreter-wide state",
}
# effects on state only the kernel's process keeps, and later cells see
# (pyplot's figures too, and pyplot is not thread-safe): a step with one
# runs in the kernel unless it names a backend
IN_KERNEL: frozenset[Effect] = frozenset({"random", "pyplot", "process"})


class GraphError(ValueError):
    """The steps do not form a valid graph; the message says which and why."""


@dataclass(frozen=True)
class Step:
    """One registered cell: its code and what it reads and writes, and its
    options (keywords), checked as it is made: GraphError naming the step
    for options that cannot work (`_check_options`)."""

    name: str
    source: str  # Python source of the body, after IPython's transform_cell
    reads: frozenset[str]
    writes: frozenset[str]
    _: KW_ONLY
    after: tuple[str, ...] = ()
    backend: BackendName | None = None  # None: the run's backend
    first_line: int = 2  # line number of the body's first line in the cell
    header: str = ""  # the cell's first line as the user wrote it (for tracebacks)
    # fanned out (--over): run once per slice of input `over`, outputs merged
    over: str | None = None
    slices: int | None = None  # None and slice_size None: the run's worker count
    slice_size: int | None = None
    filter: str | None = None  # a function in the namespace, on the keys of a dict input
    merge: tuple[tuple[str, str], ...] = (("*", "auto"),)  # (output or "*", how), the first match wins
    timeout: float | None = None  # seconds an attempt may take; None: the run's
    retries: int | None = None  # attempts after the first that fails; None: the run's
    flags: int = 0  # the notebook's `__future__` compiler flags when it was registered
    deletes: frozenset[str] = frozenset()  # writes the step makes by `del` (it removes them)
    functions: Mapping[str, Function] = field(default_factory=dict)  # its top-level plain `def`s, by name
    # the inputs it may change in place (`df['c'] = 1`, `items.append(2)`):
    # in reads and writes, so it writes a new version of each (effects.changed)
    changes: frozenset[str] = frozenset()
    # those of `changes` its own code changes (not a function of another step
    # through its own globals): on threads and inline it changes a copy
    copies: frozenset[str] = frozenset()
    effects: frozenset[Effect] = frozenset()  # its global effects (effects.EFFECTS): kept in notebook order
    imports: Mapping[str, str] = field(default_factory=dict)  # the writes it binds by import (CellNames.imports)
    always: frozenset[str] = frozenset()  # writes it binds or deletes whenever it succeeds (not in an `if`, a loop)

    def __post_init__(self) -> None:
        _check_options(self)

    @functools.cached_property
    def inputs(self) -> frozenset[str]:
        """What the step needs from the namespace: the names its code reads,
        and the functions its --filter and --merge name (used in the kernel)."""
        functions = {how for _, how in self.merge if how not in MERGES}
        if self.filter:
            functions.add(self.filter)
        return self.reads | functions

    def sent(self, inputs: Iterable[str]) -> list[str]:
        """Of `inputs` (what the step needs, `Graph.inputs`), the names a
        unit of it is given: all but the functions only its --filter and
        --merge name (the kernel calls those)."""
        return [v for v in inputs if v in self.reads or v not in self.inputs]

    @functools.cached_property
    def outputs(self) -> tuple[str, ...]:
        """The names the step writes, sorted (the order its outputs are sent and merged in)."""
        return tuple(sorted(self.writes))

    @property
    def uses_ipython(self) -> bool:
        """Whether the step calls IPython (`%magic`, `!cmd` and `get_ipython()`
        all become `get_ipython()` calls), which only the kernel has."""
        return "get_ipython" in self.reads

    @property
    def in_kernel(self) -> bool:
        """Whether the step runs in the kernel unless it names a backend: it
        uses IPython, or has an effect of `IN_KERNEL`."""
        return self.uses_ipython or bool(self.effects & IN_KERNEL)

    def shown_reads(self, written: Container[str]) -> list[str]:
        """The reads worth showing a user: builtins (`print`, `len`) only
        when a step (in `written`) rebinds them."""
        return sorted(r for r in self.reads if r in written or not is_builtin(r))

    def merge_for(self, output: str) -> str:
        """How output `output` of a fanned-out step is merged."""
        for name, how in self.merge:
            if name in (output, "*"):
                return how
        return "auto"


def _check_options(step: Step) -> None:
    """Raise GraphError, naming the step, for options of `step` that cannot
    work: its backend, its timeout and retries, its fan-out, or the process
    backend for a step that uses IPython."""
    name = step.name
    if step.backend is not None:
        problem = backend_problem(step.backend)
        if problem:
            raise GraphError(f"step '{name}': {problem}")
    _check_fan_out(step)
    problem = limits_problem(step.timeout, step.retries)
    if problem:
        raise GraphError(f"step '{name}': {problem}")
    if step.uses_ipython and step.backend == "process":
        raise GraphError(
            f"step '{name}' uses IPython (a %magic, !command or get_ipython()), which a worker process does "
            "not have: drop --backend process (such a step runs in the kernel), or move that line to an "
            "ordinary cell."
        )


def _check_fan_out(step: Step) -> None:
    """Raise GraphError for fan-out options that cannot work."""
    name = step.name
    if step.over is None:
        options = (("--slices", step.slices), ("--slice-size", step.slice_size), ("--filter", step.filter))
        given = [option for option, value in options if value is not None]
        if step.merge != (("*", "auto"),):
            given.append("--merge")
        if given:
            raise GraphError(f"step '{name}': {', '.join(given)} needs --over VAR, the input to fan out over.")
        return
    if step.over not in step.reads:
        reads = ", ".join(sorted(step.reads)) or "nothing"
        raise GraphError(
            f"step '{name}': --over {step.over}, but the step does not read `{step.over}` (it reads {reads}). "
            "Fan out over an input the cell uses."
        )
    others = sorted(step.changes - {step.over})
    if others:
        listed = ", ".join(f"`{n}`" for n in others)
        raise GraphError(
            f"step '{name}': --over {step.over}, and the step changes {listed} in place: each slice would "
            f"change a copy of its own, and no merge of those is what one run of the cell leaves. Make "
            f"{'it' if len(others) == 1 else 'them'} in the step, or change {'it' if len(others) == 1 else 'them'} "
            "in a step of its own without --over."
        )
    if step.slices is not None and step.slice_size is not None:
        raise GraphError(f"step '{name}': give --slices or --slice-size, not both.")
    for option, value in (("--slices", step.slices), ("--slice-size", step.slice_size)):
        if value is not None and value < 1:
            raise GraphError(f"step '{name}': {option} must be at least 1, not {value}.")
    if step.filter is not None and not step.filter.isidentifier():
        raise GraphError(f"step '{name}': --filter {step.filter!r}: name a function defined in the notebook.")
    for output, how in step.merge:
        if how not in MERGES and not how.isidentifier():
            raise GraphError(
                f"step '{name}': --merge {how!r}: choose {', '.join(MERGES)}, or name a function in the notebook."
            )
        if output != "*" and output not in step.writes:
            raise GraphError(f"step '{name}': --merge {output}={how}, but the step does not write `{output}`.")


@dataclass
class Graph:
    """The registered steps; every mutation keeps the graph valid.

    Registering is incremental, so a notebook of thousands of steps registers
    in linear time: an index of who writes each name is kept up to date,
    and cycles are checked for only when steps name others in `--after`
    (the only edges that can point down the notebook): a new step's, from
    it alone (the last step: no other step's inputs change); a replacement
    or removal, over the whole graph (the steps below it may now read
    names of another writer, one that waits for them)."""

    steps: dict[str, Step] = field(default_factory=dict)
    _writers: dict[str, list[str]] = field(default_factory=dict, repr=False)  # name -> its writers, in notebook order
    _effecters: dict[str, list[str]] = field(default_factory=dict, repr=False)  # effect -> its steps, in notebook order
    _afters: int = field(default=0, repr=False)  # steps with an --after
    _position: dict[str, int] | None = field(default=None, repr=False)  # each step's place, until a change
    _deps: dict[str, frozenset[str]] | None = field(default=None, repr=False)  # dependencies(), until a change
    _inputs: dict[str, dict[str, str | None]] = field(default_factory=dict, repr=False)  # inputs(), until a change
    _order: list[str] | None = field(default=None, repr=False)  # topological_order(), until a change

    # -- mutation -------------------------------------------------------
    def add(self, step: Step) -> None:
        """Register `step`, replacing a step of the same name (in its place).
        Raises GraphError (and changes nothing) if the result would be invalid."""
        old = self.steps.get(step.name)
        unknown = [a for a in step.after if a not in self.steps and a != step.name]
        if unknown or step.name in step.after:
            known = [n for n in self.steps if n != step.name]  # not the step itself: it cannot wait for itself
            raise GraphError(
                f"step '{step.name}': --after names {_names(unknown or [step.name])}, which "
                f"{'is not a step' if len(unknown) <= 1 else 'are not steps'}"
                f"{' it can wait for' if not unknown else ''}. Known steps: {', '.join(known) or '(none)'}. "
                "Register that step first, or fix the name."
            )
        afters = self._afters - bool(old and old.after) + bool(step.after)
        placed = self._placed()
        writes = _index_change(self._writers, old, step, _written, placed)
        kinds = _index_change(self._effecters, old, step, _effects_of, placed)
        if afters:
            candidate = collections.ChainMap({step.name: step}, self.steps)
            if old is not None or self._new_step_waits_for_itself(step, candidate, writes, kinds):
                # (in its place: steps below it may now read another writer's names)
                check_acyclic(dict(candidate))  # raises, listing the cycle
        _apply(self._writers, writes)
        _apply(self._effecters, kinds)
        self._afters = afters
        if old is None and self._position is not None:  # the last step: every other keeps its place
            self._position[step.name] = len(self._position)
        self.steps[step.name] = step
        self._deps = self._order = None
        self._inputs.clear()

    def _new_step_waits_for_itself(
        self, step: Step, candidate: Mapping[str, Step], writes: dict[str, list[str]], kinds: dict[str, list[str]]
    ) -> bool:
        """Whether `step`, added as the last step (its index changes `writes`
        and `kinds`), would wait for itself: the only cycle it can make."""
        placed = self._placed()
        position = collections.ChainMap({step.name: len(placed)}, placed)
        writer = collections.ChainMap(writes, self._writers)
        effecter = collections.ChainMap(kinds, self._effecters)
        return _waits_for_itself(candidate, writer, effecter, position, step.name)

    def remove(self, name: str) -> Step:
        """Forget step `name`; raises GraphError (and changes nothing) if
        unknown, or if the steps left would form a cycle (a step below it
        then reads another step's names, one that waits for it by --after)."""
        self.require([name])
        if self._afters:
            check_acyclic({n: s for n, s in self.steps.items() if n != name})
        removed = self.steps.pop(name)
        self._afters -= bool(removed.after)
        self._deps = self._order = self._position = None
        _apply(self._writers, _index_change(self._writers, removed, None, _written, {}))
        _apply(self._effecters, _index_change(self._effecters, removed, None, _effects_of, {}))
        self._inputs.clear()
        return removed

    # -- queries --------------------------------------------------------
    def require(self, names: Iterable[str]) -> None:
        """Raise GraphError naming every one of `names` that is not a step."""
        unknown = [n for n in names if n not in self.steps]
        if unknown:
            raise GraphError(
                f"no step named {_names(unknown)}. Known steps: "
                f"{', '.join(self.steps) or '(none: mark a cell with %%step NAME)'}."
            )

    def writers(self) -> Mapping[str, list[str]]:
        """Map each written name to the steps that write it, in notebook order. Read only."""
        return self._writers

    def position(self) -> Mapping[str, int]:
        """Each step's place in the notebook, 0 for the first. Read only."""
        return self._placed()

    def _placed(self) -> dict[str, int]:
        if self._position is None:
            self._position = {name: i for i, name in enumerate(self.steps)}
        return self._position

    def sources(self, name: str, var: str) -> tuple[str, ...]:
        """The steps whose version of `var` step `name` may read, nearest
        first (empty: the notebook's `var`). See the module docstring."""
        return _sources(self.steps, self._writers, self.position(), self.steps[name], var)

    def inputs(self, name: str) -> Mapping[str, str | None]:
        """What step `name` needs (see the module docstring), each name to
        the function it calls that needs it (None: the step's own code or
        options). Kept until the graph changes. Read only."""
        found = self._inputs.get(name)
        if found is None:
            found = self._inputs[name] = _inputs(self.steps, self._writers, self.position(), self.steps[name])
        return found

    def read_labels(self, name: str) -> list[str]:
        """What step `name` reads, for a user: builtins only when a step
        rebinds them; for a name only a function it calls needs, which
        (`scale (through f)`); for a name several steps write, whose version
        (`df (from clean)`, `df (from the notebook)`)."""
        inputs = self.inputs(name)
        through = sorted(v for v, f in inputs.items() if f is not None and (v in self._writers or not is_builtin(v)))
        labels = []
        for var in [*self.steps[name].shown_reads(self._writers), *through]:
            notes = [] if inputs[var] is None else [f"through {inputs[var]}"]
            if len(self._writers.get(var, ())) > 1:
                sources = self.sources(name, var)
                notes.append(f"from {' or '.join(sources) if sources else 'the notebook'}")
            labels.append(f"{var} ({', '.join(notes)})" if notes else var)
        return labels

    def last_writers(self, names: Iterable[str]) -> dict[str, str]:
        """For each name the steps `names` write, the one of them lowest in
        the notebook: whose version a top-to-bottom run of them leaves."""
        position = self.position()
        last: dict[str, str] = {}
        for name in sorted(names, key=position.__getitem__):
            for var in self.steps[name].writes:
                last[var] = name
        return last

    def dependencies(self) -> dict[str, frozenset[str]]:
        """For every step, the steps it waits for (kept until the graph
        changes: a run asks several times). Read only."""
        if self._deps is None:
            self._deps = {name: frozenset(self.dependencies_of(name)) for name in self.steps}
        return self._deps

    def dependencies_of(self, name: str) -> set[str]:
        """The steps step `name` waits for."""
        return _waits_for(
            self.steps, self._writers, self._effecters, self.position(), self.steps[name], self.inputs(name)
        )

    def validate(self) -> None:
        """Check at run start what registering could not: --after targets
        still exist (a step may have been forgotten since). Cycles cannot
        appear: `add` refuses them and removing a step makes none."""
        if not self._afters:
            return
        for step in self.steps.values():
            if not step.after:
                continue
            missing = [a for a in step.after if a not in self.steps]
            if missing:
                raise GraphError(
                    f"step '{step.name}': --after names {_names(missing)}, which "
                    "is no longer a step (forgotten?). Re-register it or "
                    f"re-run the cell of '{step.name}' without it."
                )

    def select(self, targets: Iterable[str] = ()) -> list[str]:
        """The steps a run of `targets` needs (all steps when empty): the
        targets and their ancestors, in a topological order that follows
        notebook order among ready steps."""
        targets = list(targets)
        self.require(targets)
        deps = self.dependencies()
        if self._order is None:
            self._order = topological_order(self.steps, deps)
        if not targets:
            return list(self._order)
        wanted: set[str] = set()
        stack = targets
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(deps[name])
        return [n for n in self._order if n in wanted]


def writers(steps: Mapping[str, Step]) -> dict[str, list[str]]:
    """Each written name to the steps that write it."""
    return _index(steps, _written)


def effecters(steps: Mapping[str, Step]) -> dict[str, list[str]]:
    """Each global effect (`Step.effects`) to the steps that have it."""
    return _index(steps, _effects_of)


def _index(steps: Mapping[str, Step], keys: Callable[[Step], Iterable[str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for s in steps.values():
        for key in keys(s):
            found.setdefault(key, []).append(s.name)
    return found


def dependencies(steps: Mapping[str, Step]) -> dict[str, set[str]]:
    writer, effecter = writers(steps), effecters(steps)
    position = {name: i for i, name in enumerate(steps)}
    return {
        s.name: _waits_for(steps, writer, effecter, position, s, _inputs(steps, writer, position, s))
        for s in steps.values()
    }


def _sources(
    steps: Mapping[str, Step], writer: Mapping[str, list[str]], position: Mapping[str, int], step: Step, var: str
) -> tuple[str, ...]:
    """The writers of `var` above `step` whose version it may read: the
    nearest, then the next while the one before might not bind `var` (it
    binds it only on some paths, in an `if` or a loop, and does not read
    it: its version, if it binds none, is the one above it). `writer`'s
    lists are in notebook order: the writers above are found by bisection,
    nearest first, without looking at the others."""
    writers = writer.get(var, ())
    found = []
    for i in range(_count_above(writers, position, position[step.name]) - 1, -1, -1):
        w = writers[i]
        found.append(w)
        if var in steps[w].always or var in steps[w].reads:
            break  # its version replaces the one above, or it waits for the ones above: settled when it is done
    return tuple(found)


def _count_above(names: Sequence[str], position: Mapping[str, int], here: int) -> int:
    """How many of the steps `names` (in notebook order) are above place `here`."""
    return bisect.bisect_left(names, here, key=position.__getitem__)


def nearest_above(names: Sequence[str], position: Mapping[str, int], here: int) -> str | None:
    """Of the steps `names` (in notebook order), the lowest in the notebook above place `here`."""
    above = _count_above(names, position, here)
    return names[above - 1] if above else None


def _inputs(
    steps: Mapping[str, Step], writer: Mapping[str, list[str]], position: Mapping[str, int], step: Step
) -> dict[str, str | None]:
    """What `step` needs, each name to the function it calls that needs it
    (None: its own). A function a source of an input defines needs its free
    names, resolved from `step`'s place, nearest first (breadth first, in
    sorted order: the same function is named, run after run). A private
    free name (`_cache`) is the defining cell's own: it goes with the
    function (see worker.with_globals), not from a step."""
    found: dict[str, str | None] = dict.fromkeys(sorted(step.inputs))
    queue = collections.deque(found)
    while queue:
        var = queue.popleft()
        for w in _sources(steps, writer, position, step, var):
            function = steps[w].functions.get(var)
            if function is None:
                continue
            for free in sorted(function.free - found.keys()):
                if not free.startswith("_"):
                    found[free] = found[var] or var
                    queue.append(free)
    return found


def _waits_for(
    steps: Mapping[str, Step],
    writer: Mapping[str, list[str]],
    effecter: Mapping[str, list[str]],
    position: Mapping[str, int],
    step: Step,
    inputs: Iterable[str],
) -> set[str]:
    """The steps `step` waits for, given what it needs (`inputs`)."""
    found = {w for r in inputs for w in _sources(steps, writer, position, step, r)}
    found.update(a for a in step.after if a in steps)
    here = position[step.name]
    for kind in step.effects:
        nearest = nearest_above(effecter.get(kind, ()), position, here)
        if nearest is not None:
            found.add(nearest)
    return found


def _written(step: Step) -> Iterable[str]:
    return step.writes


def _effects_of(step: Step) -> Iterable[str]:
    return step.effects


def _index_change(
    index: Mapping[str, list[str]],
    old: Step | None,
    new: Step | None,
    keys: Callable[[Step], Iterable[str]],
    position: Mapping[str, int],
) -> dict[str, list[str]]:
    """The entries of `index` (key -> the steps with it, in notebook order:
    a name they write, an effect they have) that change when step `old` is
    taken out and `new` put in: a new step at the end, a replacement in
    `old`'s place (`position`: each step's place). An empty list: no step left."""
    before = set(keys(old)) if old is not None else set()
    after = set(keys(new)) if new is not None else set()
    change: dict[str, list[str]] = {}
    assert old is not None or new is not None
    name = old.name if old is not None else new.name  # type: ignore[union-attr]
    for key in before - after:
        change[key] = [w for w in index.get(key, ()) if w != name]
    for key in after - before:
        names = list(index.get(key, ()))
        if old is None:
            names.append(name)  # the last step
        else:
            names.insert(_count_above(names, position, position[name]), name)
        change[key] = names
    return change


def _apply(index: dict[str, list[str]], change: Mapping[str, list[str]]) -> None:
    for key, names in change.items():
        if names:
            index[key] = names
        else:
            del index[key]


def _waits_for_itself(
    steps: Mapping[str, Step],
    writer: Mapping[str, list[str]],
    effecter: Mapping[str, list[str]],
    position: Mapping[str, int],
    name: str,
) -> bool:
    """Whether step `name` waits, through others, for itself: the only
    cycles a graph that had none can get by adding `name` as its last step."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        step = steps[stack.pop()]
        for other in _waits_for(steps, writer, effecter, position, step, _inputs(steps, writer, position, step)):
            if other == name:
                return True
            if other not in seen:
                seen.add(other)
                stack.append(other)
    return False


def check_acyclic(steps: Mapping[str, Step], deps: Mapping[str, Set[str]] | None = None) -> None:
    """Raise GraphError listing a cycle, one step a line, if there is one."""
    try:
        graphlib.TopologicalSorter(dependencies(steps) if deps is None else deps).prepare()
    except graphlib.CycleError as e:
        cycle = e.args[1]  # [a, b, ..., a]: each is a dependency of the next
        writer = writers(steps)
        position = {name: i for i, name in enumerate(steps)}
        lines = []
        for a, b in itertools.pairwise(cycle):
            inputs = _inputs(steps, writer, position, steps[b])
            why = sorted(
                r if inputs[r] is None else f"{r} through {inputs[r]}"
                for r in inputs
                if a in _sources(steps, writer, position, steps[b], r)
            )
            if a in steps[b].after:
                reason = "--after"
            elif why:
                reason = f"reads {', '.join(why)}"
            else:
                reason = f"{', '.join(sorted(steps[a].effects & steps[b].effects))} effects, in notebook order"
            lines.append(f"  {b}  waits for  {a}  ({reason})")
        raise GraphError(
            "the steps form a cycle:\n" + "\n".join(lines) + "\n"
            "Break it: a step reads the values of the steps above it, so an --after naming a step below it "
            "can close a loop; drop that --after, or move the cell."
        ) from None


def topological_order(steps: Mapping[str, Step], deps: Mapping[str, Set[str]] | None = None) -> list[str]:
    """All steps in dependency order, ties broken by notebook order."""
    rank = {name: i for i, name in enumerate(steps)}
    ts = graphlib.TopologicalSorter(dependencies(steps) if deps is None else deps)
    ts.prepare()
    order: list[str] = []
    while ts.is_active():
        ready = sorted(ts.get_ready(), key=rank.__getitem__)
        order.extend(ready)
        ts.done(*ready)
    return order


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
