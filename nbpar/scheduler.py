"""The run loop: one ready queue of units, one owner of run state.

A *unit* is what a worker runs: a whole step, or one slice of a step fanned
out with `--over` (key `(step, index)`, index None for a whole step).

Data flow::

    Plan(order, stale, deps) --> Scheduler.run()
      a step *opens* when every step it reads from has completed:
        whole step         -> one unit, ready
        fanned-out step    -> split its --over input: one unit per slice, ready
        chained fan-out    -> (over an output of a fanned-out step A, same
                              slicing) unit i is ready as soon as A's slice i
                              is done; no merge and re-split in between
      ready units --backend.submit([Task, ...])--> Future --done--> events queue
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
      loop: events.get(timeout=0.1)  (short waits: Ctrl-C arrives at once)
        unit ok      -> whole step: its outputs are its versions of those
                        names (kept for the steps below it that read them:
                        a unit's inputs are the versions of the steps above
                        it, `plan.sources`); those no later step of the run
                        writes go into the namespace, all together
                        slice: kept; when every slice is done, the outputs
                        are merged in slice order and written the same way
        unit error   -> the step fails (naming the slice), writes nothing;
                        what depends on it is skipped (fail-fast: all stops)
        worker crash -> see below
      a step *completes* when its outputs are written: dependents may open.

Only `run()`'s loop (in one thread) changes the `RunResult` and the
namespace; backends and their threads only put items on the events queue.
An inline unit runs in the loop's thread, inside its submit: its reports are
handled at once, there (so its start and lines are shown live), outside the
unit's output capture. Listeners get an event after each change.

A dead worker process fails every unit in flight in the pool with
`WorkerCrash`, the innocent with the culprit. Of each task, only the last
unit its worker took can be the culprit. When only one is, it is the
culprit. Otherwise all of them become suspects and are run again one at a
time, alone in the pool (other process units wait; thread and inline units
go on): a suspect that crashes alone is the culprit. The units of a crashed
batch are run again one per task, so the next crash names its unit.
"""

from __future__ import annotations

import builtins
import collections
import gc
import logging
import math
import queue
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from .backends import Backend, WorkerCrash, kill_worker
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
from .graph import Step
from .partition import MERGES, MergeError, Slice, SliceError, listed_note, merge, split
from .records import RunResult, SliceRecord, StepRecord
from .worker import (
    Outcome,
    PicklingProblem,
    Task,
    is_ipython_display,
    kernel_home,
    notebook_log_format,
    outside_step,
    with_globals,
)

Commit = Callable[[Step, dict[str, Any], dict[str, Any], tuple[str, ...]], None]  # (step, inputs, outputs, deleted)
Versions = Callable[[str, str], Any]  # (step, name) -> the version of `name` that step left, or ABOVE
Key = tuple[str, int | None]  # (step, slice index or None for a whole step)


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


@dataclass
class _Fan:
    """The slices of a fanned-out step in this run."""

    count: int | None = None  # known when the step (or its chain parent) opens
    slices: dict[int, Slice] = field(default_factory=dict)  # split here (not chained)
    done: dict[int, Outcome] = field(default_factory=dict)
    submitted: set[int] = field(default_factory=set)


@dataclass
class _Flight:
    """Units submitted as one task, and their future."""

    keys: list[Key]
    future: Future[list[Outcome]]
    backend: Backend
    solo: bool = False
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
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._over = False  # the run has ended: what comes late is dropped
        self._over_lock = threading.Lock()  # guards _over, and puts on _events against the last drain
        self._loop_thread: int | None = None  # the thread running run()'s loop
        self._flights: dict[int, _Flight] = {}  # by id of the flight
        self._ready: list[Key] = []
        self._held: list[Key] = []  # ready process units waiting for a solo suspect
        self._suspects: list[Key] = []
        self._queued: set[Key] = set()  # units submitted and not yet given back
        self._started: set[Key] = set()  # those of them a worker has taken
        self._received: dict[Key, int] = {}  # characters of output reported live, per unit
        self._opened: set[str] = set()
        self.took: dict[str, float] = {}  # seconds a unit of each step took in this run
        self._typical: float | None = None  # a typical unit's seconds in this run, once known
        self._finished: list[float] = []  # the first units' seconds, to learn _typical
        self._probes = 0  # units of unknown duration in flight
        self._probe_limit = 2 * self.workers
        self._deferred: collections.deque[Key] = collections.deque()  # waiting for _typical
        self._unbatched: set[str] = set()  # steps whose batch crashed: one task per unit from then on
        self._fused: set[str] = set()  # small steps sent in the task of the step they wait for, not back yet
        self._failures: dict[Key, int] = {}  # failed attempts per unit (what --retries counts)
        self._deadlines: dict[Key, float] = {}  # units started with a timeout: when the kernel steps in
        self._killed: dict[Key, str] = {}  # timed-out units whose worker process was killed: their error
        self._step_backends: dict[str, Backend] = {}  # backend_for(step), asked once per step
        self._failed_listeners: set[int] = set()  # those that raised in this run (by position): reported once
        self._fans = {n: _Fan() for n in self.plan.stale if self.steps[n].over}
        self._made: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}  # step -> (outputs, deleted), this run
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
        self._loop_thread = threading.get_ident()
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
            for backend in {id(b): b for b in self._step_backends.values()}.values():
                backend.release()  # (a process pool held for the run: others may use it now)
            self.result.end = time.time()
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
        while True:
            self._submit_ready()
            if not self._flights:
                return
            try:
                item = self._events.get(timeout=0.1)
            except queue.Empty:
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
            try:
                fan.slices = {s.index: s for s in self._split(step)}
            except SliceError as e:
                self._fail(name, f"step '{name}': {e}\n")
                return
            except Exception as e:  # the --filter function raised
                self._fail(name, f"step '{name}': --filter {step.filter} raised {type(e).__name__}: {e}\n")
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

    def _split(self, step: Step) -> list[Slice]:
        assert step.over is not None
        value = self._input(step.name, step.over)
        keep = self._function(step.filter, step, "--filter") if step.filter else None
        if step.slices is None and step.slice_size is None:
            return split(value, name=step.over, slices=self.workers, keep=keep)
        return split(value, name=step.over, slices=step.slices, slice_size=step.slice_size, keep=keep)

    def _function(self, name: str, step: Step, option: str) -> Callable[..., Any]:
        func = self._input(step.name, name)
        if func is MISSING or not callable(func):
            raise SliceError(
                f"{option} {name}: `{name}` is not a function in the notebook; define it in a cell run before %parrun"
            )
        return func  # type: ignore[no-any-return]

    def _submit_ready(self) -> None:
        if self._deferred and (self._probes < self._probe_limit or self._typical is not None):
            self._ready.extend(self._undefer())
        if not (self._held or self._ready or self._suspects):
            return  # the common case, once per event: keep it O(1)
        waiting = self._held + self._ready
        self._held, self._ready = [], []
        while self._suspects and not self._process_in_flight():
            suspect = self._suspects.pop(0)
            if self._wanted(suspect):
                self._submit(self._chain_from(suspect), solo=True)
        isolating = bool(self._suspects) or any(f.solo for f in self._flights.values())
        small: dict[int, list[Key]] = {}  # by backend
        for key in waiting:
            if not self._wanted(key):
                continue
            if isolating and self._is_process(key):
                self._held.append(key)
                continue
            keys = self._chain_from(key)
            guess = self._estimate(key)
            backend = self._backend(key)
            if guess is None and backend.name != "inline":
                if self._probes >= self._probe_limit:
                    self._deferred.append(key)  # until the first units say how long units take
                    continue
                self._probes += 1
                self._submit(keys, probe=True)
            elif len(keys) == 1 and guess is not None and guess < SMALL and key[0] not in self._unbatched:
                small.setdefault(id(backend), []).append(key)
            else:
                self._submit(keys)
        for keys in small.values():
            self._submit_small(keys)

    def _undefer(self) -> list[Key]:
        """Deferred units to submit now: all of them once units of this run
        have said how long they take, else as many as may probe."""
        if self._typical is not None:
            keys, self._deferred = list(self._deferred), collections.deque()
            return keys
        free = max(0, self._probe_limit - self._probes)
        return [self._deferred.popleft() for _ in range(min(free, len(self._deferred)))]

    def _estimate(self, key: Key) -> float | None:
        """How long unit `key` will take: its step's, from this run or the
        last; or the typical unit of this run; None if nothing is known yet."""
        name = key[0]
        known = self.took.get(name, self.durations.get(name))
        return known if known is not None else self._typical

    def _submit_small(self, keys: list[Key]) -> None:
        """Submit units that take less than SMALL each: in batches when there
        are more than workers, each batch one task for one worker (as joblib
        batches small tasks), small enough to keep every worker busy."""
        workers = self._backend(keys[0]).workers
        if len(keys) <= workers:
            for key in keys:
                self._submit(self._fused_after(key))
            return
        known: list[Key] = []
        guessed: list[Key] = []  # only this run's typical unit says they are small
        for k in keys:
            (known if self._known(k[0]) else guessed).append(k)
        for group, most in ((known, len(keys)), (guessed, GUESSED_BATCH)):
            if not group:
                continue
            each = max(sum(self._estimate(k) or 0.0 for k in group) / len(group), 1e-6)
            size = max(1, min(math.ceil(len(group) / (2 * workers)), int(BATCH / each), most))
            for start in range(0, len(group), size):
                self._submit(group[start : start + size], batch=True)

    def _fused_after(self, key: Key) -> list[Key]:
        """`key` and the small steps after it that wait for nothing else
        (a chain of small steps: one task, one worker, no round trip to the
        kernel between them). A step is fused behind the one before only if
        it is the one step that the one before alone holds back: two such
        steps could run side by side. (Others that wait for more, like a
        join at the end of the chain, open when the task is back.)"""
        keys = [key]
        name, index = key
        total = self._estimate(key) or 0.0
        while index is None and len(keys) < FUSED_MAX:
            held = [c for c in self._children.get(name, ()) if self._waiting[c] == {name}]
            if len(held) != 1:
                break
            child = held[0]
            guess = self._estimate((child, None)) if self._known(child) else None
            if (
                guess is None
                or guess >= SMALL
                or child in self._opened
                or child in self._unbatched
                or self.steps[child].over is not None
                or self._waiting[child] != {name}
                or self.result.steps[child].status != "waiting"
                or self._backend((child, None)) is not self._backend(key)
                or total + guess > BATCH
            ):
                break
            total += guess
            self._opened.add(child)  # it opens here, in the task of the step it waits for
            self._fused.add(child)
            keys.append((child, None))
            name = child
        return keys

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

    def _known(self, name: str) -> bool:
        return name in self.took or name in self.durations

    def _wanted(self, key: Key) -> bool:
        """Whether `key` still has to be submitted: its step has not failed or
        been cancelled meanwhile, and the unit is neither in flight (say, in a
        chain with the slice before it) nor done."""
        name, index = key
        if self.result.steps[name].status not in ("waiting", "queued", "running") or key in self._queued:
            return False
        return index is None or index not in self._fans[name].done

    def _submit(self, keys: list[Key], solo: bool = False, batch: bool = False, probe: bool = False) -> None:
        """Submit `keys` as one task for one worker: a unit and the open
        chained slices that follow it, or (`batch`) independent small units."""
        backend = self._backend(keys[0])
        tasks: list[Task] = []
        made: dict[str, str] = {}
        for k in keys:
            task = self._task(k, chained=bool(tasks) and not batch, made=made)
            if not batch:
                made.update(dict.fromkeys(self.steps[k[0]].writes, k[0]))
            # A small unit does not report its start (the outcome says when), but
            # the later slices of a chain do: if their worker dies, the last one
            # that started is the culprit. (A batch or fused chain that crashes
            # is run again unit by unit instead.)
            if task.timeout is None and (
                batch or ((not tasks or k[1] is None) and (self._estimate(k) or SMALL) < SMALL)
            ):
                task.report_start = False
            tasks.append(task)
            self._mark_queued(k, backend)
        try:
            future = backend.submit(tasks, self._report)
        except PicklingProblem as e:
            self._queued.difference_update(keys)
            if probe:
                self._probes -= 1
            fused = [k for k in keys[1:] if self._unfuse(k)]
            if batch or fused:  # find which: alone, the unit that cannot be sent fails
                for k in keys if batch else keys[:1]:
                    self._submit([k])
            else:
                self._fail_unit(keys[0], str(e) + "\n")
            return
        flight = _Flight(keys, future, backend, solo, probe, batch)
        self._flights[id(future)] = flight
        future.add_done_callback(self._on_done)

    def _chain_from(self, key: Key) -> list[Key]:
        """`key` and, while the next chained step is open on the same
        backend, its slice of the same index (one worker runs them all)."""
        keys = [key]
        if key[1] is None or not self._followers.get(key[0]):
            return keys
        name, index = key
        while index is not None:
            nxt = [
                f
                for f in self._followers.get(name, ())
                if f in self._opened
                and index not in self._fans[f].submitted
                and self._wanted((f, index))
                and self._backend((f, index)) is self._backend(key)
            ]
            if not nxt:
                break
            name = nxt[0]
            keys.append((name, index))
            if (name, index) in self._ready:
                self._ready.remove((name, index))
        return keys

    def _task(self, key: Key, chained: bool, made: Mapping[str, str]) -> Task:
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
            # (a worker process changes its own unpickled copies: nothing to copy)
            copies=() if self._is_process(key) else tuple(sorted(step.copies)),
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
        if kind == "printing":  # a unit that did not report its start prints: show it started first
            if (record.slices[index] if index is not None else record).status == "queued":
                self._mark_running((name, index), worker, started)
            return  # (not `_started`: it says nothing of which unit of its task a crash was in)
        self._started.add((name, index))
        limit = self._timeout(self.steps[name])
        if limit is not None and not here:
            grace = _GRACE.get(self._backend((name, index)).name, 0.0)
            self._deadlines[(name, index)] = time.monotonic() + limit + grace
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

    def _report(self, kind: str, step: str, index: int | None, payload: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            # an inline unit, running inside the loop's submit: shown now, not when the loop is back
            with outside_step():
                self._reported(kind, step, index, payload, here=True)
        else:
            self._put(("report", kind, step, index, payload))  # any other thread

    def _on_done(self, future: Future[list[Outcome]]) -> None:
        self._put(("done", future))  # any thread

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
        self._started.difference_update(flight.keys)
        for name, index in flight.keys[len(outcomes) :]:  # not run: may be submitted again (a retry upstream)
            if not self._unfuse((name, index)):
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
        self._learn(name, outcome.end - outcome.start)
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
        why = _LATE.get(self._backend(key).name, "")
        return (
            f"{_describe(key)} ran for {took:.1f}s, past its timeout of {limit:g}s (--timeout {limit:g}), and "
            f"could not be stopped in time{why}. What it made is dropped.\n"
        )

    def _learn(self, name: str, seconds: float) -> None:
        self.took[name] = seconds
        if self._typical is None:
            self._finished.append(seconds)
            if len(self._finished) >= self._probe_limit:
                self._typical = statistics.median(self._finished)

    def _merge(self, name: str) -> None:
        """Every slice of `name` is done: merge each output in slice order."""
        step = self.steps[name]
        fan = self._fans[name]
        record = self.result.steps[name]
        done = [fan.done[i] for i in range(len(fan.done))]
        record.start = min(o.start for o in done)
        record.end = max(o.end for o in done)
        record.worker = ", ".join(sorted({o.worker for o in done}))
        outputs: dict[str, Any] = {}
        try:
            for var in step.outputs:
                values = [o.outputs[var] for o in done if var in o.outputs]
                if values:
                    how = step.merge_for(var)
                    func = how if how in MERGES else self._function(how, step, "--merge")
                    outputs[var] = merge(var, values, func)
                    note = listed_note(var, values, how, outputs[var])
                    if note is not None:
                        record.notes.append(note)
        except (MergeError, SliceError) as e:
            self._fail(name, f"step '{name}': {e}\n")
            return
        except Exception as e:
            self._fail(name, f"step '{name}': merging its outputs failed: {type(e).__name__}: {e}\n")
            return
        for note in record.notes:  # shown with the step's output (not part of it: record.output is the step's)
            self._emit(StepLog(self.result, name, f"nbpar: {note}\n"))
        deleted = tuple(sorted({d for o in done for d in o.deleted}))
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

    def _crashed(self, flight: _Flight, crash: WorkerCrash) -> None:
        """A worker died: every unit in flight in the pool failed with it.
        A unit whose worker the kernel killed (timeout) is the culprit, and
        the others are innocent. Otherwise units no worker had taken are
        innocent: run them again; of those taken (the last of each task), a
        lone one is the culprit, several become suspects. Batches are run
        again unbatched."""
        cohort = [flight] + [f for f in self._flights.values() if f.backend is flight.backend]
        for f in cohort[1:]:
            self._drop(f)
        keys = [key for f in cohort for key in f.keys]
        # A worker runs a flight's units one after another: of those it took,
        # all but the last had finished. The units of a batch (or a fused
        # chain) do not say when they start: they run again, one task each.
        for f in cohort:
            if f.batch or any(name in self._fused for name, _ in f.keys):  # nor a fused chain
                self._unbatched.update(name for name, _ in f.keys)
        taken = [(f, started) for f in cohort if not f.batch and (started := [k for k in f.keys if k in self._started])]
        self._queued.difference_update(keys)
        self._started.difference_update(keys)
        culprits = {key: self._killed.pop(key) for key in keys if key in self._killed}
        if not culprits and len(taken) == 1:
            culprits[taken[0][1][-1]] = self._crash_error(taken[0][1][-1], crash)
        elif not culprits and not taken and len(cohort) == 1 and len(keys) == 1:
            culprits[keys[0]] = self._crash_error(keys[0], crash)
        # Suspects run again alone; a chain is suspected as a whole (its later
        # units need the earlier ones' outputs), so from its first unit.
        suspects: set[Key] = set()
        if not culprits:
            suspects.update(f.keys[0] for f, _ in taken)
            if not taken:  # no worker said it took anything: every chain is suspect
                suspects.update(f.keys[0] for f in cohort if not f.batch)
        for key in keys:
            self._deadlines.pop(key, None)
            if key[1] is not None:
                self._fans[key[0]].submitted.discard(key[1])
                self.result.steps[key[0]].slices[key[1]].status = "waiting"
        for key in keys:
            if key in culprits:
                self._unit_failed(key, culprits[key])
            elif key in suspects:
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
        """Stop the units that are past their timeout (and the grace a
        worker process gets to stop the step itself)."""
        now = time.monotonic()
        for key in [k for k, deadline in self._deadlines.items() if now >= deadline]:
            del self._deadlines[key]
            flight = next((f for f in self._flights.values() if key in f.keys), None)
            if flight is not None and not flight.future.done():  # (done: its outcome is queued, see _overran)
                self._expire(key, flight)

    def _expire(self, key: Key, flight: _Flight) -> None:
        limit = self._timeout(self.steps[key[0]])
        what = f"{_describe(key)} did not finish within its timeout of {limit:g}s (--timeout {limit:g})"
        worker = self._worker(key)
        if flight.backend.name == "process" and worker and worker.startswith("pid "):
            # It ignored the alarm its worker raised (busy in native code): kill
            # the worker. loky then fails the whole pool; `_crashed` sees this
            # unit in `_killed` and runs the others again.
            self._killed[key] = (
                f"{what}, and did not stop when asked (it was busy in native code, or caught the "
                f"alarm): its worker process ({worker}) was killed.\n"
            )
            kill_worker(int(worker.removeprefix("pid ")))
            return
        # A thread cannot be stopped: abandon it, its result is dropped.
        self._drop(flight)
        self._queued.difference_update(flight.keys)
        self._started.difference_update(flight.keys)
        for other in flight.keys:
            self._deadlines.pop(other, None)
            if other[1] is not None:
                self._fans[other[0]].submitted.discard(other[1])
            if other != key and not self._unfuse(other):
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
            backend.stop()
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

    def _is_process(self, key: Key) -> bool:
        return self._backend(key).name == "process"

    def _process_in_flight(self) -> bool:
        return any(f.backend.name == "process" for f in self._flights.values())

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
_LATE = {  # why a step past its timeout could not be stopped, by backend
    "thread": ": a thread cannot be stopped, and C code that holds the GIL (a long call into C) keeps the kernel "
    "from acting on the timeout until it returns",
    "inline": ": an inline step is stopped by an alarm between Python lines, which C code that holds the GIL does "
    "not reach, and in a --background run it has no alarm",
    "process": ": it held off or caught the alarm (an `except BaseException`) and finished within the 1s grace",
}
_GRACE = {"process": 1.0}  # seconds a worker process gets to stop a step past its timeout itself
SMALL = 0.005  # seconds: units shorter than this are batched when many are ready
BATCH = 0.05  # seconds of work a batch of small units aims at
GUESSED_BATCH = 64  # units at most in a batch of steps never timed (a wrong guess costs little)
FUSED_MAX = 200  # small steps at most in one task, each waiting for the one before


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
