"""The contract between the run loop (scheduler.py) and a backend: what
goes in (`Task`), what comes out (`Outcome`, reports, `WorkerCrash`), and
what a backend says of itself (`Backend`). Standard library only: importing
it loads no backend (the process backend's loky and cloudpickle load with
it, when a run first uses it: backends.make_backend).

Data flow of one run on one backend::

    loop                                         backend
    ----                                         -------
    run = backend.open_run(report)  ---------->  what it holds for the run:
                                                 (process: a route for its
                                                 workers' messages, the files
                                                 of the run's large inputs)
    backend.submit([Task, ...], run) -------->   one worker runs the tasks one
      (a unit, the chained slices after it,      after another (worker.execute_all)
       or a batch of small units)
    report(kind, step, slice, payload) <------   as they run, from any thread
      "start"    payload (worker, time.time()): a worker took the unit
      "printing" payload (worker, time.time()): a unit that does not report
                 its start (Task.report_start False) prints its first line
      "log"      payload: text the unit printed, warned or logged
    Future -> [Outcome, ...] <----------------   in task order; a chain stops at
                                                 its first failing unit, a spent
                                                 worker after the unit that spent
                                                 it (fewer outcomes than tasks)
      or Future -> WorkerCrash                   the worker died (on a backend
                                                 with `shared_fate`: every
                                                 unit in flight on it fails so)
    backend.stop_worker(worker)  ------------>   a unit past its timeout that
                                                 did not stop itself
    backend.abandon(future)  ---------------->   ... and whose worker cannot be
                                                 stopped (a thread)
    backend.stop(run)  ---------------------->   the run is cancelled
    backend.close_run(run)  ----------------->   the run is over: nothing of it
                                                 is left (idempotent)

A failing step is an `Outcome` whose `error` holds the user's traceback as
text, never an exception. The loop never asks a backend its name to decide
anything: what differs between backends is in their attributes (see
`Backend`), and the name is only shown (records, messages).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

__all__ = [
    "Backend",
    "BackendRun",
    "Home",
    "LogFormat",
    "Outcome",
    "PicklingProblem",
    "Report",
    "Task",
    "WorkerCrash",
]

LogFormat = tuple[str, "str | None", str]  # a logging.Formatter's (fmt, datefmt, style)


@dataclass
class Home:
    """The kernel's working directory and sys.path when a run starts: what
    every step of the run starts with, wherever it runs (one object for all
    the run's tasks, so a batch pickles it once)."""

    cwd: str
    path: list[str]
    builtins: dict[str, Any] | None = None  # the kernel's, for steps in the kernel (not sent to workers)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return Home, (self.cwd, self.path)


@dataclass
class Task:
    """One unit for a worker: a step's code and the inputs it reads."""

    step: str
    source: str
    inputs: dict[str, Any]
    writes: tuple[str, ...]
    first_line: int = 1  # the body's first line, numbered as in the cell
    header: str = ""  # the cell's line 1 when the body starts on line 2
    slice: int | None = None  # the slice index, for a fanned-out step
    over: str | None = None  # the fanned-out input (its length is the slice's size)
    inherits: tuple[str, ...] = ()  # inputs made by the tasks before it in the same call (a chain)
    timeout: float | None = None  # seconds the step may run before it is stopped
    log_level: int = logging.WARNING  # `logging` records from this level on join the step's output
    log_format: LogFormat | None = None  # how they are formatted: the notebook's (see worker.notebook_log_format)
    display: bool = False  # the step's `display` is IPython's: it gets display_text instead
    report_start: bool = True  # tell the kernel when it starts (not for the small steps of a batch)
    flags: int = 0  # the notebook's `__future__` compiler flags, the only ones the step compiles with
    home: Home | None = None  # the kernel's working directory and sys.path, which every step starts with
    # inputs the step changes in place, which it gets copies of (a backend
    # that is not `isolated`: the versions it read are other steps' too; see
    # worker._copy_changed)
    copies: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()  # inputs a step defines as functions: their globals become the step's names

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return Task, _task_fields(self)  # a tuple of fields pickles fastest (a batch has thousands)


@dataclass
class Outcome:
    """What one unit made, or why it failed, and when it ran (time.time())."""

    step: str
    worker: str  # the worker's name: begins with its backend's `worker_prefix`
    start: float
    end: float
    outputs: dict[str, Any] = field(default_factory=dict)
    deleted: tuple[str, ...] = ()  # inputs the step deleted with `del`
    output: str = ""  # printed text not yet reported line by line
    error: str | None = None  # the user's traceback, or why it could not run
    size: int | None = None  # items in the slice, for a fanned-out step
    timed_out: bool = False  # stopped by its timeout (`error` says so)
    final: bool = False  # the error would come again (an output that cannot be pickled): no retry
    spent: bool = False  # its worker process could not put its limits back after it: it runs no more steps
    gil: float | None = None  # in a worker process: the share of its time it held the GIL (gil.py)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return Outcome, _outcome_fields(self)

    @property
    def ok(self) -> bool:
        return self.error is None


_task_fields = operator.attrgetter(*(f.name for f in fields(Task)))
_outcome_fields = operator.attrgetter(*(f.name for f in fields(Outcome)))


# report(kind, step, slice, payload), called from any thread as a task runs:
#   "start": payload (worker, time.time())    "log": payload, text the step printed
#   "printing": payload (worker, time.time()), before the first line of a
#   unit that did not report its start (report_start False)
Report = Callable[[str, str, "int | None", Any], None]


class PicklingProblem(Exception):
    """A value a step needs or makes cannot cross to or from a process:
    `submit` raises it, naming the step and the input."""


class WorkerCrash(Exception):
    """A worker died while running steps (segfault, out of memory,
    os._exit). Raised through the futures of the units in flight on it
    (on a backend with `shared_fate`: of every unit in flight); its message
    says how the worker ended and what that usually means."""

    def __init__(self, message: str, last_words: str = "") -> None:
        super().__init__(message)
        self.last_words = last_words  # what faulthandler wrote as the worker died, if anything


class BackendRun:
    """One run as one backend sees it: made by `Backend.open_run`, given to
    `submit`, `stop` and `close_run`. It carries the run's `report`; a
    backend keeps in it (a subclass) what it holds for the run. The loop
    opens one per backend it submits to, and closes each as the run ends."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.closed = False


class Backend(Protocol):
    """Where units run. Every difference between backends that the loop
    acts on is one of these attributes; `name` is only shown."""

    name: str  # "process", "thread", "inline": in records and messages only
    workers: int  # units that may run at once
    worker_prefix: str  # how its workers' names begin ("pid ", "thread ", "kernel"): Outcome.worker, reports
    # Units run in the loop's thread, inside `submit` (the future is done when
    # it returns): their reports come there, at once, and only the step's own
    # alarm can stop one (the loop enforces no deadline); workers is 1.
    inline: bool
    # Units run in other processes: a unit gets its own copies of its inputs
    # (they cross by pickling), and a crash (os._exit, a segfault) ends its
    # worker, not the kernel, and comes back as WorkerCrash.
    isolated: bool
    # One worker's death fails every unit in flight on this backend (a process
    # pool): the loop cannot tell the culprit from the innocent, and runs the
    # suspects alone (crashes.py).
    shared_fate: bool
    grace: float  # seconds a unit past its timeout gets to stop itself (its alarm) before stop_worker
    late: str  # why a unit past its timeout could not be stopped here ("" if nothing to say)

    def open_run(self, report: Report) -> BackendRun:
        """A run begins on this backend: its units' reports go to `report`
        (from any thread; on an `inline` backend, in the loop's)."""
        ...

    def submit(self, tasks: list[Task], run: BackendRun) -> Future[list[Outcome]]:
        """Start `tasks`, to run one after another in one worker (see
        worker.execute_all); the future resolves to their Outcomes, fewer
        when the worker stopped before the rest (a chain at a failing step;
        a spent worker process, whose tasks not run are run again). A failing
        step is an Outcome with `error`, never an exception; the future raises
        only WorkerCrash or an error of nbpar itself. Raises PicklingProblem
        if a task cannot be sent."""
        ...

    def stop_worker(self, worker: str) -> bool:
        """Stop the worker named `worker` (as its reports and outcomes name
        it) and what it runs, now: its units then fail with WorkerCrash (on
        a backend with `shared_fate`, every unit in flight). False if this
        backend cannot stop one worker (a thread: the loop abandons it)."""
        ...

    def abandon(self, future: Future[list[Outcome]]) -> None:
        """The loop gives up on the submission of `future` (past its
        timeout, its worker could not be stopped): stop what can be stopped
        of it (the processes its steps started); its result is dropped."""
        ...

    def stop(self, run: BackendRun) -> None:
        """Stop every unit in flight of `run` now (a cancelled run): kill or
        abandon them; their futures may never resolve."""
        ...

    def close_run(self, run: BackendRun) -> None:
        """`run` is over: let go of all it held (idempotent)."""
        ...

    def warm_up(self) -> None:
        """Start the workers now, so the first step does not wait for them."""
        ...

    def shutdown(self) -> None:
        """Release the workers (the pipeline is done, the extension unloaded,
        the interpreter exits); idempotent."""
        ...
