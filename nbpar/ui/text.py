"""A text display of a run: one line per event, for terminals and logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..events import Event, RunFinished, RunStarted, SliceFinished, StepFinished, StepLog, StepStarted

_MARK = {
    "done": "done   ",
    "failed": "FAILED ",
    "skipped": "skipped",
    "cancelled": "cancel ",
    "up-to-date": "fresh  ",
}


class TextDisplay:
    """Prints each event as it comes; step output is prefixed `[step]`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def _print(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def __call__(self, event: Event) -> None:
        r = event.result
        if isinstance(event, RunStarted):
            fresh = sum(1 for s in r.steps.values() if s.status == "up-to-date")
            note = f" ({fresh} up to date)" if fresh else ""
            self._print(
                f"nbpar: {_count(len(r.steps) - fresh, 'step')} to run{note}, "
                f"on {r.workers} {r.backend} worker{'s' if r.workers != 1 else ''}"
            )
        elif isinstance(event, StepStarted):
            self._print(f"  {_clock()} start   {event.step}")
        elif isinstance(event, StepLog):
            label = event.step if event.slice is None else f"{event.step}[{event.slice}]"
            for line in event.text.splitlines():
                self._print(f"  [{label}] {line}")
        elif isinstance(event, SliceFinished):
            slices = r.steps[event.step].slices
            done = sum(1 for s in slices if s.status == "done")
            # at most about ten lines a step, however many slices it has
            if len(slices) <= 10 or done * 10 // len(slices) != (done - 1) * 10 // len(slices):
                piece = slices[event.index]
                seconds = f" {piece.end - piece.start:.2f}s" if piece.start and piece.end else ""
                self._print(
                    f"  {_clock()} slice   {event.step}[{event.index}]{seconds} on {piece.worker}"
                    f" ({done}/{len(slices)} done)"
                )
        elif isinstance(event, StepFinished):
            s = r.steps[event.step]
            detail = ""
            if s.status == "done" and s.duration is not None:
                detail = f"  {s.duration:.2f}s on {s.worker}"
            elif s.reason:
                detail = f"  ({s.reason})"
            self._print(f"  {_clock()} {_MARK.get(s.status, s.status)} {event.step}{detail}")
        elif isinstance(event, RunFinished):
            counts: dict[str, int] = {}
            for s in r.steps.values():
                counts[s.status] = counts.get(s.status, 0) + 1
            summary = ", ".join(f"{n} {status}" for status, n in counts.items())
            self._print(f"nbpar: {summary} in {r.wall:.2f}s")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _clock() -> str:
    return time.strftime("%H:%M:%S")
