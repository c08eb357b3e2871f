"""The run loop: one ready queue, one owner of run state.

Data flow::

    Plan(order, stale, deps) --> Scheduler.run()
        ready queue (graphlib.TopologicalSorter over the stale steps)
          | a step is submitted the moment its last dependency is done
          v
        backend.submit(Task) -> Future --add_done_callback--> events queue
        backend on_log(step, text) -----------------------> events queue
          |
        loop: events.get(timeout=0.1)   (short waits: Ctrl-C arrives at once)
          |-- outcome ok     -> outputs into the namespace, all together;
          |                     record; release dependents
          |-- outcome error  -> record; dependents skipped (or, fail-fast,
          |                     everything stopped)
          |-- worker crash   -> see below
          '-- log text       -> record and listeners

Only `run()`'s loop (in one thread) changes the `RunResult` and the
namespace; backends and their threads only put items on the events queue.
Listeners get an event after each change.

A dead worker process fails every step in flight in the pool with
`WorkerCrash`, the innocent with the culprit. When only one step was in
flight, it is the culprit. Otherwise all of them become suspects and are
run again one at a time, alone in the pool (other process steps wait; thread
and inline steps go on): a suspect that crashes alone is the culprit, the
others succeed.
"""

from __future__ import annotations

import graphlib
import queue
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .backends import Backend, WorkerCrash
from .events import Event, Listener, RunFinished, RunStarted, StepFinished, StepLog, StepStarted
from .graph import Step
from .records import RunResult, StepRecord
from .worker import PicklingProblem, Task

Commit = Callable[[Step, dict[str, Any], dict[str, Any]], None]  # (step, inputs, outputs)


@dataclass
class Plan:
    """What a run will do: `order` lists every step it involves in a valid
    order; `stale` those that will run (the rest are up to date)."""

    order: list[str]
    stale: list[str]
    deps: dict[str, set[str]]  # for each step in order, the steps it waits for


@dataclass
class _Flight:
    """A submitted step: its future and the inputs it was given."""

    future: Future[Any]
    inputs: dict[str, Any]
    backend: Backend
    solo: bool = False


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
    on_commit: Commit | None = None
    external: dict[str, Any] = field(default_factory=dict)  # inputs no step writes

    def run(self) -> RunResult:
        """Run the plan to its end (or Ctrl-C); return the records.
        Mutates the namespace (outputs) and nothing else outside itself."""
        self.result = RunResult(
            steps={n: StepRecord(n) for n in self.plan.order},
            backend=self.backend_name,
            workers=self.workers,
            start=time.time(),
        )
        stale = set(self.plan.stale)
        for name in self.plan.order:
            if name not in stale:
                self.result.steps[name].status = "up-to-date"
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._flights: dict[str, _Flight] = {}
        self._held: list[str] = []  # ready process steps waiting for a solo suspect
        self._suspects: list[str] = []
        self._ready = graphlib.TopologicalSorter({n: self.plan.deps[n] & stale for n in self.plan.stale})
        self._ready.prepare()
        self._emit(RunStarted(self.result, tuple(self.plan.order)))
        try:
            self._loop()
        except KeyboardInterrupt:
            self.result.interrupted = True
            self._stop_all("the run was interrupted")
        finally:
            self.result.end = time.time()
            self._emit(RunFinished(self.result))
        return self.result

    # -- the loop ---------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._submit_ready()
            if not self._flights:
                return
            try:
                item = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            kind, name = item[0], item[1]
            if kind == "log":
                self._log(name, item[2])
                continue
            flight = self._flights.get(name)
            if flight is None or flight.future is not item[2]:
                continue  # a step already stopped or resubmitted
            self._settle(name, flight)

    def _submit_ready(self) -> None:
        waiting = self._held + list(self._ready.get_ready())
        self._held = []
        if self._suspects and not self._process_in_flight():
            self._submit(self._suspects.pop(0), solo=True)
        for name in waiting:
            step = self.steps[name]
            if self._is_process(step) and (self._suspects or self._solo_in_flight()):
                self._held.append(name)
            else:
                self._submit(name)

    def _submit(self, name: str, solo: bool = False) -> None:
        step = self.steps[name]
        record = self.result.steps[name]
        inputs = {r: v for r in step.reads if (v := self._value(r)) is not _MISSING}
        task = Task(name, step.source, inputs, tuple(sorted(step.writes)), step.first_line, step.header)
        backend = self.backend_for(step)
        record.status, record.backend = "running", backend.name
        record.attempts += 1
        self._emit(StepStarted(self.result, name))
        try:
            future = backend.submit(task, self._on_log)
        except PicklingProblem as e:
            self._fail(name, str(e) + "\n")
            return
        self._flights[name] = _Flight(future, inputs, backend, solo)
        future.add_done_callback(partial(self._on_done, name))

    def _value(self, name: str) -> Any:
        if name in self.external:
            return self.external[name]
        return self.namespace.get(name, _MISSING)

    def _on_log(self, step: str, text: str) -> None:
        self._events.put(("log", step, text))  # any thread

    def _on_done(self, step: str, future: Future[Any]) -> None:
        self._events.put(("done", step, future))  # any thread

    # -- outcomes -----------------------------------------------------------
    def _settle(self, name: str, flight: _Flight) -> None:
        del self._flights[name]
        record = self.result.steps[name]
        try:
            outcome = flight.future.result()
        except WorkerCrash as crash:
            self._crashed(name, flight, crash)
            return
        except Exception as e:  # nbpar could not run or read back the step
            self._fail(name, f"nbpar could not run step '{name}': {type(e).__name__}: {e}\n")
            return
        if outcome.output:
            self._log(name, outcome.output)
        record.start, record.end, record.worker = outcome.start, outcome.end, outcome.worker
        if not outcome.ok:
            self._fail(name, outcome.error)
            return
        self.namespace.update(outcome.outputs)
        for gone in outcome.deleted:
            self.namespace.pop(gone, None)
        if self.on_commit is not None:
            self.on_commit(self.steps[name], flight.inputs, outcome.outputs)
        record.status = "done"
        self._ready.done(name)
        self._emit(StepFinished(self.result, name))

    def _crashed(self, name: str, flight: _Flight, crash: WorkerCrash) -> None:
        cohort = [name] + [n for n, f in self._flights.items() if f.backend is flight.backend]
        if len(cohort) == 1:
            self._fail(
                name,
                f"The worker process running step '{name}' died.\n{crash}\n"
                "This is usually a crash in native code (segmentation fault), "
                "os._exit() in the step, or the machine running out of memory. "
                "Run the step with --backend inline to see it fail in the kernel.\n",
            )
            return
        for n in cohort[1:]:
            del self._flights[n]
        for n in cohort:
            self.result.steps[n].status = "waiting"
        self._suspects.extend(cohort)

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
            if rec.status == "waiting":
                rec.status, rec.reason = "skipped", f"it needs '{name}', which failed"
                self._emit(StepFinished(self.result, dependent))

    def _stop_all(self, reason: str) -> None:
        """Stop every step in flight and cancel every step not started."""
        for backend in {id(f.backend): f.backend for f in self._flights.values()}.values():
            backend.stop()
        for name, rec in self.result.steps.items():
            if rec.status in ("waiting", "running"):
                rec.status, rec.reason = "cancelled", reason
                if name in self._flights:
                    rec.end = time.time()
                self._emit(StepFinished(self.result, name))
        self._flights.clear()
        self._held.clear()
        self._suspects.clear()

    # -- helpers -------------------------------------------------------------
    def _log(self, name: str, text: str) -> None:
        self.result.steps[name].output += text
        self._emit(StepLog(self.result, name, text))

    def _descendants(self, name: str) -> list[str]:
        found: list[str] = []
        frontier = {name}
        for n in self.plan.order:  # topological: parents come first
            if self.plan.deps.get(n, set()) & frontier:
                frontier.add(n)
                found.append(n)
        return found

    def _is_process(self, step: Step) -> bool:
        return self.backend_for(step).name == "process"

    def _process_in_flight(self) -> bool:
        return any(f.backend.name == "process" for f in self._flights.values())

    def _solo_in_flight(self) -> bool:
        return any(f.solo for f in self._flights.values())

    def _emit(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as e:  # a broken display must not lose results
                print(f"nbpar: a progress display failed: {type(e).__name__}: {e}", file=sys.__stderr__)


_MISSING: Any = object()
