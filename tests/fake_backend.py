"""A scripted backend on a virtual clock, for testing the run loop's rules
(packing, crash isolation, retries, timeouts) without the wall clock.

`FakeBackend` keeps the whole contract (nbpar/contract.py; it passes
tests/test_backend_contract.py). It runs each unit's code for real, in this
thread (worker.execute: real outputs, real errors), but *when* a unit runs
is simulated: a pool of `workers` virtual workers takes tasks in the order
submitted; a unit takes its step's scripted seconds (`Act`), not the time
its code took; a scripted crash kills its worker at the end of the unit.

Time passes only when the loop waits: the loop asks `VirtualClock` for its
next event (scheduler.Clock), and the clock, when none is queued, moves to
the simulation's next moment (a unit starting, a task ending, a crash) if
that is within the loop's POLL, and makes it happen; else it moves by POLL
and the loop checks its deadlines, as it would after a real wait. A future
waited on outside the loop (the contract tests) moves the clock until it
is done. Nothing sleeps.

Data flow::

    submit(tasks, run) --> a Job, queued --(a worker free)--> started at t:
        each unit: reports at its start (start / printing / log lines),
                   it lasts Act.seconds (timeout: stopped at the timeout,
                   unless Act.ignores_alarm); a crash ends the job there
        -> at the end: future.set_result(outcomes, times virtual)
        -> crash: WorkerCrash on this job (shared_fate: on every job)
"""

from __future__ import annotations

import copy
import heapq
import itertools
import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

from nbpar import Pipeline, sharing
from nbpar.capture import routing
from nbpar.contract import BackendRun, Outcome, PicklingProblem, Report, Task, WorkerCrash
from nbpar.records import RunResult
from nbpar.scheduler import POLL, Clock, Scheduler
from nbpar.worker import execute, unsendable_input

Key = tuple[str, "int | None"]

END_OF_TIME = 10_000.0  # virtual seconds: a run still going then is stuck (the test fails)


@dataclass
class Act:
    """What a step does on the fake backend."""

    seconds: float = 0.001  # virtual seconds a unit of it takes (math.inf: until stopped)
    crashes: int = 0  # its first `crashes` attempts (per unit) kill their worker, as they end
    ignores_alarm: bool = False  # past its timeout it runs on: only stop_worker ends it
    unsendable: bool = False  # a task holding it cannot be sent: submit raises PicklingProblem


class VirtualClock(Clock):
    """The loop's clock, moved by the simulations of the fake backends on it."""

    def __init__(self) -> None:
        self.time = 0.0
        self.backends: list[FakeBackend] = []

    def now(self) -> float:
        return self.time

    def next_event(self, events: Any) -> tuple[Any, ...] | None:
        if not events.empty():
            return events.get_nowait()  # type: ignore[no-any-return]
        moment = self._next_moment()
        if moment <= self.time + POLL:
            self._happen(moment)
            return events.get_nowait() if not events.empty() else None
        # A wait with nothing coming: the loop checks its deadlines. (Rounded:
        # ten waits from 0 are at 1.0, not 0.9999999999999999, so that a
        # deadline of whole seconds is met by the wait that reaches it.)
        self.time = round(self.time + POLL, 9)
        assert self.time < END_OF_TIME, "the run did not end in virtual time: a unit nothing stops?"
        return None

    def run_until(self, done: Callable[[], bool]) -> None:
        """Move time on until `done()` (for a future waited on outside a loop)."""
        while not done():
            moment = self._next_moment()
            assert moment < math.inf, "waiting for a future nothing will resolve"
            self._happen(moment)

    def _next_moment(self) -> float:
        return min((b._next_moment() for b in self.backends), default=math.inf)

    def _happen(self, moment: float) -> None:
        self.time = max(self.time, moment)
        for backend in self.backends:
            backend._happen(self.time)


class _VirtualFuture(Future[list[Outcome]]):
    """A future whose waiters move the virtual clock until it is done."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def result(self, timeout: float | None = None) -> list[Outcome]:
        self._clock.run_until(self.done)
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._clock.run_until(self.done)
        return super().exception(timeout)


@dataclass
class Job:
    """One submitted task on the fake backend, and what became of it."""

    keys: list[Key]
    tasks: list[Task]
    run: BackendRun
    future: _VirtualFuture
    submitted: float = 0.0  # virtual seconds
    worker: str | None = None
    start: float | None = None
    end: float | None = None
    fate: str = "queued"  # queued, running, done, crashed, killed, stopped


@dataclass(eq=False)  # (compared and hashed by identity, as the loop keys its runs by backend)
class FakeBackend:
    """A scripted backend (see the module's docstring). The attributes of
    the contract are fields: a test makes it thread-like (not isolated, no
    shared fate), process-like (the defaults) or inline."""

    workers: int = 2
    acts: dict[str, Act] = field(default_factory=dict)  # step -> what it does (default: Act())
    name: str = "fake"
    inline: bool = False
    isolated: bool = True
    shared_fate: bool = True
    grace: float = 1.0
    late: str = "the fake's step ran past its timeout"
    worker_prefix: str = "fake "
    clock: VirtualClock = field(default_factory=VirtualClock)

    def __post_init__(self) -> None:
        if self.inline:
            self.workers = 1
        self.clock.backends.append(self)
        self.jobs: list[Job] = []  # every job, in submission order
        self.stopped: list[str] = []  # the workers stop_worker was asked to stop
        self.abandoned: list[Future[list[Outcome]]] = []  # the submissions the loop gave up on (abandon)
        self.open_runs: set[int] = set()  # ids of the runs opened and not closed
        self._queue: list[Job] = []
        self._busy: dict[str, Job] = {}  # worker -> the job it runs
        self._agenda: list[tuple[float, int, Job, Callable[[], None]]] = []  # (when, order, job, what happens)
        self._order = itertools.count()
        self._attempts: dict[Key, int] = {}
        self._epoch = time.time()
        self.shut_down = False

    # -- the contract ----------------------------------------------------------
    def open_run(self, report: Report) -> BackendRun:
        run = BackendRun(report)
        self.open_runs.add(id(run))
        return run

    def submit(self, tasks: list[Task], run: BackendRun) -> Future[list[Outcome]]:
        assert not run.closed, "a task submitted to a closed run"
        if self.isolated:
            self._check_sendable(tasks)
        job = Job([(t.step, t.slice) for t in tasks], tasks, run, _VirtualFuture(self.clock), self.clock.time)
        self.jobs.append(job)
        if self.inline:
            self._run_inline(job)
        else:
            self._queue.append(job)
            self._start_queued(self.clock.time)
        return job.future

    def stop_worker(self, worker: str) -> bool:
        if not self.isolated or not worker.startswith(self.worker_prefix):
            return False
        self.stopped.append(worker)
        job = self._busy.get(worker)
        if job is not None:
            self._at(self.clock.time, job, lambda: self._crash(job, "it was killed (stop_worker)", "killed"))
        return True

    def abandon(self, future: Future[list[Outcome]]) -> None:
        self.abandoned.append(future)  # (a thread's: it runs on to its end)

    def stop(self, run: BackendRun) -> None:
        """Isolated: the run's jobs are killed (their futures fail); else
        abandoned (they run on to their end)."""
        if not self.isolated:
            return
        for job in [j for j in self.jobs if j.run is run and j.fate in ("queued", "running")]:
            self._finish(job, "stopped")
            job.future.set_exception(RuntimeError("the run was stopped"))
        self._start_queued(self.clock.time)

    def close_run(self, run: BackendRun) -> None:
        run.closed = True
        self.open_runs.discard(id(run))

    def warm_up(self) -> None:
        pass

    def shutdown(self) -> None:
        self.shut_down = True

    # -- what tests look at ------------------------------------------------------
    def tasks(self) -> list[list[Key]]:
        """The keys of every task submitted, in order."""
        return [job.keys for job in self.jobs]

    def overlapping(self, job: Job) -> list[Job]:
        """The other jobs that ran at some moment while `job` ran."""
        assert job.start is not None and job.end is not None
        return [
            j
            for j in self.jobs
            if j is not job and j.start is not None and j.start < job.end and (j.end is None or j.end > job.start)
        ]

    # -- the simulation ----------------------------------------------------------
    def _check_sendable(self, tasks: list[Task]) -> None:
        """As a process backend's submit: PicklingProblem, naming the step and
        the input, for a task whose inputs cannot be pickled (or scripted so)."""
        for task in tasks:
            if self._act(task.step).unsendable:
                raise PicklingProblem(f"step '{task.step}' cannot be sent (scripted)")
            for name, value in task.inputs.items():
                problem = sharing.pickle_problem(value)
                if problem:
                    raise PicklingProblem(unsendable_input(task.step, name, value, problem))

    def _act(self, step: str) -> Act:
        return self.acts.get(step) or Act()

    def _at(self, when: float, job: Job, what: Callable[[], None]) -> None:
        heapq.heappush(self._agenda, (when, next(self._order), job, what))

    def _next_moment(self) -> float:
        return self._agenda[0][0] if self._agenda else math.inf

    def _happen(self, now: float) -> None:
        while self._agenda and self._agenda[0][0] <= now:
            _, _, job, what = heapq.heappop(self._agenda)
            if job.fate == "running":  # (a job that crashed or was stopped does nothing more)
                what()

    def _start_queued(self, now: float) -> None:
        for number in range(self.workers):
            worker = f"{self.worker_prefix}{number}"
            if worker not in self._busy and self._queue:
                job = self._queue.pop(0)
                job.worker, job.start, job.fate = worker, now, "running"
                self._busy[worker] = job
                self._plan(job, now)

    def _plan(self, job: Job, now: float) -> None:
        """Run the job's units now (their code, for their outputs), and put
        on the agenda when each starts and when the job ends or crashes."""
        assert job.worker is not None
        outcomes: list[Outcome] = []
        made: dict[str, Any] = {}
        t = now
        with routing():
            for task in job.tasks:
                if task.inherits and outcomes:
                    if not outcomes[-1].ok:
                        break  # a chain stops at its first failing unit
                    task.inputs = {**task.inputs, **{v: made[v] for v in task.inherits if v in made}}
                key = (task.step, task.slice)
                act = self._act(task.step)
                attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
                outcome, printed = self._execute(task, job.worker)
                self._at(t, job, self._reporter(job, task, t, printed))
                seconds = act.seconds
                if attempt <= act.crashes:
                    self._at(t + seconds, job, lambda: self._crash(job, "it exited with code 3 (scripted)", "crashed"))
                    return
                if task.timeout is not None and seconds > task.timeout and not act.ignores_alarm:
                    seconds = task.timeout  # its alarm stops it
                    what = f"step '{task.step}'" + (f" (slice {task.slice})" if task.slice is not None else "")
                    error = f"{what} was stopped after its timeout of {task.timeout:g}s (scripted).\n"
                    outcome = replace(outcome, outputs={}, deleted=(), error=error, timed_out=True)
                if math.isinf(seconds):
                    return  # runs until stopped
                outcomes.append(replace(outcome, start=self._epoch + t, end=self._epoch + t + seconds))
                made.update(outcome.outputs)
                t += seconds
        self._at(t, job, lambda: self._done(job, outcomes))

    def _execute(self, task: Task, worker: str) -> tuple[Outcome, list[str]]:
        printed: list[str] = []
        if self.isolated:  # (its own copies, as unpickled in a worker process)
            task = replace(task, inputs=copy.deepcopy(task.inputs))
        outcome = execute(replace(task, timeout=None), worker, printed.append)  # (the timeout is virtual)
        outcome.output = "".join(printed)
        return outcome, printed

    def _reporter(self, job: Job, task: Task, t: float, printed: list[str]) -> Callable[[], None]:
        def report() -> None:
            assert job.worker is not None
            started = self._epoch + t
            if task.report_start:
                job.run.report("start", task.step, task.slice, (job.worker, started))
            elif printed:
                job.run.report("printing", task.step, task.slice, (job.worker, started))
            for line in printed:
                job.run.report("log", task.step, task.slice, line)

        return report

    def _done(self, job: Job, outcomes: list[Outcome]) -> None:
        self._finish(job, "done")
        job.future.set_result(outcomes)
        self._start_queued(self.clock.time)

    def _crash(self, job: Job, how: str, fate: str) -> None:
        """`job`'s worker died: its future fails with WorkerCrash (with shared
        fate, every job's in flight: running or queued)."""
        victims = [j for j in self.jobs if j.fate in ("queued", "running")] if self.shared_fate else [job]
        for victim in victims:
            self._finish(victim, fate if victim is job else "crashed")
            victim.future.set_exception(WorkerCrash(how))
        self._start_queued(self.clock.time)

    def _finish(self, job: Job, fate: str) -> None:
        job.fate, job.end = fate, self.clock.time
        if job.start is None:
            job.start = job.end  # (it never ran)
        if job in self._queue:
            self._queue.remove(job)
        if job.worker is not None and self._busy.get(job.worker) is job:
            del self._busy[job.worker]

    def _run_inline(self, job: Job) -> None:
        """An inline fake: the units run inside submit, reports at once."""
        job.worker, job.start, job.fate = f"{self.worker_prefix}0", self.clock.time, "running"
        self._busy[job.worker] = job
        self._plan(job, self.clock.time)
        while job.fate == "running":  # (its own moments only: an inline backend runs one job at a time)
            moment = self._next_moment()
            assert moment < math.inf, "an inline unit that never ends"
            self.clock.time = max(self.clock.time, moment)
            self._happen(self.clock.time)


def run_fake(
    pipeline: Pipeline,
    backend: FakeBackend,
    *,
    force: bool = True,
    durations: dict[str, float] | None = None,
    timeout: float | None = None,
    retries: int = 0,
    fail_fast: bool = False,
    listeners: Iterable[Any] = (),
) -> tuple[RunResult, Scheduler]:
    """Run every step of `pipeline` on `backend`, on its virtual clock;
    `durations`: what the pipeline would remember of the last run (a
    scheduler's `took`)."""
    plan = pipeline.plan((), force, backend.workers)
    scheduler = Scheduler(
        steps=dict(pipeline.steps),
        plan=plan,
        namespace=pipeline.namespace,
        backend_for=lambda step: backend,
        backend_name=backend.name,
        workers=backend.workers,
        listeners=listeners,
        fail_fast=fail_fast,
        timeout=timeout,
        retries=retries,
        durations=durations or {},
        clock=backend.clock,
    )
    return scheduler.run(), scheduler
