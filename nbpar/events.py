"""Events the scheduler emits to its listeners (text display, widgets).

Listeners are called in the thread that runs the scheduler's loop, in order;
they must be quick and must not change run state. Each event carries the
live `RunResult` so a listener can redraw from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .records import RunResult


@dataclass(frozen=True)
class RunStarted:
    result: RunResult
    order: tuple[str, ...]  # the steps of this run, in a valid order
    deps: Mapping[str, frozenset[str]] = field(default_factory=dict)  # step -> the steps it waits for


@dataclass(frozen=True)
class StepStarted:
    result: RunResult
    step: str


@dataclass(frozen=True)
class SliceStarted:
    result: RunResult
    step: str
    index: int  # its record is result.steps[step].slices[index]


@dataclass(frozen=True)
class SliceFinished:
    result: RunResult
    step: str
    index: int


@dataclass(frozen=True)
class StepLog:
    result: RunResult
    step: str
    text: str  # one or more whole lines the step printed
    slice: int | None = None  # the slice that printed it, for fanned-out steps


@dataclass(frozen=True)
class StepFinished:
    result: RunResult
    step: str  # its record in result.steps has the final status


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


Event = RunStarted | StepStarted | SliceStarted | SliceFinished | StepLog | StepFinished | RunFinished
Listener = Callable[[Event], None]
