"""Events the scheduler emits to its listeners (text display, widgets,
and the users' own through `nbpar.subscribe`). Public: exported by `nbpar`.

Listeners are called in the thread that runs the scheduler's loop (in a
blocking run, the kernel's main thread), one after another, for each
event; they must be quick (the loop waits for them) and must not change
run state. Each event carries the live `RunResult` so a listener can redraw
from it. A listener that raises is reported once a run, and the run goes on
(`Scheduler._emit`).

A run's listeners are the ones it was given (`Pipeline.run(listeners=...)`,
the magics' display) and then the subscribers of the process, as they are
when the run starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from .records import RunResult, SliceRecord, StepRecord


@dataclass(frozen=True)
class RunStarted:
    result: RunResult
    order: tuple[str, ...]  # the steps of this run, in a valid order
    deps: Mapping[str, frozenset[str]] = field(default_factory=dict)  # step -> the steps it waits for


@dataclass(frozen=True)
class StepStarted:
    result: RunResult
    step: str

    @property
    def record(self) -> StepRecord:
        return self.result.steps[self.step]


@dataclass(frozen=True)
class SliceStarted:
    result: RunResult
    step: str
    index: int  # its record is result.steps[step].slices[index]

    @property
    def record(self) -> SliceRecord:
        return self.result.steps[self.step].slices[self.index]


@dataclass(frozen=True)
class SliceFinished:
    result: RunResult
    step: str
    index: int

    @property
    def record(self) -> SliceRecord:
        return self.result.steps[self.step].slices[self.index]


@dataclass(frozen=True)
class StepLog:
    result: RunResult
    step: str
    text: str  # one or more whole lines the step printed
    slice: int | None = None  # the slice that printed it, for fanned-out steps


@dataclass(frozen=True)
class StepFinished:
    result: RunResult
    step: str

    @property
    def record(self) -> StepRecord:
        """The step's record, final: status, start, end, duration, worker,
        attempts, error, reason, output."""
        return self.result.steps[self.step]


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


Event = RunStarted | StepStarted | SliceStarted | SliceFinished | StepLog | StepFinished | RunFinished
Listener = Callable[[Event], None]


_subscribers: list[Listener] = []
_subscribers_lock = threading.Lock()  # guards _subscribers: subscribe from any thread


class Subscription:
    """What `subscribe` returns: `unsubscribe()` ends it; as a context
    manager, it ends with the `with` block."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def unsubscribe(self) -> None:
        """Runs that start from now on no longer call the listener (a run
        going on still does). Unsubscribing twice does nothing."""
        with _subscribers_lock:
            if self.listener in _subscribers:
                _subscribers.remove(self.listener)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.unsubscribe()


def subscribe(listener: Listener) -> Subscription:
    """Call `listener(event)` with every event of every run that starts in
    this process from now on: `%parrun`, `%%step --run`, `nbpar run`,
    `Pipeline.run` and `start`, `nbpar.pmap`.

    The listener is called in the thread of the run's loop (see the module's
    docstring): it must be quick; hand slow work (a request to a server) to
    a thread or queue of your own. If it raises, the error is shown once a
    run, on stderr, and the run goes on.
    """
    if not callable(listener):
        raise TypeError(f"nbpar.subscribe takes a function of one event, not {type(listener).__name__}")
    with _subscribers_lock:
        _subscribers.append(listener)
    return Subscription(listener)


def subscribers() -> tuple[Listener, ...]:
    """The listeners `subscribe` added, in the order they were added."""
    with _subscribers_lock:
        return tuple(_subscribers)
