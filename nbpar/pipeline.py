"""`Pipeline`: the Python API over the graph, the planner and the scheduler.

A pipeline owns a namespace (the notebook's `user_ns` under the magics, a
plain dict in a script), the registered steps, and what each step's last
successful run saw and made, which decides whether it is up to date:

    step commits --_remember--> _Memo(source, inputs, digests of them)
    plan() --_why_stale--> a reason, or None (up to date): never ran, code
        changed, an output deleted, an input whose fingerprint is not the
        one it read (nor, for `x += 1`, the one it made), --force, or a step
        it needs runs

Fingerprints (fingerprint.py) are of values, not identities: a list changed
in place is a changed input, a constants cell run again is not. They are
taken at commit (once per object in a run) and at planning (once per object
in a pass, only for steps that still look up to date).
"""

from __future__ import annotations
import __future__

import contextlib
import functools
import math
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from typing_extensions import Unpack

from . import auto
from .analysis import CellNames, Function, analyze, is_builtin
from .backends import Backend, make_backend
from .effects import Effect, binding_of, changed, effects, qualnames
from .errors import PlanError, RunError
from .events import Listener, subscribers
from .fingerprint import Fingerprints
from .graph import BackendName, Graph, GraphError, Step, nearest_above
from .options import RunKeywords, RunOptions
from .records import RunResult
from .scheduler import ABOVE, MISSING, Plan, Scheduler, frozen_heap
from .sharing import pickle_problem
from .worker import compile_step, unsendable_input, with_globals

# the compiler flags of `from __future__ import ...`: the only flags a step compiles with
FUTURE_FLAGS = functools.reduce(
    operator.or_, (getattr(__future__, f).compiler_flag for f in __future__.all_feature_names)
)

_last_run: RunResult | None = None


def _check_step_name(name: object) -> None:
    """Raise GraphError unless `name` is a Python identifier: it is written
    bare in `%parrun NAME` and `--after NAME`, and shown in `<step NAME>`."""
    if not (isinstance(name, str) and name.isidentifier()):
        raise GraphError(
            f"{name!r} is not a valid step name: a step name is a Python identifier "
            "(letters, digits and '_', not starting with a digit), such as load_data."
        )


# what to do instead of a magic that binds names in the notebook's namespace
_INSTEAD = {
    "time": "drop %%time (nbpar times every step: its display and the run's records show how long it took), "
    "or run the cell as an ordinary cell",
    "capture": "drop %%capture (a step's printed output goes to the step's own log), or run the cell as an "
    "ordinary cell",
    "prun": "profile in an ordinary cell",
    "timeit": "drop -v (the result %timeit -o returns can be bound in the step: `t = %timeit -o ...`)",
}


def _names_of(name: str, source: str, first_line: int, flags: int) -> CellNames:
    """What step `name` reads and writes, after checking that Python can
    compile it as the worker will; GraphError (with the line as the
    notebook numbers it) for what cannot work."""
    try:
        names = analyze(source, bool(flags & __future__.annotations.compiler_flag))
    except SyntaxError as e:  # (lines of the body)
        raise GraphError(
            f"step '{name}': syntax error on line {(e.lineno or 1) + first_line - 1} of the cell: {e.msg}"
        ) from None
    except ValueError as e:  # a null byte, a lone surrogate
        raise GraphError(f"step '{name}': the cell is not valid Python text: {e}") from None
    try:
        compile_step(name, source, first_line, flags)
    except SyntaxError as e:  # (lines of the cell)
        hint = ""
        if e.msg.startswith(("'await'", "'async")):
            hint = (
                " (IPython runs top-level `await` in a cell, a step cannot: put the code in an "
                "`async def main():` and call `asyncio.run(main())`, on the process or thread backend)"
            )
        raise GraphError(
            f"step '{name}': syntax error on line {e.lineno or first_line} of the cell: {e.msg}{hint}."
        ) from None
    if names.star_imports:
        module = names.star_imports[0]
        raise GraphError(
            f"step '{name}': `from {module} import *` binds names nbpar cannot see, so no step could wait "
            f"for them: import the names you use (`from {module} import floor, pi`) or the module (`import {module}`)."
        )
    if "debug" in names.magics:
        raise GraphError(
            f"step '{name}': %debug is interactive and a step runs unattended: debug in an ordinary cell "
            "(after a failed run, %debug there shows where the step failed)."
        )
    if names.unseen:
        unseen = sorted(names.unseen)
        magic = names.unseen[unseen[0]]
        raise GraphError(
            f"step '{name}': the code {magic} runs would take {', '.join(f'`{u}`' for u in unseen)} from the "
            f"notebook's namespace, not the step's (IPython runs it with the notebook's names as globals): drop "
            f"{magic} (nbpar times every step), or bind {'it' if len(unseen) == 1 else 'them'} in another step "
            "(whose outputs are in the notebook's namespace when this one runs)."
        )
    if names.shell_writes:
        bound = sorted(names.shell_writes)
        magic = names.shell_writes[bound[0]]
        raise GraphError(
            f"step '{name}': {magic} binds {', '.join(f'`{b}`' for b in bound)} in the notebook's namespace, "
            f"not the step's, where nbpar cannot take a step's writes from: {_INSTEAD[magic.lstrip('%')]}."
        )
    return names


def _backend_of(step: Step, run_backend: BackendName) -> BackendName:
    """Where `step` runs: its own backend, else in the kernel if it uses
    IPython or changes state only the kernel keeps (`Step.in_kernel`), else
    the run's."""
    return step.backend or ("inline" if step.in_kernel else run_backend)


def _measured(steps: Mapping[str, Step], result: RunResult) -> Iterator[tuple[str, auto.Measure]]:
    """What `result` measured of its steps that ran on a process (and succeeded), for --backend auto."""
    for name, record in result.steps.items():
        if record.backend == "process" and record.status == "done" and record.duration is not None:
            yield name, auto.Measure(steps[name].source, record.duration, record.gil)


class _Bindings(Mapping[str, "str | None"]):
    """What each root name a step uses is bound to when it runs, for
    `effects.qualnames`: its own imports, else the nearest step above
    binding it (to what it imports, or None: a value), else the
    namespace's value (`binding_of`). Looked up lazily: only the roots the
    analysis asks about."""

    def __init__(self, pipeline: Pipeline, nearest: Callable[[str], Step | None], imports: Mapping[str, str]) -> None:
        self._pipeline, self._nearest, self._imports = pipeline, nearest, imports

    def __getitem__(self, root: str) -> str | None:
        if root in self._imports:
            return self._imports[root]
        writer = self._nearest(root)
        if writer is not None:
            return writer.imports.get(root)
        namespace = self._pipeline.namespace
        if root in namespace:
            return binding_of(namespace[root])
        raise KeyError(root)

    def __iter__(self) -> Iterator[str]:
        return iter({*self._imports, *self._pipeline.graph.writers(), *self._pipeline.namespace})

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _same_slicing(a: Step, b: Step, workers: int | None) -> bool:
    """Does `b`, fanned out over an output of fanned-out `a`, cut it as `a`
    cut its input? No slicing of its own follows `a`'s; so does the same
    --slices or --slice-size (--slices N after `a`'s default slicing too,
    when the run has N `workers`)."""
    if b.slices is None and b.slice_size is None:
        return True
    a_slices = a.slices if a.slices is not None or a.slice_size is not None else workers
    return (a_slices, a.slice_size) == (b.slices, b.slice_size)


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def last_run() -> RunResult | None:
    """The `RunResult` of the latest run in this process, finished or not."""
    return _last_run


class RunHandle:
    """A run going on: in a background thread (`Pipeline.start`), or in the
    thread that called `Pipeline.run`. Its `result` is live; `wait` waits
    for the run's own end (the event the run sets once its records are
    final and its shared files gone), never on its thread: Ctrl-C inside
    `Thread.join` marks a running thread as stopped (CPython 3.11)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._ended = threading.Event()
        self.result = scheduler.result  # live: changes as the run goes on

    def done(self) -> bool:
        return self._ended.is_set()

    def wait(self, timeout: float | None = None, check: bool = True) -> RunResult:
        """Wait for the run to end (Ctrl-C stops the wait, not the run; a
        later wait waits again); with `check`, raise the RunError a blocking
        run would have."""
        if not self._ended.wait(timeout):
            raise TimeoutError(f"the run is still going after {timeout}s")
        if check and not self.result.ok:
            raise RunError(self.result)
        return self.result

    def cancel(self) -> None:
        """Stop the run: steps in flight are stopped, nothing more starts."""
        self._scheduler.cancel()

    def _end(self) -> None:
        """The run has ended: its records are final."""
        self._ended.set()


@dataclass(slots=True)
class _Memo:
    """What a step's last successful run read and wrote, and the code it
    ran. The objects are kept so that no identity in a fingerprint (of a
    class, a module) can be reused while the memo lives."""

    source: str
    flags: int  # the `__future__` flags it compiled with
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    digests: dict[str, bytes | None]  # fingerprints of the inputs, as read
    made: dict[str, bytes | None]  # fingerprints of the outputs it also reads (x += 1), as written
    deleted: tuple[str, ...]  # the names it deleted


class Pipeline:
    """Steps over a namespace, run in parallel.

    >>> p = Pipeline()
    >>> p.add_step("a", "x = 2")
    >>> p.add_step("b", "y = x * 21")
    >>> p.run(backend="thread").ok, p.namespace["y"]
    (True, 42)
    """

    def __init__(self, namespace: MutableMapping[str, Any] | None = None) -> None:
        self.namespace: MutableMapping[str, Any] = {} if namespace is None else namespace
        self.graph = Graph()
        self._memos: dict[str, _Memo] = {}
        self._holders: dict[str, str] = {}  # name -> the step whose version the namespace has (it committed it)
        self._durations: dict[str, float] = {}  # seconds a unit of each step took when it last ran
        self._measures: dict[str, auto.Measure] = {}  # each step's last run on a process (--backend auto)
        self._backends: dict[tuple[str, int], Backend] = {}
        self.active: RunHandle | None = None  # the run going on, if any

    # -- steps --------------------------------------------------------------
    def add_step(
        self,
        name: str,
        source: str,
        *,
        after: Iterable[str] = (),
        backend: BackendName | None = None,
        first_line: int = 1,
        header: str = "",
        over: str | None = None,
        slices: int | None = None,
        slice_size: int | None = None,
        filter: str | None = None,
        merge: str | Mapping[str, str] = "auto",
        timeout: float | None = None,
        retries: int | None = None,
        flags: int = 0,
    ) -> Step:
        """Register (or replace) step `name` running `source`. Raises
        GraphError, naming the steps involved, if the graph would be invalid.

        `over` fans the step out over slices of that input (`slices` of them,
        or slices of `slice_size` items; default: one per worker), keeping
        only the keys of a dict input that the namespace function `filter`
        accepts; `merge` says how outputs are put back together: one of
        "auto", "concat", "dict", "list", "sum" or a namespace function's
        name, for all outputs or as a mapping of output name (or "*") to that.
        `flags` are the notebook's compiler flags (IPython's
        `shell.compile.flags`): the step compiles with their `__future__` ones
        and nothing else, as an ordinary cell would.
        """
        _check_step_name(name)
        flags &= FUTURE_FLAGS
        names = _names_of(name, source, first_line, flags)
        merges = tuple((merge if isinstance(merge, Mapping) else {"*": merge}).items())
        changes, copies, kinds = self._in_place(name, names)
        step = Step(  # (checks its options: GraphError)
            name,
            source,
            (names.reads - names.deferred) | changes,  # (what only its functions' bodies read, their callers need)
            names.writes | changes,
            after=tuple(after),
            backend=backend,
            first_line=first_line,
            header=header,
            over=over,
            slices=slices,
            slice_size=slice_size,
            filter=filter,
            merge=merges,
            timeout=timeout,
            retries=retries,
            flags=flags,
            deletes=names.deletes,
            functions=names.functions,
            changes=changes,
            copies=copies,
            effects=kinds,
            imports=names.imports,
            always=names.always,
        )
        self.graph.add(step)
        return step

    def _in_place(self, name: str, names: CellNames) -> tuple[frozenset[str], frozenset[str], frozenset[Effect]]:
        """What step `name` (its code's `names`) may change in place, those
        of them its own code changes, and its global effects (effects.py).
        A name the step binds without reading it is its own, not a change.

        The resolvers are those of the notebook as registered now: a root
        is bound as the nearest step above it binds it (an import, or a
        value), else as the namespace's value is; a callee is a notebook
        function if the nearest step above that writes its name defines it
        there. A function or import registered (or run) later does not
        change a step registered before it until its cell is run again."""
        nearest = functools.cache(functools.partial(self._nearest_writer, name))  # (asked again and again)
        qualname_of = qualnames(_Bindings(self, nearest, names.imports))

        def function_of(callee: str) -> Function | None:
            writer = None if "." in callee else nearest(callee)
            return writer.functions.get(callee) if writer is not None else None

        @functools.cache  # (one object per callee: the rules count each function once, by identity)
        def params_only(callee: str) -> Function | None:  # a function's changes of its own globals left out
            function = function_of(callee)
            if function is None:
                return None
            params = function.receiving("*")
            return replace(function, changes={k: v for k, v in function.changes.items() if k in params})

        own = names.writes - names.reads
        changes = changed(names, qualname_of, function_of) - own
        copies = changed(names, qualname_of, params_only) & changes
        return changes, copies, effects(names, qualname_of, function_of)

    def _nearest_writer(self, name: str, var: str) -> Step | None:
        """The step nearest above step `name` (registered or not: at the
        end) that writes `var`, if any."""
        position = self.graph.position()
        nearest = nearest_above(self.graph.writers().get(var, ()), position, position.get(name, len(position)))
        return self.steps[nearest] if nearest is not None else None

    def forget(self, name: str) -> None:
        """Drop step `name`; its outputs stay in the namespace (a run going
        on still runs it, but keeps no memo of it)."""
        self.graph.remove(name)
        self._memos.pop(name, None)
        self._holders = {var: step for var, step in self._holders.items() if step != name}
        self._durations.pop(name, None)
        self._measures.pop(name, None)

    @property
    def steps(self) -> dict[str, Step]:
        return self.graph.steps

    # -- planning -----------------------------------------------------------
    def plan(self, targets: Iterable[str] = (), force: bool = False, workers: int | None = None) -> Plan:
        """Which steps a run of `targets` involves, which of them are stale,
        and why each stale one runs; `workers`: the run's (`RunOptions.worker_count`),
        if known, to chain fanned-out steps that spell out the default."""
        self.graph.validate()
        order = self.graph.select(targets)
        deps = self.graph.dependencies()
        graph = self.graph
        sources = {name: {var: graph.sources(name, var) for var in graph.inputs(name)} for name in order}
        reasons: dict[str, str] = {}
        fingerprints = Fingerprints()  # values cannot change during the pass
        for name in order:
            if force:
                reasons[name] = "--force"
                continue
            needed = sorted(d for d in deps[name] if d in reasons)  # (not .intersection(reasons): O(len(reasons)))
            why = (
                f"needs {needed[0]}, which runs"
                if needed
                else self._why_stale(self.steps[name], sources[name], fingerprints)
            )
            if why is not None:
                reasons[name] = why
        if len(order) < len(deps):
            deps = {n: deps[n] for n in order}  # (else the graph's: read only, replaced when the graph changes)
        stale = list(reasons)
        last = graph.last_writers(order)
        above = {var: graph.sources(name, var) for var, name in last.items() if var not in self.steps[name].always}
        return Plan(order, stale, deps, self._chains(stale, sources, workers), reasons, sources, last, above)

    def _chains(
        self, stale: list[str], sources: Mapping[str, Mapping[str, tuple[str, ...]]], workers: int | None
    ) -> dict[str, str]:
        """Fanned-out steps that follow the slices of another in this run:
        B over the version of X that fanned-out A makes, reading nothing
        else of A's, with no slicing of its own or the same as A's."""
        chained: dict[str, str] = {}
        for name in stale:
            b = self.steps[name]
            if b.over is None or b.filter or len(sources[name][b.over]) != 1:
                continue
            a = self.steps[sources[name][b.over][0]]
            reads = set(b.sent(sources[name]))  # (with the free names of the functions it calls)
            follows = a.over is not None and reads & a.writes == {b.over} and _same_slicing(a, b, workers)
            if a.name in stale and follows:
                chained[name] = a.name
        return chained

    def _why_stale(self, step: Step, sources: Mapping[str, tuple[str, ...]], fingerprints: Fingerprints) -> str | None:
        """Why `step` must run, or None if it is up to date. An output changed
        since (in place or not) leaves the step up to date: the steps that
        read it see a changed input. `sources`: where each input comes from."""
        memo = self._memos.get(step.name)
        if memo is None:
            return "no successful run yet"
        if memo.source != step.source:
            return "code changed"
        if memo.flags != step.flags:
            return "compiler flags changed (a `from __future__` import)"
        deleted = sorted(
            name for name in memo.outputs if self._holders.get(name) == step.name and name not in self.namespace
        )
        if deleted:
            return f"output `{deleted[0]}` was deleted"
        changed: list[str] = []
        for name in sorted(sources):  # (with the free names of the functions it calls: their globals)
            now = self._input(sources[name], name)
            if now is MISSING:
                if name in memo.inputs:
                    changed.append(name)  # deleted (the run then says where to define it)
                continue
            digest = fingerprints(now)
            if digest is None:
                return f"input `{name}` ({_a(type(now).__name__)}) cannot be compared"
            if digest not in (memo.digests.get(name), memo.made.get(name)):
                changed.append(name)
        if changed:
            s = "s" if len(changed) > 1 else ""
            return f"input{s} {', '.join(f'`{n}`' for n in changed)} changed"
        return None

    def _external_inputs(self, plan: Plan) -> dict[str, Any]:
        """Snapshot of the names the stale steps read that no step above
        them writes (the notebook's)."""
        external: dict[str, Any] = {}
        for name in plan.stale:
            sources = plan.sources[name]
            for var in sources:
                if sources[var] or var in external:
                    continue
                if var in self.namespace:
                    external[var] = self.namespace[var]
                elif not is_builtin(var):
                    step = self.steps[name]
                    undefined = (v for v in sources if not sources[v] and v not in self.namespace)
                    var = min(v for v in undefined if not is_builtin(v))  # the same one, run after run
                    raise PlanError(self._undefined(step, var))
        return external

    def _undefined(self, step: Step, var: str) -> str:
        """What to say of `var`, which `step` needs and no step above it
        writes and the notebook has not defined."""
        through = self.graph.inputs(step.name)[var]
        if through is not None:
            how = f"calls `{through}`, which needs"
        else:
            how = "reads" if var in step.reads else "--filter" if var == step.filter else "--merge names"
        below = sorted(self.graph.writers().get(var, ()), key=self.graph.position().__getitem__)
        if below:
            return (
                f"step '{step.name}' {how} `{var}`, which no step above it writes (step '{below[0]}', below it, "
                "does: a step reads the value of the nearest step above it, as a top-to-bottom run does) and the "
                f"notebook has not defined. Move the cell of '{step.name}' below that of '{below[0]}' and run it "
                f"again (a step keeps its place: %parforget {step.name} first), or define `{var}` in a cell run "
                "before %parrun."
            )
        return (
            f"step '{step.name}' {how} `{var}`, which no step writes and the "
            "notebook has not defined. Define it in a cell run before "
            "%parrun, or mark the cell that makes it with %%step."
        )

    def version(self, step: str, var: str) -> Any:
        """The version of `var` that step `step` left when it last ran: the
        namespace's if the namespace has its version, else the one it made
        (kept with its memo); ABOVE if it bound none (the version above it
        stands), MISSING if it deleted it or never ran."""
        memo = self._memos.get(step)
        if memo is None:
            return MISSING
        if self._holders.get(var) == step:
            return self.namespace.get(var, MISSING)
        if var in memo.outputs:
            return memo.outputs[var]
        return MISSING if var in memo.deleted else ABOVE

    def _input(self, sources: tuple[str, ...], var: str) -> Any:
        """The version of `var` that a step whose sources of it are
        `sources` would read now (MISSING: none)."""
        for source in sources:
            value = self.version(source, var)
            if value is not ABOVE:
                return value
        return self.namespace.get(var, MISSING)

    def _check_sendable(
        self, plan: Plan, external: dict[str, Any], where: dict[str, BackendName], placed: dict[str, str]
    ) -> None:
        """Raise PlanError if a notebook input of a stale process step cannot
        be pickled, before anything runs (not when the step is dispatched,
        after its upstream steps ran); a step `--backend auto` placed on a
        process goes to a thread instead (`where` and `placed` say so). Each
        value is pickled once, its large buffers (NumPy's, pandas') left out:
        the cost is that of its Python objects (see sharing.pickle_problem)."""
        problems: dict[str, str | None] = {}
        for name in plan.stale:
            step = self.steps[name]
            if where[name] != "process":
                continue
            for var in sorted(external.keys() & set(step.sent(plan.sources[name]))):
                if var not in problems:
                    problems[var] = pickle_problem(external[var])
                problem = problems[var]
                if problem and name in placed:
                    where[name] = "thread"
                    placed[name] = f"it reads `{var}`, which cannot be sent to a process ({problem})"
                    break
                if problem:
                    raise PlanError(unsendable_input(name, var, external[var], problem))

    # -- running --------------------------------------------------------------
    def run(
        self,
        targets: Iterable[str] = (),
        *,
        listeners: Iterable[Listener] = (),
        check: bool = True,
        plan: Plan | None = None,
        **options: Unpack[RunKeywords],
    ) -> RunResult:
        """Run `targets` (all steps when empty) and what they need, in this
        thread (Ctrl-C stops the run).

        `options` are RunOptions' (workers, backend, force, fail_fast,
        timeout, retries; TypeError for another keyword, OptionError for a
        value that cannot work): `timeout` and `retries` apply to every step
        that sets none. `plan`
        is `plan(targets, force)` made just before (to show it first without
        fingerprinting the inputs twice); by default it is made here.
        Returns the RunResult; with `check` (the default) a run that did not
        succeed raises RunError, which carries it as `.result`.
        """
        checked = RunOptions.given("run", options)
        run = self._open(targets, checked, listeners, plan)
        with self._running(run):
            result = run._scheduler.run()
        if check and not result.ok:
            raise RunError(result)
        return result

    def start(
        self,
        targets: Iterable[str] = (),
        *,
        listeners: Iterable[Listener] = (),
        plan: Plan | None = None,
        **options: Unpack[RunKeywords],
    ) -> RunHandle:
        """Like `run`, but in a background thread: returns at once. Outputs
        still enter the namespace step by step."""
        checked = RunOptions.given("start", options)
        run = self._open(targets, checked, listeners, plan)
        threading.Thread(target=self._run_in_background, args=(run,), name="nbpar-run", daemon=True).start()
        return run  # not self.active: a quick run may have ended and cleared it already

    def require_idle(self) -> None:
        """Raise PlanError if a run is going on: one run at a time."""
        if self.active is not None:
            r = self.active.result
            raise PlanError(
                f"a run is going on ({r.succeeded} of {len(r.steps)} steps done, for {r.wall:.0f}s): "
                "wait for it with %parwait (Pipeline.active.wait()), or stop it with %parcancel."
            )

    def _open(
        self, targets: Iterable[str], options: RunOptions, listeners: Iterable[Listener], plan: Plan | None
    ) -> RunHandle:
        """Check and set up a run (PlanError, GraphError: nothing started);
        it is this pipeline's active run from now until `_running` ends it."""
        with frozen_heap():
            scheduler = self._scheduler(targets, options, listeners, plan)
        self.active = run = RunHandle(scheduler)
        return run

    @contextlib.contextmanager
    def _running(self, run: RunHandle) -> Iterator[None]:
        """The life of `run` once opened, blocking or in the background: the
        heap frozen while its scheduler runs (frozen_heap), then, however it
        ended, its end (`_end_run`)."""
        try:
            with frozen_heap():
                yield
        finally:
            self._end_run(run)

    def _run_in_background(self, run: RunHandle) -> None:
        with self._running(run):
            run._scheduler.run()

    def _end_run(self, run: RunHandle) -> None:
        """After `run`'s scheduler returned (its backends closed their runs:
        the shared files written for its tasks are gone), its records are
        final, then waiters wake (whatever fails before)."""
        try:
            self._durations.update((n, t) for n, t in run._scheduler.took.items() if n in self.steps)  # (not forgotten)
            self._measures.update(_measured(run._scheduler.steps, run.result))
        finally:
            self.active = None
            run._end()

    def check(
        self,
        targets: Iterable[str] = (),
        **options: Unpack[RunKeywords],
    ) -> Plan:
        """What `run` with these arguments would do, checked as `run` checks
        before it starts anything (the same errors: PlanError, GraphError);
        runs nothing and changes nothing (`%parrun --dry-run`)."""
        checked = RunOptions.given("check", options)
        return self._checked(targets, checked, None)[0]

    def _checked(
        self, targets: Iterable[str], options: RunOptions, plan: Plan | None
    ) -> tuple[Plan, int, dict[str, Any], dict[str, BackendName], dict[str, str]]:
        """Every check a run makes before it starts, in one place (its
        options were checked when made): the run's plan, worker count,
        notebook inputs, where each stale step runs and, for those `--backend
        auto` placed, why."""
        self.require_idle()
        n = options.worker_count
        plan = plan or self.plan(targets, options.force, n)
        external = self._external_inputs(plan)
        where = {name: _backend_of(self.steps[name], options.backend) for name in plan.stale}  # where each will run
        placed = self._place(where, options)
        self._check_sendable(plan, external, where, placed)
        return plan, n, external, where, placed

    def _place(self, where: dict[str, BackendName], options: RunOptions) -> dict[str, str]:
        """Where each step `where` says is `auto` runs (auto.choose): changes
        `where`; returns why, by step."""
        placed: dict[str, str] = {}
        for name, backend in where.items():
            if backend == "auto":
                step = self.steps[name]
                limit = step.timeout if step.timeout is not None else options.timeout
                limit = None if limit == math.inf else limit
                where[name], placed[name] = auto.choose(step.source, self._measures.get(name), limit)
        return placed

    def _scheduler(
        self, targets: Iterable[str], options: RunOptions, listeners: Iterable[Listener], plan: Plan | None
    ) -> Scheduler:
        global _last_run
        plan, n, external, where, placed = self._checked(targets, options, plan)
        self._restore(plan)
        fingerprints = Fingerprints()  # for the run's commits: each object once
        backend = options.backend
        scheduler = Scheduler(
            steps=dict(self.steps),  # a run keeps the steps it started with
            plan=plan,
            namespace=self.namespace,
            backend_for=lambda step: self.backend(where.get(step.name) or _backend_of(step, backend), n),
            backend_name=backend,
            workers=n,
            listeners=[*listeners, *subscribers()],  # nbpar.subscribe's, for every run
            fail_fast=options.fail_fast,
            timeout=options.timeout,
            retries=options.retries,
            on_commit=functools.partial(self._remember, fingerprints),
            external=external,
            versions=self.version,
            holders=self._holders,
            durations=self._durations,
        )
        for name, place in where.items():  # known from the start (the run's header says it)
            scheduler.result.steps[name].backend = place
            scheduler.result.steps[name].placed = placed.get(name)
        _last_run = scheduler.result
        return scheduler

    def _restore(self, plan: Plan) -> None:
        """Before a run: the namespace gets, for each name whose last writer
        in the run is up to date, that writer's version, if it has another's
        (a run of fewer steps left an earlier writer's there)."""
        stale = set(plan.stale)
        for var, name in plan.last.items():
            if name in stale or self._holders.get(var) == name:
                continue
            memo = self._memos.get(name)
            if memo is not None and var in memo.outputs:
                self.namespace[var] = with_globals(memo.outputs[var], self.namespace)
                self._holders[var] = name

    def _remember(
        self,
        fingerprints: Fingerprints,
        step: Step,
        inputs: dict[str, Any],
        outputs: dict[str, Any],
        deleted: tuple[str, ...],
    ) -> None:
        """Keep what `step` read and made: not for a step forgotten meanwhile
        (`%parforget` during a run), whose values are then freed with the run."""
        if step.name not in self.steps:
            return
        digests = {name: fingerprints(value) for name, value in inputs.items()}
        made = {name: fingerprints(value) for name, value in outputs.items() if name in inputs}
        self._memos[step.name] = _Memo(step.source, step.flags, inputs, outputs, digests, made, deleted)

    def backend(self, name: str, workers: int) -> Backend:
        """The backend `name` with `workers` workers, made once and kept."""
        key = (name, 1 if name == "inline" else workers)
        if key not in self._backends:
            self._backends[key] = make_backend(name, workers)
        return self._backends[key]

    def shutdown(self) -> None:
        """This pipeline is done: its threads are let go, a run of its own
        still going is stopped, and the shared process pool is stopped only
        if no other pipeline uses processes (ProcessBackend.shutdown): a
        pipeline's shutdown never stops another's workers."""
        for backend in self._backends.values():
            backend.shutdown()
        self._backends.clear()
