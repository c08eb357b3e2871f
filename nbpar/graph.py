"""Steps and the dependency graph between them. Pure: no IPython, no loky.

Responsibilities:
- hold the registered steps in registration order (`Graph.steps`);
- refuse a step that would make the graph invalid (a name written by two
  steps, `--after` naming an unknown step, a cycle), leaving the graph as it
  was;
- derive edges: B depends on A when B reads a name A writes, or names A in
  `after`. Several steps may import the same module under the same name
  (each needs its imports where it runs); a step reading that name waits
  for all of them;
- select what a run needs (named steps and their ancestors) and hand out a
  topological order.

Errors are `GraphError`s whose message names the steps and the variable.
"""

from __future__ import annotations

import collections
import functools
import graphlib
import itertools
from collections.abc import Container, Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Literal

from .analysis import is_builtin
from .partition import MERGES

BackendName = Literal["process", "thread", "inline"]
BACKENDS: tuple[BackendName, ...] = ("process", "thread", "inline")


class GraphError(ValueError):
    """The steps do not form a valid graph; the message says which and why."""


@dataclass(frozen=True)
class Step:
    """One registered cell: its code and what it reads and writes."""

    name: str
    source: str  # Python source of the body, after IPython's transform_cell
    reads: frozenset[str]
    writes: frozenset[str]
    after: tuple[str, ...] = ()
    backend: BackendName | None = None  # None: the run's backend
    first_line: int = 2  # line number of the body's first line in the cell
    header: str = ""  # the cell's first line as the user wrote it (for tracebacks)
    imports: Mapping[str, str] = field(default_factory=dict)  # writes made by `import` only
    # fanned out (--over): run once per slice of input `over`, outputs merged
    over: str | None = None
    slices: int | None = None  # None and slice_size None: the run's worker count
    slice_size: int | None = None
    filter: str | None = None  # a function in the namespace, on the keys of a dict input
    merge: tuple[tuple[str, str], ...] = ()  # (output or "*", how), the first match wins
    timeout: float | None = None  # seconds an attempt may take; None: the run's
    retries: int | None = None  # attempts after the first that fails; None: the run's
    flags: int = 0  # the notebook's `__future__` compiler flags when it was registered
    deletes: frozenset[str] = frozenset()  # writes the step makes by `del` (it removes them)

    @functools.cached_property
    def inputs(self) -> frozenset[str]:
        """What the step needs from the namespace: the names its code reads,
        and the functions its --filter and --merge name (used in the kernel)."""
        functions = {how for _, how in self.merge if how not in MERGES}
        if self.filter:
            functions.add(self.filter)
        return self.reads | functions

    @functools.cached_property
    def outputs(self) -> tuple[str, ...]:
        """The names the step writes, sorted (the order its outputs are sent and merged in)."""
        return tuple(sorted(self.writes))

    @property
    def uses_ipython(self) -> bool:
        """Whether the step calls IPython (`%magic`, `!cmd` and `get_ipython()`
        all become `get_ipython()` calls), which only the kernel has."""
        return "get_ipython" in self.reads

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


@dataclass
class Graph:
    """The registered steps; every mutation keeps the graph valid.

    Registering is incremental, so a notebook of thousands of steps registers
    in linear time: indexes of who writes and who reads each name are kept
    up to date, and a step is checked only for the cycles it could close
    (those through it), and only when something already waits for it."""

    steps: dict[str, Step] = field(default_factory=dict)
    _writers: dict[str, list[str]] = field(default_factory=dict, repr=False)  # name -> the steps writing it
    _readers: dict[str, set[str]] = field(default_factory=dict, repr=False)  # name -> the steps needing it
    _deps: dict[str, frozenset[str]] | None = field(default=None, repr=False)  # dependencies(), until a change
    _order: list[str] | None = field(default=None, repr=False)  # topological_order(), until a change

    # -- mutation -------------------------------------------------------
    def add(self, step: Step) -> None:
        """Register `step`, replacing a step of the same name. Raises
        GraphError (and changes nothing) if the result would be invalid."""
        old = self.steps.get(step.name)
        candidate = collections.ChainMap({step.name: step}, self.steps)
        writer = collections.ChainMap(_index_change(self._writers, old, step), self._writers)
        check_writers(candidate, writer, step.name)
        unknown = [a for a in step.after if a not in candidate]
        if unknown:
            known = [n for n in self.steps if n != step.name]  # not the step itself: it cannot wait for itself
            raise GraphError(
                f"step '{step.name}': --after names {_names(unknown)}, which "
                f"{'is not a step' if len(unknown) == 1 else 'are not steps'}. "
                f"Known steps: {', '.join(known) or '(none)'}. Register "
                "that step first, or fix the name."
            )
        awaited = old is not None or any(self._readers.get(var) for var in step.writes)
        if awaited and _waits_for_itself(candidate, writer, step.name):
            check_acyclic(dict(candidate))  # raises, listing the cycle
        for var, names in writer.maps[0].items():
            if names:
                self._writers[var] = names
            else:
                del self._writers[var]
        self._index_inputs(old, step)
        self.steps[step.name] = step
        self._deps = self._order = None

    def remove(self, name: str) -> Step:
        """Forget step `name`; raises GraphError if unknown."""
        self.require([name])
        removed = self.steps.pop(name)
        self._deps = self._order = None
        for var, names in _index_change(self._writers, removed, None).items():
            if names:
                self._writers[var] = names
            else:
                del self._writers[var]
        self._index_inputs(removed, None)
        return removed

    def _index_inputs(self, old: Step | None, new: Step | None) -> None:
        if old is not None:
            for var in old.inputs:
                readers = self._readers[var]
                readers.discard(old.name)
                if not readers:  # (a name no step reads any more is not kept: forgetting frees the index)
                    del self._readers[var]
        if new is not None:
            for var in new.inputs:
                self._readers.setdefault(var, set()).add(new.name)

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
        """Map each written name to the steps that write it (one, but for
        shared imports). Read only."""
        return self._writers

    def dependencies(self) -> dict[str, frozenset[str]]:
        """For every step, the steps it waits for (kept until the graph
        changes: a run asks several times). Read only."""
        if self._deps is None:
            self._deps = {name: frozenset(self.dependencies_of(name)) for name in self.steps}
        return self._deps

    def dependencies_of(self, name: str) -> set[str]:
        """The steps step `name` waits for."""
        return _waits_for(self.steps, self._writers, self.steps[name])

    def validate(self) -> None:
        """Check at run start what registering could not: --after targets
        still exist (a step may have been forgotten since). Cycles cannot
        appear: `add` refuses them and removing a step makes none."""
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
        registration order among ready steps."""
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
    found: dict[str, list[str]] = {}
    for s in steps.values():
        for var in s.writes:
            found.setdefault(var, []).append(s.name)
    return found


def dependencies(steps: Mapping[str, Step]) -> dict[str, set[str]]:
    writer = writers(steps)
    return {s.name: _waits_for(steps, writer, s) for s in steps.values()}


def _waits_for(steps: Mapping[str, Step], writer: Mapping[str, list[str]], step: Step) -> set[str]:
    found = {w for r in step.inputs for w in writer.get(r, ()) if w != step.name}
    found.update(a for a in step.after if a in steps)
    return found


def _index_change(writer: Mapping[str, list[str]], old: Step | None, new: Step | None) -> dict[str, list[str]]:
    """The entries of `writer` (name -> writers) that change when step `old`
    is taken out and `new` put in (an empty list: no writer left)."""
    change: dict[str, list[str]] = {}
    if old is not None:
        for var in old.writes:
            change[var] = [w for w in writer.get(var, ()) if w != old.name]
    if new is not None:
        for var in new.writes:
            kept = change[var] if var in change else list(writer.get(var, ()))
            change[var] = [*kept, new.name]
    return change


def _waits_for_itself(steps: Mapping[str, Step], writer: Mapping[str, list[str]], name: str) -> bool:
    """Whether step `name` waits, through others, for itself: the only
    cycles a graph that had none can get by adding or replacing `name`."""
    seen: set[str] = set()
    stack = list(_waits_for(steps, writer, steps[name]))
    while stack:
        other = stack.pop()
        if other == name:
            return True
        if other not in seen:
            seen.add(other)
            stack.extend(_waits_for(steps, writer, steps[other]))
    return False


def check_writers(steps: Mapping[str, Step], writer: Mapping[str, list[str]], newcomer: str) -> None:
    """Raise if `newcomer` writes a name another step writes (the same
    import in both is allowed)."""
    mine = steps[newcomer]
    others = dict.fromkeys(w for var in sorted(mine.writes) for w in writer.get(var, ()) if w != newcomer)
    for other in map(steps.__getitem__, others):
        clash = sorted(
            var
            for var in mine.writes & other.writes
            if var not in mine.imports or mine.imports[var] != other.imports.get(var)
        )
        deleted = [var for var in clash if var in mine.deletes or var in other.deletes]
        if deleted:
            deleter, maker = (mine, other) if deleted[0] in mine.deletes else (other, mine)
            raise GraphError(
                f"step '{deleter.name}' deletes {_names(deleted)}, which step '{maker.name}' "
                f"{'also deletes' if deleted[0] in maker.deletes else 'makes'}. A name is made or deleted by "
                f"one step only: delete it in step '{maker.name}' (or in an ordinary cell after the run), or, "
                "if it is only needed inside the cell that makes it, name it with a leading '_'."
            )
        if clash:
            raise GraphError(
                f"step '{newcomer}' writes {_names(clash)}, which step "
                f"'{other.name}' already writes. A name can be written by one "
                "step only: rename it in one of them, or merge the two cells "
                "(a name private to a cell can start with '_')."
            )


def check_acyclic(steps: Mapping[str, Step], deps: Mapping[str, Set[str]] | None = None) -> None:
    """Raise GraphError listing a cycle, one step a line, if there is one."""
    try:
        graphlib.TopologicalSorter(dependencies(steps) if deps is None else deps).prepare()
    except graphlib.CycleError as e:
        cycle = e.args[1]  # [a, b, ..., a]: each is a dependency of the next
        writer = writers(steps)
        lines = []
        for a, b in itertools.pairwise(cycle):
            why = sorted(r for r in steps[b].inputs if a in writer.get(r, ()))
            reason = f"reads {', '.join(why)}" if why else "--after"
            lines.append(f"  {b}  waits for  {a}  ({reason})")
        raise GraphError(
            "the steps form a cycle:\n" + "\n".join(lines) + "\n"
            "Break it: a step must not read, directly or through others, a name "
            "it writes (copy the value under a new name instead)."
        ) from None


def topological_order(steps: Mapping[str, Step], deps: Mapping[str, Set[str]] | None = None) -> list[str]:
    """All steps in dependency order, ties broken by registration order."""
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
