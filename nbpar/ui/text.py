"""A text display of a run: one line per event, for terminals and logs.

On a terminal (a tty) a progress bar also stays on the last line, redrawn
in place under the event lines; anywhere else (a notebook cell, a log file,
a pipe) there are only the plain lines. A run of more than MANY steps does
not print a line for each step that starts or succeeds, only one every
tenth of the run, beside every failure and everything steps print.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..events import Event, RunFinished, RunStarted, SliceFinished, StepFinished, StepLog, StepStarted
from ..records import FINAL, RunResult

_MARK = {
    "done": "done   ",
    "failed": "FAILED ",
    "skipped": "skipped",
    "cancelled": "cancel ",
    "up-to-date": "fresh  ",
}


MANY = 100  # steps to run, beyond which steps that start or succeed are counted, not listed


class TextDisplay:
    """Prints each event as it comes; step output is prefixed `[step]`."""

    def __init__(self, stream: TextIO | None = None, bar: bool | None = None) -> None:
        self._stream = stream
        self._bar = bar  # None: a bar if the stream is a terminal
        self._bar_shown = False
        self._many = False  # this run has more than MANY steps to run
        self._finished = 0  # steps of this run finished so far
        self._to_run = 0

    def _out(self) -> TextIO:
        return self._stream or sys.stdout

    def _print(self, text: str) -> None:
        stream = self._out()
        if self._bar_shown:
            stream.write("\r\x1b[K")  # clear the bar; it is drawn again below
            self._bar_shown = False
        stream.write(text + "\n")
        stream.flush()

    def _draw_bar(self, event: Event) -> None:
        if self._bar is False or isinstance(event, RunFinished):
            return
        if self._bar is None:
            isatty = getattr(self._out(), "isatty", None)
            self._bar = bool(isatty and isatty())
            if not self._bar:
                return
        stream = self._out()
        stream.write("\r\x1b[K" + progress_bar(event.result))
        stream.flush()
        self._bar_shown = True

    def __call__(self, event: Event) -> None:
        self._show(event)
        self._draw_bar(event)

    def _show(self, event: Event) -> None:
        r = event.result
        if isinstance(event, RunStarted):
            fresh = sum(1 for s in r.steps.values() if s.status == "up-to-date")
            note = f" ({fresh} up to date)" if fresh else ""
            self._to_run, self._finished = len(r.steps) - fresh, 0
            self._many = self._to_run > MANY
            if not self._to_run:
                self._print(f"nbpar: nothing to run{note}")
                return
            self._print(f"nbpar: {_count(self._to_run, 'step')} to run{note}, on {_where(r)}")
        elif isinstance(event, StepStarted):
            if not self._many:
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
            self._finished += 1
            if self._many and s.status == "done":
                tenth = self._to_run // 10 or 1
                if self._finished % tenth == 0:
                    self._print(f"  {_clock()} {self._finished}/{self._to_run} steps finished")
                return
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
            ran = any(s.status != "up-to-date" for s in r.steps.values())
            self._print(f"nbpar: {summary} in {r.wall:.2f}s" if ran else f"nbpar: {summary}; nothing ran")


def progress_bar(result: RunResult, width: int = 24) -> str:
    """`[#########...........] 3/8 steps · 12/32 slices · 4.2s`"""
    steps = [s for s in result.steps.values() if s.status != "up-to-date"]
    finished = sum(1 for s in steps if s.status in FINAL)
    slices = [piece for s in steps for piece in s.slices]
    slices_done = sum(1 for piece in slices if piece.status == "done")
    units, done = len(steps) + len(slices), finished + slices_done
    filled = width * done // units if units else width
    parts = [f"{finished}/{len(steps)} steps"]
    if slices:
        parts.append(f"{slices_done}/{len(slices)} slices")
    failed = sum(1 for s in steps if s.status == "failed")
    if failed:
        parts.append(f"{failed} failed")
    parts.append(f"{result.wall:.1f}s")
    return f"[{'#' * filled}{'.' * (width - filled)}] " + " · ".join(parts)


def _where(result: RunResult) -> str:
    """Where the run's steps run: `2 process workers`, `2 process workers and the kernel`."""
    backends = dict.fromkeys(s.backend or result.backend for s in result.steps.values() if s.status != "up-to-date")
    n = result.workers
    places = {"process": _count(n, "process worker"), "thread": _count(n, "thread"), "inline": "the kernel"}
    return " and ".join(places.get(b, f"{n} {b} workers") for b in backends)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _clock() -> str:
    return time.strftime("%H:%M:%S")
