"""What a run leaves behind: a `RunResult` with one `StepRecord` per step.

The scheduler fills these in as events happen; listeners and users read them.
Times are seconds since the epoch (`time.time()`), taken where the work ran
(a step's start and end in its worker; the run's start, end and `waits` in
the kernel).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["waiting", "queued", "running", "done", "failed", "skipped", "cancelled", "up-to-date"]
FINAL: frozenset[str] = frozenset({"done", "failed", "skipped", "cancelled", "up-to-date"})
SUCCEEDED: frozenset[str] = frozenset({"done", "up-to-date"})  # what a successful run leaves every step


@dataclass(slots=True)
class SliceRecord:
    """One slice of a fanned-out step."""

    index: int
    size: int  # items in the slice
    status: Status = "waiting"
    start: float | None = None
    end: float | None = None
    worker: str | None = None
    attempts: int = 0  # times the slice was handed to a worker


@dataclass(slots=True)  # a run of 10,000 steps makes 10,000 of them
class StepRecord:
    name: str
    status: Status = "waiting"
    start: float | None = None
    end: float | None = None
    worker: str | None = None  # "pid 1234", "thread nbpar_0" or "kernel"; fanned out: all its slices' workers
    backend: str | None = None
    placed: str | None = None  # why --backend auto put it on its backend (auto.choose)
    gil: float | None = None  # on a process: the share of its time it held the GIL (gil.py); fanned out: the mean
    # times it was handed to a worker: retries, and reruns after another
    # step's crash count; fanned out: the most of any of its slices
    attempts: int = 0
    error: str | None = None  # the user's traceback, as text
    reason: str | None = None  # why it was skipped or cancelled
    output: str = ""  # what the step printed
    notes: list[str] = field(default_factory=list)  # what nbpar did that the user may not expect (a merge)
    slices: list[SliceRecord] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    @property
    def slices_done(self) -> int:
        """How many of its slices are done (fanned out; else 0)."""
        return sum(1 for piece in self.slices if piece.status == "done")


@dataclass
class RunResult:
    steps: dict[str, StepRecord]
    backend: str
    workers: int
    start: float
    end: float | None = None
    deps: dict[str, frozenset[str]] = field(default_factory=dict)  # step -> the steps it waits for
    interrupted: bool = False  # stopped by Ctrl-C / the stop button
    cancelled: bool = False  # stopped by %parcancel or the Cancel button
    # when the run loop waited for its workers' reports and outcomes: from, to,
    # from, to, ... (the rest of the run, the kernel was busy with it)
    waits: array[float] = field(default_factory=lambda: array("d"))

    @property
    def wall(self) -> float:
        """The run's duration in seconds (so far, while it runs)."""
        import time

        return (self.end if self.end is not None else time.time()) - self.start

    @property
    def ok(self) -> bool:
        return all(r.status in SUCCEEDED for r in self.steps.values())

    def by_status(self, status: Status) -> list[str]:
        return [n for n, r in self.steps.items() if r.status == status]

    def counts(self) -> dict[Status, int]:
        """How many steps are in each status (the statuses no step is in left
        out), in the order of the first step in each: the one place steps
        are counted by status."""
        counts: dict[Status, int] = {}
        for r in self.steps.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    @property
    def succeeded(self) -> int:
        """How many steps are done or up to date (`SUCCEEDED`)."""
        return sum(n for status, n in self.counts().items() if status in SUCCEEDED)

    def summary(self) -> str:
        """`3 done, 1 failed`: the counts, as the text display and `%parstatus` say them."""
        return ", ".join(f"{n} {status}" for status, n in self.counts().items())

    def __repr__(self) -> str:
        return f"<RunResult {self.wall:.2f}s on {self.workers} {self.backend} workers: {self.summary()}>"
