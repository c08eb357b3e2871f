"""The run loop: it opens steps, submits their units, settles what comes
back and completes steps, and it alone owns the run's state.

A *unit* is what a worker runs: a whole step, or one slice of a step fanned
out with `--over` (key `(step, index)`, index None for a whole step). What
the loop decides with, it asks pure modules: packing.py (which tasks to
submit: batches, fused chains, probes), crashes.py (whom a crash is blamed
on), fanout.py (slices, chains of slices, merging); what it submits to is a
backend behind contract.py, whose name it never asks.

Data flow::

    Plan(order, stale, deps) --> Scheduler.run()
      a step *opens* when every step it reads from has completed:
        whole step         -> one unit, ready
        fanned-out step    -> split its --over input: one unit per slice, ready
        chained fan-out    -> (over an output of a fanned-out step A, same
                              slicing) unit i is ready as soon as A's slice i
                              is done; no merge and re-split in between
      ready units --packing.pack--> tasks --backend.submit([Task, ...], run)
        --> Future --done--> events queue
        (a slice of A and the open chained slices after it go as one task:
         one worker runs them back to back, nothing crosses to the kernel
         between them; so do batches of small units, those that took less
         than SMALL last time, when more are ready than workers. Units of
         unknown duration go one per task, at most 2 per worker, until the
         first ones say how long a unit of this run takes)
      backend report(kind, step, slice, payload) ---------------> events queue
        ("start" when a worker takes the unit, "printing" before the first
         line of a unit that did not say so, "log" for printed lines; from
         worker processes through channel.py; an inline unit's: handled at once)
      loop: clock.next_event(events)  (waits POLL = 0.1 s at most: Ctrl-C
            arrives at once, and deadlines are checked)
        unit ok      -> whole step: its outputs are its versions of those
                        names (kept for the steps below it that read them:
                        a unit's inputs are the versions of the steps above
                        it, `plan.sources`); those no later step of the run
                        writes go into the namespace, all together
                        slice: kept; when every slice is done, the outputs
                        are merged in slice order and written the same way
        unit error   -> retried (--retries), else the step fails (naming
                        the slice), writes nothing; what depends on it is
                        skipped (fail-fast: all stops)
        worker crash -> crashes.isolate: culprits fail (or retry), suspects
                        run again alone, the innocent run again
        past timeout -> the worker is stopped (backend.stop_worker), or, if
                        it cannot be (a thread), the unit is abandoned
      a step *completes* when its outputs are written: dependents may open.

Ready units wait in one of four lists, not one queue: `_ready` (to submit
at the next chance), `_held` (on a backend with shared fate, while a
suspect runs alone there), `_suspects` (run one at a time, alone) and
`_deferred` (of unknown duration, while the probes are out). A step still
starts the moment its last dependency finishes, never layer by layer.

Only `run()`'s loop (in one thread) changes the run's state, the
`RunResult` and the namespace; backends and their threads only put items on
the events queue (`_put`). An inline unit runs in the loop's thread, inside
its submit: its reports are handled at once, there (so its start and lines
are shown live), outside the unit's output capture. Listeners get an event
after each change.

State (every container of a Scheduler; "loop" is its thread; no other
thread changes any of them but `_events`, through `_put`):

    container          holds                                      changed by
    ---------          -----                                      ----------
    result             the RunResult: a record per step, slices   the loop
    namespace          the notebook's names: outputs go in         _complete,
                                                                  _settle_unbound
    holders            name -> the step whose version the          _complete,
                       namespace has (the pipeline's)              _settle_unbound
    _events            ("report", ...), ("done", future),         any thread (_put);
                       ("cancel",): what the loop waits for        the loop takes
    _over              the run ended: _put drops what comes late   _release
    _runs              backend -> its BackendRun (open_run)        _submit opens,
                                                                  _close_runs closes
    _step_backends     step -> backend_for(step), asked once        _backend
    _flights           id(future) -> _Flight: a task in flight     _submit adds;
                                                                  _loop, _drop,
                                                                  _stop_all remove
    _ready             units to submit at the next _submit_ready   _open_if_ready,
                                                                  _unit_done,
                                                                  _unit_failed,
                                                                  _crashed, _expire
    _held              units of a shared-fate backend waiting      _submit_ready
                       while a suspect runs alone there
    _suspects          units a crash could not clear: run alone    _crashed adds,
                                                                  _submit_ready takes
    _deferred          units of unknown duration, waiting for      _submit_ready
                       the probes (packing.pack)
    _probes            probes in flight                            _submit, _settle,
                                                                  _drop, _stop_all
    _queued            units submitted and not yet given back      _mark_queued adds;
                                                                  _settle, _crashed,
                                                                  _expire, _submit
    _started           of those, the ones a worker took ("start")  _reported adds;
                                                                  _settle, _crashed,
                                                                  _expire
    _received          unit -> characters of output shown live     _reported, _unit_done
    _opened            steps opened (fused ones too)               _open_if_ready,
                                                                  _fuse, _unfuse
    _waiting           step -> the steps it still waits for        _complete
    _children          step -> the steps waiting for it (fixed)    __post_init__
    _followers         step -> the steps chained to it (fixed)     __post_init__
    _fans              fanned-out step -> fanout.Fan: its slices   _open_if_ready,
                                                                  _unit_done, _mark_queued
                                                                  (and resubmissions)
    _made              step -> (outputs, deleted) in this run      _complete
    _estimates         packing.Estimates: how long units take      _unit_done (learn)
                       (`took` is its dict: the pipeline keeps it)
    _unbatched         steps whose batch or fused chain crashed    _crashed
    _fused             steps fused behind the one they wait for,   _fuse, _settle,
                       not back yet                                _unfuse
    _failures          unit -> failed attempts (--retries)         _unit_failed
    _fail_count        steps failed so far (see _submit_ready)     _fail
    _deadlines         unit -> when the loop stops it (timeout)    _reported adds;
                                                                  _settle, _crashed,
                                                                  _expire, _stop_all
    _killed            unit -> its error: its worker was stopped   _expire adds,
                       past its timeout                            _crashed takes
    _took_last         worker -> the unit it took last ("start",   _reported
                       "printing"): when it takes the next, that
                       one's deadline goes
    _failed_listeners  listeners that raised (reported once)       _emit
"""

from __future__ import annotations

import builtins
import collections
import gc
import logging
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from . import crashes, fanout, packing
from .capture import notebook_log_format, outside_step
from .contract import Backend, BackendRun, Outcome, PicklingProblem, Task, WorkerCrash
from .events import (
    Event,
    Listener,
    RunFinished,
    RunStarted,
    SliceFinished,
    SliceStarted,
    StepFinished,
    StepLog,
    StepStarted,
)
from .fanout import Fan, FanError
from .graph import Step
from .packing import SMALL
from .partition import SliceError
from .records import RunResult, SliceRecord, StepRecord
from .worker import is_ipython_display, kernel_home, with_globals

Commit = Callable[[Step, dict[str, Any], dict[str, Any], tuple[str, ...]], None]  # (step, inputs, outputs, deleted)
Versions = Callable[[str, str], Any]  # (step, name) -> the version of `name` that step left, or ABOVE
Key = tuple[str, int | None]  # (step, slice index or None for a whole step)

POLL = 0.1  # seconds the loop waits for an event before it looks at the deadlines


@dataclass
class Plan:
    """What a run will do: `order` lists every step it involves in a valid
    order; `stale` those that will run (the rest are up to date); `chained`
    maps a fanned-out step to the fanned-out step whose slices it follows."""

    order: list[str]
    stale: list[str]
    deps: dict[str, frozenset[str]]  # for each step in order, the steps it waits for
    chained: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # stale step -> why it runs ("code changed")
    # for each step in order, for each name it needs (Graph.inputs: with the
    # free names of the functions it calls), the steps whose version it may
    # read, nearest first (Graph.sources; empty: the notebook's)
    sources: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)  # each name the steps write -> the last of them to write it
    # the names whose last writer may not bind them (in an `if`, a loop, a
    # `with` body) -> the steps above it whose version then stands (Graph.sources)
    above: dict[str, tuple[str, ...]] = field(default_factory=dict)


class Clock:
    """The loop's sense of time: `now()` (monotonic seconds) for timeouts'
    deadlines, and `next_event(events)`, the next item on the events queue,
    or None after POLL seconds without one. A test gives the loop a virtual
    clock (tests/fake_backend.py), so that durations and timeouts need no
    waiting."""

    def now(self) -> float:
        return time.monotonic()

    def next_event(self, events: queue.Queue[tuple[Any, ...]]) -> tuple[Any, ...] | None:
        try:
            return events.get(timeout=POLL)
        except queue.Empty:
            return None


WALL_CLOCK = Clock()


@dataclass
class _Flight:
    """Units submitted as one task, and their future."""

    keys: list[Key]
    future: Future[list[Outcome]]
    backend: Backend
    solo: bool = False  # a suspect, alone on its backend
    probe: bool = False  # a unit of unknown duration, sent to learn how long units take
    batch: bool = False  # independent small units (else one unit and the chained slices after it)


@dataclass
class Scheduler:
    steps: Mapping[str, Step]
    plan: Plan
    namespace: MutableMapping[str, Any]
    backend_for: Callable[[Step], Backend]
    backend_name: str
    workers: int
    listeners: Iterable[Listener] = ()
    fail_fast: bool = False
    timeout: float | None = None  # for steps that set none
    retries: int = 0  # for steps that set none
    on_commit: Commit | None = None
    external: dict[str, Any] = field(default_factory=dict)  # inputs no step above their reader writes
    versions: Versions | None = None  # what the steps that do not run in this run left (Pipeline.version)
    holders: MutableMapping[str, str] = field(default_factory=dict)  # name -> the step whose version the namespace has
    durations: Mapping[str, float] = field(default_factory=dict)  # seconds a unit of a step took last time
    clock: Clock = WALL_CLOCK

    def __post_init__(self) -> None:
        self.listeners = tuple(self.listeners)
        self.result = RunResult(
            steps={n: StepRecord(n) for n in self.plan.order},
            backend=self.backend_name,
            workers=self.workers,
            start=time.time(),
            deps=self.plan.deps,
        )
        stale = set(self.plan.stale)
        for name in self.plan.order:
            if name not in stale:
                self.result.steps[name].status = "up-to-date"
        chained = self.plan.chained
        self._log_level = logging.getLogger().getEffectiveLevel()  # the kernel's, for steps' `logging` calls
        self._log_format = notebook_log_format()  # and how the kernel formats them
        self._home = kernel_home()  # the working directory and sys.path every step starts with
        # The state: see the table at the top of this module.
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._over = False
        self._over_lock = threading.Lock()  # guards _over, and puts on _events against the last drain
        self._runs: dict[Backend, BackendRun] = {}
        self._step_backends: dict[str, Backend] = {}
        self._flights: dict[int, _Flight] = {}
        self._ready: list[Key] = []
        self._held: list[Key] = []
        self._suspects: list[Key] = []
        self._deferred: collections.deque[Key] = collections.deque()
        self._probes = 0
        self._probe_limit = 2 * self.workers
        self._queued: set[Key] = set()
        self._started: set[Key] = set()
        self._received: dict[Key, int] = {}
        self._opened: set[str] = set()
        self._fans = {n: Fan() for n in self.plan.stale if self.steps[n].over}
        self._made: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}
        self._estimates = packing.Estimates(self.durations, self._probe_limit)
        self.took = self._estimates.took  # seconds a unit of each step took in this run
        self._unbatched: set[str] = set()
        self._fused: set[str] = set()
        self._failures: dict[Key, int] = {}
        self._fail_count = 0
        self._deadlines: dict[Key, float] = {}
        self._took_last: dict[str, Key] = {}
        self._killed: dict[Key, str] = {}
        self._failed_listeners: set[int] = set()
        deps = self.plan.deps
        if len(stale) == len(deps):  # (a forced run, or a first one: every step runs)
            self._waiting = {n: set(deps[n]) for n in self.plan.stale}
        else:
            self._waiting = {n: set(deps[n] & stale) for n in self.plan.stale}
        for child, parent in chained.items():
            self._waiting[child].discard(parent)
        self._children: dict[str, list[str]] = {}
        for child, parents in self._waiting.items():
            for parent in parents:
                self._children.setdefault(parent, []).append(child)
        self._followers: dict[str, list[str]] = {}
        for child, parent in chained.items():
            self._followers.setdefault(parent, []).append(child)

    def run(self) -> RunResult:
        """Run the plan to its end (or Ctrl-C, or `cancel()`); return the
        records. Mutates the namespace (outputs) and nothing else outside
        itself. Runs in the calling thread."""
        self._emit(RunStarted(self.result, tuple(self.plan.order), self.result.deps))
        try:
            for name in self.plan.stale:
                self._open_if_ready(name)
            self._loop()
            self._settle_unbound()
        except KeyboardInterrupt:
            self.result.interrupted = True
            self._stop_all("the run was interrupted")
        finally:
            self._close_runs()  # (a process pool held for the run: others may use it now)
            self.result.end = time.time()
            if len(self.result.waits) % 2:  # interrupted as it waited
                self.result.waits.append(self.result.end)
            self._emit(RunFinished(self.result))
            self._release()
        return self.result

    def cancel(self) -> None:
        """Ask the loop to stop everything (from any thread)."""
        self._put(("cancel",))

    def _put(self, item: tuple[Any, ...]) -> None:
        """Give the loop `item` (from any thread), unless the run is over."""
        with self._over_lock:
            if not self._over:
                self._events.put(item)

    def _close_runs(self) -> None:
        """The run is over on every backend it used: each lets go of what it
        held for it (and the runs, which hold this scheduler's report, go)."""
        runs, self._runs = self._runs, {}
        for backend, run in runs.items():
            backend.close_run(run)

    def _release(self) -> None:
        """The run is over: drop what it held for its units (the notebook's
        inputs, slices, outcomes waiting for a merge, results that come late:
        an abandoned thread's, a killed worker's). A finished scheduler
        stays referenced (a RunHandle; a failed run's error, whose traceback
        IPython keeps in a cycle until a full garbage collection) and must
        not keep those, nor the shared files they map, alive with it."""
        with self._over_lock:
            self._over = True
            self._events = queue.Queue()
        self.external = {}
        self._made = {}
        self._fans.clear()
        self._flights.clear()

    # -- the loop ---------------------------------------------------------
    def _loop(self) -> None:
        next_event, events = self.clock.next_event, self._events
        waited, now = self.result.waits.append, time.time
        while True:
            self._submit_ready()
            if not self._flights:
                return
            waited(now())
            item = next_event(events)
            waited(now())
            if item is None:
                self._check_deadlines()
                continue
            if item[0] == "report":
                self._reported(*item[1:])
            elif item[0] == "cancel":
                self.result.cancelled = True
                self._stop_all("the run was cancelled")
                return
            elif (flight := self._flights.pop(id(item[1]), None)) is not None:  # else: stopped or resubmitted
                self._settle(flight)
            if self._deadlines:  # (after the item: a unit whose outcome is in is not past its deadline)
                self._check_deadlines()

    def _open_if_ready(self, name: str) -> None:
        """Open `name` if all it waits for has completed (and, chained, its
        parent has opened): make its units ready."""
        parent = self.plan.chained.get(name)
        if name in self._opened or self._waiting[name] or (parent and parent not in self._opened):
            return
        if self.result.steps[name].status != "waiting":
            return  # skipped or cancelled meanwhile
        self._opened.add(name)
        step = self.steps[name]
        fan = self._fans.get(name)
        if fan is None:
            self._ready.append((name, None))
        elif parent is not None:
            fan.count = self._fans[parent].count
            self._ready.extend((name, i) for i in self._fans[parent].done)
        else:
            assert step.over is not None
            try:
                fan.slices = fanout.split_input(step, self._input(name, step.over), self.workers, self._functions(step))
            except FanError as e:
                self._fail(name, str(e))
                return
            fan.count = len(fan.slices)
            self._ready.extend((name, i) for i in fan.slices)
        if fan is not None:
            assert fan.count is not None
            self.result.steps[name].slices = [SliceRecord(i, 0) for i in range(fan.count)]
            for i, s in fan.slices.items():
                self.result.steps[name].slices[i].size = s.size
        for follower in self._followers.get(name, ()):
            self._open_if_ready(follower)

    def _functions(self, step: Step) -> Callable[[str, str], Callable[..., Any]]:
        """The notebook's functions `step` names (--filter, --merge), by name
        and option: for fanout.py."""
        return lambda name, option: self._function(name, step, option)

    def _function(self, name: str, step: Step, option: str) -> Callable[..., Any]:
        func = self._input(step.name, name)
        if func is MISSING or not callable(func):
            raise SliceError(
                f"{option} {name}: `{name}` is not a function in the notebook; define it in a cell run before %parrun"
            )
        return func  # type: ignore[no-any-return]

    # -- submitting ---------------------------------------------------------
    def _submit_ready(self) -> None:
        """Submit what is ready: suspects alone first, then the ready units,
        packed into tasks (packing.pack)."""
        while True:
            deferred = self._deferred
            if deferred and (self._probes < self._probe_limit or self._estimates.typical is not None):
                for _ in range(packing.undeferred(len(deferred), self._estimates, self._probe_limit - self._probes)):
                    self._ready.append(deferred.popleft())
            if not (self._held or self._ready or self._suspects):
                return  # the common case, once per event: keep it O(1)
            self._submit_pass()
            # Deferred units wait for probes in flight; if a probe could not
            # be sent after all (PicklingProblem), there may be none left.
            if not (self._deferred and self._probes < self._probe_limit):
                return

    def _submit_pass(self) -> None:
        waiting = self._held + self._ready
        self._held, self._ready = [], []
        while self._suspects and not self._shared_fate_in_flight():
            suspect = self._suspects.pop(0)
            if self._wanted(suspect):
                backend = self._backend(suspect)
                self._submit(self._chain_from(suspect, backend), backend, solo=True)
        isolating = bool(self._suspects) or any(f.solo for f in self._flights.values())
        units: list[tuple[list[Key], Backend]] = []
        for key in waiting:
            # (a chained slice whose slice upstream is not done comes back
            # when that is: in its chain, or ready after it)
            if not self._wanted(key) or (key[1] is not None and self._needs_upstream(key)):
                continue
            backend = self._backend(key)
            if isolating and backend.shared_fate:
                self._held.append(key)
                continue
            units.append((self._chain_from(key, backend) if key[1] is not None else [key], backend))
        parcels, deferred = packing.pack(units, self._estimates, self._unbatched, self._probe_limit - self._probes)
        self._deferred.extend(deferred)
        failed = self._fail_count
        for kind, keys, backend in parcels:
            if self._fail_count != failed:  # a step failed as this pass submitted: what it skips is not wanted
                keys = self._still_wanted(keys, batch=kind == packing.BATCH_OF_SMALL)
                if not keys:
                    continue
            if kind == packing.FUSE:
                keys = self._fuse(keys[0], backend)
            self._submit(keys, backend, batch=kind == packing.BATCH_OF_SMALL, probe=kind == packing.PROBE)

    def _still_wanted(self, keys: list[Key], batch: bool) -> list[Key]:
        """Of `keys` (a batch, else a chain), those still to submit (a chain
        stops at its first unit that is not)."""
        if batch:
            return [k for k in keys if self._wanted(k)]
        for i, k in enumerate(keys):
            if not self._wanted(k):
                return keys[:i]
        return keys

    def _fuse(self, key: Key, backend: Backend) -> list[Key]:
        """`key` and the small steps fused behind it (packing.fuse), which
        open here, in the task of the step they wait for."""
        keys = packing.fuse(key, self._estimates, self._unbatched, lambda name: self._next_link(name, backend))
        for child, _ in keys[1:]:
            self._opened.add(child)
            self._fused.add(child)
        return keys

    def _next_link(self, name: str, backend: Backend) -> str | None:
        """The one step that `name` alone holds back, if it could go in the
        same task after it: not open, not fanned out, waiting, on `backend`.
        (Two such steps could run side by side; others that wait for more,
        like a join at the end of a chain, open when the task is back.)"""
        held = [c for c in self._children.get(name, ()) if self._waiting[c] == {name}]
        if len(held) != 1:
            return None
        child = held[0]
        if (
            child in self._opened
            or self.steps[child].over is not None
            or self.result.steps[child].status != "waiting"
            or self._backend((child, None)) is not backend
        ):
            return None
        return child

    def _unfuse(self, key: Key) -> bool:
        """If `key` was fused behind the step it waits for, close it again (it
        opens when that step completes) and say so."""
        name, index = key
        if index is not None or name not in self._fused:
            return False
        self._fused.discard(name)
        self._opened.discard(name)
        if self.result.steps[name].status in ("queued", "running"):
            self.result.steps[name].status = "waiting"
        return True

    def _wanted(self, key: Key) -> bool:
        """Whether `key` still has to be submitted: its step has not failed or
        been cancelled meanwhile, and the unit is neither in flight (say, in a
        chain with the slice before it) nor done."""
        name, index = key
        if self.result.steps[name].status not in ("waiting", "queued", "running") or key in self._queued:
            return False
        return index is None or index not in self._fans[name].done

    def _submit(
        self, keys: list[Key], backend: Backend, solo: bool = False, batch: bool = False, probe: bool = False
    ) -> None:
        """Submit `keys` as one task for one worker of `backend`: a unit and
        the open chained slices or fused steps that follow it, or (`batch`)
        independent small units."""
        run = self._runs.get(backend)
        if run is None:
            run = self._runs[backend] = backend.open_run(self._report_here if backend.inline else self._report)
        tasks: list[Task] = []
        made: dict[str, str] = {}
        for k in keys:
            task = self._task(k, backend, chained=bool(tasks) and not batch, made=made)
            if not batch:
                made.update(dict.fromkeys(self.steps[k[0]].writes, k[0]))
            # A small unit does not report its start (the outcome says when), but
            # the later slices of a chain do: if their worker dies, the last one
            # that started is the culprit. (A batch or fused chain that crashes
            # is run again unit by unit instead: crashes.py.)
            if task.timeout is None and (
                batch or ((not tasks or k[1] is None) and (self._estimates.estimate(k[0]) or SMALL) < SMALL)
            ):
                task.report_start = False
            tasks.append(task)
            self._mark_queued(k, backend)
        try:
            future = backend.submit(tasks, run)
        except PicklingProblem as e:
            self._queued.difference_update(keys)
            fused = [k for k in keys[1:] if self._unfuse(k)]
            if batch or fused:  # find which: alone, the unit that cannot be sent fails
                for k in keys if batch else keys[:1]:
                    self._submit([k], backend)
            else:
                self._fail_unit(keys[0], str(e) + "\n")
            return
        if probe:
            self._probes += 1
        flight = _Flight(keys, future, backend, solo, probe, batch)
        self._flights[id(future)] = flight
        future.add_done_callback(self._on_done)

    def _chain_from(self, key: Key, backend: Backend) -> list[Key]:
        """`key` and, while the next chained step is open on the same
        backend, its slice of the same index (one worker runs them all)."""
        if key[0] not in self._followers:
            return [key]
        fans = self._fans

        def follows(name: str, index: int) -> bool:
            return (
                name in self._opened
                and index not in fans[name].submitted
                and self._wanted((name, index))
                and self._backend((name, index)) is backend
            )

        return fanout.chain_after(key, self._followers, follows)

    def _task(self, key: Key, backend: Backend, chained: bool, made: Mapping[str, str]) -> Task:
        """The task of unit `key`; `chained`: it follows the unit before it in
        the same task, and takes the inputs whose nearest source is in `made`
        (name -> the unit before it that writes it last) from them, in the
        worker (an input that unit leaves unbound comes from the kernel)."""
        name, index = key
        step = self.steps[name]
        sources = self.plan.sources[name]
        needed = step.sent(sources)  # (with the free names of the functions it calls)
        inherits = (
            tuple(sorted(r for r in needed if r in made and sources.get(r, ())[:1] == (made[r],))) if chained else ()
        )
        inputs = {r: v for r in needed if (v := self._input(name, r, skip=int(r in inherits))) is not MISSING}
        functions = tuple(r for r in needed if any(r in self.steps[s].functions for s in sources[r]))
        if index is not None and not chained:  # (chained: the slice comes from the unit before, in `inherits`)
            assert step.over is not None
            parent = self.plan.chained.get(name)
            inputs.pop(step.over, None)
            if parent is not None:
                upstream = self._fans[parent].done[index].outputs
                if step.over in upstream:
                    inputs[step.over] = upstream[step.over]
            else:
                inputs[step.over] = self._fans[name].slices[index].value
        return Task(
            name,
            step.source,
            inputs,
            step.outputs,
            step.first_line,
            step.header,
            slice=index,
            over=step.over if index is not None else None,
            inherits=inherits,
            timeout=self._timeout(step),
            log_level=self._log_level,
            flags=step.flags,
            log_format=self._log_format,
            home=self._home,
            display="display" in needed  # IPython's: a builtin in a kernel, or imported
            and is_ipython_display(inputs.get("display", getattr(builtins, "display", None))),
            # (an isolated worker changes its own unpickled copies: nothing to copy)
            copies=() if backend.isolated else tuple(sorted(step.copies)),
            functions=functions,
        )

    def _mark_queued(self, key: Key, backend: Backend) -> None:
        name, index = key
        record = self.result.steps[name]
        record.backend = backend.name
        if record.status == "waiting":
            record.status = "queued"
        self._queued.add(key)
        self._received.pop(key, None)
        if index is None:
            record.attempts += 1
            record.worker = None  # until a worker takes it (again)
        else:
            self._fans[name].submitted.add(index)
            piece = record.slices[index]
            piece.status, piece.worker = "queued", None
            piece.attempts += 1
            record.attempts = max(record.attempts, piece.attempts)

    # -- reports ------------------------------------------------------------
    def _reported(self, kind: str, name: str, index: int | None, payload: Any, here: bool = False) -> None:
        """A worker took a unit ("start"), a unit that did not say so
        prints its first line ("printing"), or a unit printed ("log").
        `here`: the unit runs in this thread, inside its submit (inline),
        where only its own alarm can stop it: no deadline for the loop."""
        record = self.result.steps.get(name)
        if record is None or record.status not in ("queued", "running"):
            return  # a late report of a step already settled
        if kind == "log":
            if (name, index) in self._queued:  # else its outcome came first and had it all
                self._received[(name, index)] = self._received.get((name, index), 0) + len(payload)
                self._log(name, index, payload)
            return
        if (name, index) not in self._queued:
            return  # a start reported after the unit's result arrived
        worker, started = payload
        took = self._took_last.get(worker)
        if took != (name, index):
            # A worker runs one unit at a time: the one it took before is
            # over (in a chain or a batch, its task is not back yet). Its
            # deadline is not this unit's.
            if took is not None:
                self._deadlines.pop(took, None)
            self._took_last[worker] = (name, index)
        if kind == "printing":  # a unit that did not report its start prints: show it started first
            if (record.slices[index] if index is not None else record).status == "queued":
                self._mark_running((name, index), worker, started)
            return  # (not `_started`: it says nothing of which unit of its task a crash was in)
        self._started.add((name, index))
        limit = self._timeout(self.steps[name])
        if limit is not None and not here:
            grace = self._backend((name, index)).grace
            self._deadlines[(name, index)] = self.clock.now() + limit + grace
        self._mark_running((name, index), worker, started)

    def _mark_running(self, key: Key, worker: str, started: float) -> None:
        """Unit `key` runs on `worker` since `started`: record it, tell listeners."""
        name, index = key
        record = self.result.steps[name]
        if index is None:
            record.start, record.worker = started, worker
        if record.status == "queued":
            record.status = "running"
            if self.listeners:
                self._emit(StepStarted(self.result, name))
        if index is not None:
            piece = record.slices[index]
            piece.status, piece.start, piece.worker = "running", started, worker
            self._emit(SliceStarted(self.result, name, index))

    def _report(self, kind: str, step: str, index: int | None, payload: Any) -> None:
        """A backend's report, from any thread: for the loop."""
        self._put(("report", kind, step, index, payload))

    def _report_here(self, kind: str, step: str, index: int | None, payload: Any) -> None:
        """An inline backend's report: its unit runs in the loop's thread,
        inside the loop's submit: shown now, not when the loop is back."""
        with outside_step():
            self._reported(kind, step, index, payload, here=True)

    def _on_done(self, future: Future[list[Outcome]]) -> None:
        self._put(("done", future))  # any thread

    # -- versions -----------------------------------------------------------
    def _timeout(self, step: Step) -> float | None:
        return step.timeout if step.timeout is not None else self.timeout

    def _retries(self, step: Step) -> int:
        return step.retries if step.retries is not None else self.retries

    def _input(self, step: str, var: str, skip: int = 0) -> Any:
        """The version of `var` step `step` reads (MISSING: none), from
        the steps above it (`plan.sources`, past the first `skip`)."""
        return self._version(self.plan.sources[step].get(var, ())[skip:], var)[0]

    def _version(self, sources: Iterable[str], var: str) -> tuple[Any, str | None]:
        """The version of `var` the first of `sources` that binds or deletes
        it made, in this run or before (`versions`), and that step; else
        the notebook's, and None. MISSING: no value."""
        for source in sources:
            made = self._made.get(source)
            if made is not None:
                outputs, deleted = made
                if var in outputs:
                    return outputs[var], source
                if var in deleted:
                    return MISSING, source
                continue  # (it did not bind `var` this time: the version above it stands)
            if self.versions is not None:
                value = self.versions(source, var)
                if value is not ABOVE:
                    return value, source
        if var in self.external:
            return self.external[var], None
        return self.namespace.get(var, MISSING), None

    def _settle_unbound(self) -> None:
        """After every step: a name whose last writer left it unbound (an
        `if` not taken) has, as after a top-to-bottom run, the version of
        the steps above that writer (`plan.above`); not when one of them
        that ran did not finish (its version is not known)."""
        ran = set(self.plan.stale)
        for var, sources in self.plan.above.items():
            last = self.plan.last[var]
            made = self._made.get(last)
            if made is None or var in made[0] or var in made[1]:
                continue  # (it bound or deleted it, or did not finish: _complete did what there is to do)
            if any(s in ran and s not in self._made for s in sources):
                continue
            value, source = self._version(sources, var)
            if source is None:
                continue  # the notebook's own value stands
            if value is MISSING:
                self.namespace.pop(var, None)
            else:
                self.namespace[var] = with_globals(value, self.namespace)
            self.holders[var] = source

    # -- outcomes -----------------------------------------------------------
    def _settle(self, flight: _Flight) -> None:
        if flight.probe:
            self._probes -= 1
        self._queued.difference_update(flight.keys)
        for key in flight.keys:
            self._deadlines.pop(key, None)
        # The future's error is read, not raised: raising would add this frame
        # (the run, the flight, its future) to the error the future keeps, a
        # cycle that holds the run's outcomes until a full garbage collection.
        error = flight.future.exception()
        if isinstance(error, WorkerCrash):
            self._crashed(flight, error)
            return
        if error is not None:  # nbpar could not run or read back the task
            self._fail_unit(flight.keys[0], f"nbpar could not run it: {type(error).__name__}: {error}\n")
            return
        outcomes = flight.future.result()
        # A chain stops at its first failing slice: the slices after it were
        # not run, and their steps are skipped as dependents of the failure.
        # A spent worker process (worker.execute_all) runs no more units: of
        # those it did not run, the first and those of a batch are ready
        # again (a chained or fused one comes back when the one before is done).
        self._started.difference_update(flight.keys)
        for i, (name, index) in enumerate(flight.keys[len(outcomes) :], len(outcomes)):
            if i == 0 or flight.batch:
                if index is not None:
                    self._fans[name].submitted.discard(index)
                    self.result.steps[name].slices[index].status = "waiting"
                self._ready.append((name, index))
            elif not self._unfuse((name, index)):
                assert index is not None
                self._fans[name].submitted.discard(index)
                self.result.steps[name].slices[index].status = "waiting"
        # What the units made ready is submitted once, as the last one completes.
        steps = self.result.steps
        last = len(outcomes) - 1
        for i, (key, outcome) in enumerate(zip(flight.keys, outcomes, strict=False)):
            self._fused.discard(key[0])
            if steps[key[0]].status in ("queued", "running"):  # else failed or skipped meanwhile
                self._unit_done(key, outcome, submit=i == last)

    def _unit_done(self, key: Key, outcome: Outcome, submit: bool) -> None:
        """Unit `key` came back. With `submit`, what it made ready is
        submitted before its commit."""
        name, index = key
        record = self.result.steps[name]
        self._estimates.learn(name, outcome.end - outcome.start)
        late = self._overran(key, outcome)
        if late is not None:
            outcome = replace(outcome, outputs={}, deleted=(), error=late)
        if (record.slices[index] if index is not None else record).status == "queued":
            # its start was not reported (a small unit), or not yet: listeners see it now
            self._mark_running(key, outcome.worker, outcome.start)
        if outcome.output:
            missed = outcome.output[self._received.pop(key, 0) :]  # printed, not reported live
            if missed:
                self._log(name, index, missed)
        if index is None:
            record.start, record.end, record.worker = outcome.start, outcome.end, outcome.worker
            record.gil = outcome.gil
            if not outcome.ok:
                self._unit_failed(key, outcome.error or "", outcome.final)
                return
            read = {r: v for r in self.plan.sources[name] if (v := self._input(name, r)) is not MISSING}
            self._complete(name, outcome.outputs, outcome.deleted, read, submit)
            return
        piece = record.slices[index]
        piece.start, piece.end, piece.worker = outcome.start, outcome.end, outcome.worker
        if outcome.size is not None:
            piece.size = outcome.size
        piece.status = "done" if outcome.ok else "failed"
        if not outcome.ok:
            self._unit_failed(key, outcome.error or "", outcome.final)
            return
        fan = self._fans[name]
        fan.done[index] = outcome
        self._emit(SliceFinished(self.result, name, index))
        for follower in self._followers.get(name, ()):
            if follower in self._opened and index not in self._fans[follower].submitted:
                self._ready.append((follower, index))
        if len(fan.done) == fan.count:
            self._merge(name)

    def _overran(self, key: Key, outcome: Outcome) -> str | None:
        """The error of a unit that succeeded after its timeout (nothing
        stopped it in time: a thread step, or an inline one, holding the GIL
        in C code; a step that caught the alarm), else None. Such a unit is
        never done: what it made is dropped."""
        limit = self._timeout(self.steps[key[0]])
        took = outcome.end - outcome.start
        if not outcome.ok or limit is None or took <= limit:
            return None
        why = self._backend(key).late
        return (
            f"{_describe(key)} ran for {took:.1f}s, past its timeout of {limit:g}s (--timeout {limit:g}), and "
            f"could not be stopped in time{f': {why}' if why else ''}. What it made is dropped.\n"
        )

    def _merge(self, name: str) -> None:
        """Every slice of `name` is done: merge each output in slice order."""
        step = self.steps[name]
        fan = self._fans[name]
        record = self.result.steps[name]
        record.start, record.end, record.worker = fanout.span(fan)
        shares = [o.gil for o in fan.done.values() if o.gil is not None]
        record.gil = sum(shares) / len(shares) if shares else None
        try:
            outputs, deleted = fanout.merged(step, fan, self._functions(step), record.notes)
        except FanError as e:
            self._fail(name, str(e))
            return
        for note in record.notes:  # shown with the step's output (not part of it: record.output is the step's)
            self._emit(StepLog(self.result, name, f"nbpar: {note}\n"))
        inputs = {r: v for r in self.plan.sources[name] if (v := self._input(name, r)) is not MISSING}
        self._complete(name, outputs, deleted, inputs)

    def _complete(
        self, name: str, outputs: dict[str, Any], deleted: tuple[str, ...], inputs: dict[str, Any], submit: bool = True
    ) -> None:
        self._made[name] = (outputs, deleted)
        last = self.plan.last
        for var, value in outputs.items():
            if last.get(var) == name:  # (else a version only the steps below it read)
                self.namespace[var] = with_globals(value, self.namespace)  # a function: called from a cell too
                self.holders[var] = name
        for gone in deleted:
            if last.get(gone) == name:
                self.namespace.pop(gone, None)
                self.holders[gone] = name
        self.result.steps[name].status = "done"
        if self.listeners:
            self._emit(StepFinished(self.result, name))
        for child in self._children.get(name, ()):
            self._waiting[child].discard(name)
            self._open_if_ready(child)
        try:
            if submit:
                self._submit_ready()  # dependents first: the commit may free big old values
        finally:  # (an inline dependent runs inside _submit_ready, and may be interrupted)
            if self.on_commit is not None:
                self.on_commit(self.steps[name], inputs, outputs, deleted)

    # -- crashes and timeouts -------------------------------------------------
    def _crashed(self, flight: _Flight, crash: WorkerCrash) -> None:
        """A worker died: the units in flight it failed (on a backend with
        shared fate, every one in flight there) are judged by
        crashes.isolate: culprits fail (or retry), suspects run again alone,
        the innocent run again."""
        backend = flight.backend
        cohort = [flight]
        if backend.shared_fate:
            cohort += [f for f in self._flights.values() if f.backend is backend]
        for f in cohort[1:]:
            self._drop(f)
        verdicts, unbatch = crashes.isolate(
            [(f.keys, f.batch) for f in cohort], self._started, self._killed, self._fused
        )
        self._unbatched.update(unbatch)
        keys = [key for key, _ in verdicts]
        self._queued.difference_update(keys)
        self._started.difference_update(keys)
        for key in keys:
            self._deadlines.pop(key, None)
            if key[1] is not None:
                self._fans[key[0]].submitted.discard(key[1])
                self.result.steps[key[0]].slices[key[1]].status = "waiting"
        for key, verdict in verdicts:
            if verdict == crashes.CULPRIT:
                killed = self._killed.pop(key, "")  # (its worker was stopped past its timeout)
                self._unit_failed(key, killed or self._crash_error(key, crash))
            elif verdict == crashes.SUSPECT:
                self._suspects.append(key)
            elif not self._needs_upstream(key) and not self._unfuse(key):  # else its chain brings it back
                self._ready.append(key)

    def _needs_upstream(self, key: Key) -> bool:
        """Whether `key` is a chained slice whose slice upstream is not done."""
        name, index = key
        parent = self.plan.chained.get(name)
        return index is not None and parent is not None and index not in self._fans[parent].done

    def _crash_error(self, key: Key, crash: WorkerCrash) -> str:
        worker = self._worker(key)
        return (
            f"The worker process{f' ({worker})' if worker else ''} running {_describe(key)} died: {crash}\n"
            + (f"Its last words (Python's faulthandler):\n{crash.last_words}\n" if crash.last_words else "")
            + "The pool of workers is restarted for the rest of the run. To find the cause, run the step "
            "alone (%parrun NAME --workers 1), and give it --retries N if the crash is a fluke.\n"
        )

    def _check_deadlines(self) -> None:
        """Stop the units that are past their timeout (and the grace their
        backend gives a unit to stop itself)."""
        now = self.clock.now()
        for key in [k for k, deadline in self._deadlines.items() if now >= deadline]:
            del self._deadlines[key]
            flight = next((f for f in self._flights.values() if key in f.keys), None)
            if flight is not None and not flight.future.done():  # (done: its outcome is queued, see _overran)
                self._expire(key, flight)

    def _expire(self, key: Key, flight: _Flight) -> None:
        limit = self._timeout(self.steps[key[0]])
        what = f"{_describe(key)} did not finish within its timeout of {limit:g}s (--timeout {limit:g})"
        worker = self._worker(key)
        if worker and flight.backend.stop_worker(worker):
            # It ignored the alarm its worker raised (busy in native code): its
            # worker is stopped. Its flight fails with a WorkerCrash (with
            # shared fate, every flight there): `_crashed` sees this unit in
            # `_killed` and runs the others again.
            self._killed[key] = (
                f"{what}, and did not stop when asked (it was busy in native code, or caught the "
                f"alarm): its worker process ({worker}) was killed.\n"
            )
            return
        # A thread cannot be stopped: abandon it, its result is dropped.
        flight.backend.abandon(flight.future)  # (a thread's: the processes its steps started are killed)
        self._drop(flight)
        self._queued.difference_update(flight.keys)
        self._started.difference_update(flight.keys)
        for other in flight.keys:
            self._deadlines.pop(other, None)
            if other[1] is not None:
                self._fans[other[0]].submitted.discard(other[1])
            if other != key and not self._needs_upstream(other) and not self._unfuse(other):
                self._ready.append(other)
        self._unit_failed(
            key,
            f"{what}. A thread cannot be stopped: it was abandoned, runs on in the background, "
            "and what it makes is dropped.\n",
        )

    def _drop(self, flight: _Flight) -> None:
        """Forget a flight whose outcome will not be settled."""
        del self._flights[id(flight.future)]
        if flight.probe:
            self._probes -= 1

    # -- failures -------------------------------------------------------------
    def _unit_failed(self, key: Key, error: str, final: bool = False) -> None:
        """An attempt of `key` failed: run it again if its step allows more
        attempts (--retries) and the failure is not `final` (one that would
        come again: an output that cannot be pickled), else fail its step."""
        name, index = key
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        allowed = self._retries(self.steps[name])
        if final and failures <= allowed:
            error = f"{error}(not retried: this failure would come again on every attempt)\n"
        if final or failures > allowed:
            if allowed and not final:
                error = f"(failed {failures} attempts; this was the last)\n{error}"
            self._fail_unit(key, error)
            return
        lines = [line.strip() for line in error.strip().splitlines() if line.strip()] or ["it failed"]
        why = lines[-1] if lines[0].startswith("Traceback") else lines[0]  # the exception, or nbpar's first line
        self._log(name, index, f"nbpar: attempt {failures} of {_describe(key)} failed ({why}); retrying\n")
        if index is not None:
            self._fans[name].submitted.discard(index)
            self.result.steps[name].slices[index].status = "waiting"
        self._ready.append(key)

    def _fail_unit(self, key: Key, error: str) -> None:
        name, index = key
        if index is not None:
            fan = self._fans[name]
            described = fan.slices[index].describe() if index in fan.slices else f"slice {index}"
            error = f"{described} of step '{name}' failed:\n{error}"
        self._fail(name, error)

    def _fail(self, name: str, error: str) -> None:
        self._fail_count += 1
        record = self.result.steps[name]
        record.status, record.error = "failed", error
        if record.end is None:
            record.end = time.time()
        self._emit(StepFinished(self.result, name))
        if self.fail_fast:
            self._stop_all(f"--fail-fast: step '{name}' failed")
            return
        for dependent in self._descendants(name):
            rec = self.result.steps[dependent]
            if rec.status in ("waiting", "queued", "running"):
                rec.status, rec.reason = "skipped", f"it needs '{name}', which failed"
                self._emit(StepFinished(self.result, dependent))

    def _stop_all(self, reason: str) -> None:
        """Stop every unit in flight and cancel every step not finished."""
        for backend in {id(f.backend): f.backend for f in self._flights.values()}.values():
            backend.stop(self._runs[backend])
        for rec in self.result.steps.values():
            if rec.status in ("waiting", "queued", "running"):
                if rec.status == "running":
                    rec.end = time.time()
                rec.status, rec.reason = "cancelled", reason
                self._emit(StepFinished(self.result, rec.name))
        self._flights.clear()
        self._probes = 0
        self._deferred.clear()
        self._deadlines.clear()
        self._ready.clear()
        self._held.clear()
        self._suspects.clear()

    # -- helpers -------------------------------------------------------------
    def _log(self, name: str, index: int | None, text: str) -> None:
        record = self.result.steps[name]
        record.output += text
        self._emit(StepLog(self.result, name, text, index))

    def _descendants(self, name: str) -> list[str]:
        found: list[str] = []
        frontier = {name}
        for n in self.plan.order:  # topological: parents come first
            if not self.plan.deps.get(n, frozenset()).isdisjoint(frontier):
                frontier.add(n)
                found.append(n)
        return found

    def _worker(self, key: Key) -> str | None:
        name, index = key
        record = self.result.steps[name]
        return record.worker if index is None else record.slices[index].worker

    def _backend(self, key: Key) -> Backend:
        backend = self._step_backends.get(key[0])
        if backend is None:
            backend = self._step_backends[key[0]] = self.backend_for(self.steps[key[0]])
        return backend

    def _shared_fate_in_flight(self) -> bool:
        return any(f.backend.shared_fate for f in self._flights.values())

    def _emit(self, event: Event) -> None:
        for number, listener in enumerate(self.listeners):
            try:
                listener(event)
            except Exception as e:  # a broken display or plugin must not lose results
                if number not in self._failed_listeners:
                    self._failed_listeners.add(number)
                    _report_listener_error(listener, event, e)


MISSING: Any = object()  # no value
ABOVE: Any = object()  # a step's version of a name it did not bind: the version above it


_frozen = 0  # runs going on under frozen_heap()
_frozen_lock = threading.Lock()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the objects that exist now out of the garbage collector's scans
    while a run goes on (gc.freeze). A run makes many short-lived objects,
    and the full collection they trigger would scan the notebook's whole
    heap: 60 ms in a small kernel in a run of 10,000 tiny steps, far more in
    one that holds millions of objects. The run's own garbage is collected
    as usual; cycles among the frozen objects are, after the last run ends."""
    global _frozen
    with _frozen_lock:
        if _frozen == 0:
            gc.freeze()
        _frozen += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen -= 1
            if _frozen == 0:
                gc.unfreeze()


def _report_listener_error(listener: Listener, event: Event, error: Exception) -> None:
    """Say, on stderr, that `listener` raised `error` on `event`, with its
    traceback (without nbpar's frame)."""
    name = getattr(listener, "__qualname__", None) or type(listener).__qualname__
    tb = error.__traceback__
    frames = traceback.format_exception(type(error), error, tb and tb.tb_next)
    print(
        f"nbpar: listener {name} raised {type(error).__name__} on {type(event).__name__}; the run goes on, "
        "and this listener's later errors in this run are not shown.\n" + "".join(frames).rstrip(),
        file=sys.stderr,
    )


def _describe(key: Key) -> str:
    return f"step '{key[0]}'" + (f" (slice {key[1]})" if key[1] is not None else "")
