"""A text display of a run: one line per event, for terminals and logs;
and the text the magics print of steps, plans and runs (`describe_step`,
`describe_plan`, `announce`, `run_status`).

On a terminal (a tty) a progress bar also stays on the last line, redrawn
in place under the event lines; anywhere else (a notebook cell, a log file,
a pipe) there are only the plain lines. A run of more than MANY steps does
not print a line for each step that starts or succeeds, only one every
tenth of the run, beside every failure and everything steps print.

Displaying never slows the run down: events only add lines to a buffer,
which is written out at most every `interval` seconds (a timer writes what
a quiet run added last) and at the end of the run; in a notebook that is a
few stream messages a second, not one per line. What steps print is shown
up to LINES_PER_STEP lines a step and RUN_LINES lines a run; past that, a
step's lines are counted, and a line at its end says how many were left out
and where they all are (its record's `output`).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from ..events import Event, RunFinished, RunStarted, SliceFinished, StepFinished, StepLog, StepStarted
from ..graph import EFFECT_LABELS, Graph, Step
from ..records import FINAL, RunResult

if TYPE_CHECKING:
    from ..scheduler import Plan

_MARK = {
    "done": "done   ",
    "failed": "FAILED ",
    "skipped": "skipped",
    "cancelled": "cancel ",
    "up-to-date": "fresh  ",
}


MANY = 100  # steps to run, beyond which steps that start or succeed are counted, not listed
LINES_PER_STEP = 40  # printed lines shown of each step
RUN_LINES = 1000  # printed lines shown of all steps of a run
INTERVAL = 0.25  # seconds between writes to the stream
SHOWN_NAMES = 8  # step names listed in one line before "and N more"


class TextDisplay:
    """Prints each event as it comes (in writes `interval` seconds apart);
    step output is prefixed `[step]`. Called from the scheduler's loop; its
    timer writes from a thread of its own."""

    def __init__(self, stream: TextIO | None = None, bar: bool | None = None, interval: float = INTERVAL) -> None:
        self._stream = stream
        self._bar = bar  # None: a bar if the stream is a terminal
        self._interval = interval
        self._many = False  # this run has more than MANY steps to run
        self._finished = 0  # steps of this run finished so far
        self._to_run = 0
        self._shown: dict[str, int] = {}  # printed lines shown, per step
        self._shown_total = 0
        self._hidden: dict[str, int] = {}  # printed lines left out, per step
        self._lock = threading.Lock()  # guards what follows: the buffer and the stream
        self._pending: list[str] = []
        self._result: RunResult | None = None  # the run the bar shows
        self._bar_shown = False
        self._last_write = 0.0  # time.monotonic() of the last write
        self._timer: threading.Timer | None = None

    def _out(self) -> TextIO:
        return self._stream or sys.stdout

    def _print(self, text: str) -> None:
        self._pending.append(text + "\n")

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._show(event)
            self._result = event.result
            if isinstance(event, RunFinished):
                self._write(bar=False)
            elif time.monotonic() - self._last_write >= self._interval:
                self._write(bar=True)
            elif self._timer is None:
                self._timer = threading.Timer(self._interval, self._on_timer)
                self._timer.daemon = True
                self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            if self._result is not None and self._result.end is None:  # (else the run's end wrote it all)
                self._write(bar=True)

    def _write(self, bar: bool) -> None:
        """Write the buffered lines, and the bar under them (under the lock)."""
        if self._timer is not None and not bar:
            self._timer.cancel()
            self._timer = None
        self._last_write = time.monotonic()
        draw = bar and self._result is not None and self._wants_bar()
        if not self._pending and not draw:
            return
        text = "".join(self._pending)
        self._pending.clear()
        if self._bar_shown:
            text = "\r\x1b[K" + text  # clear the bar; it is drawn again below
            self._bar_shown = False
        if draw:
            assert self._result is not None
            text += "\r\x1b[K" + progress_bar(self._result)
            self._bar_shown = True
        stream = self._out()
        stream.write(text)
        stream.flush()

    def _wants_bar(self) -> bool:
        if self._bar is None:
            isatty = getattr(self._out(), "isatty", None)
            self._bar = bool(isatty and isatty())
        return self._bar

    def _step_output(self, event: StepLog) -> None:
        """Show a step's printed lines, up to the step's and the run's share."""
        label = event.step if event.slice is None else f"{event.step}[{event.slice}]"
        lines = event.text.splitlines()
        shown = self._shown.get(event.step, 0)
        room = max(0, min(LINES_PER_STEP - shown, RUN_LINES - self._shown_total))
        for line in lines[:room]:
            self._print(f"  [{label}] {line}")
        self._shown[event.step] = shown + min(room, len(lines))
        self._shown_total += min(room, len(lines))
        if len(lines) > room:
            self._hidden[event.step] = self._hidden.get(event.step, 0) + len(lines) - room

    def _left_out(self, step: str) -> None:
        """Say how many printed lines of `step` were not shown, and where they are."""
        hidden = self._hidden.pop(step, 0)
        if hidden:
            self._print(
                f"  [{step}] {hidden:,} more line{'s' if hidden != 1 else ''} not shown: "
                f"all are in nbpar.last_run().steps[{step!r}].output"
            )

    def _show(self, event: Event) -> None:
        r = event.result
        if isinstance(event, RunStarted):
            fresh = r.counts().get("up-to-date", 0)
            note = f" ({fresh} up to date)" if fresh else ""
            self._to_run, self._finished = len(r.steps) - fresh, 0
            self._shown.clear()
            self._hidden.clear()
            self._shown_total = 0
            self._many = self._to_run > MANY
            if not self._to_run:
                self._print(f"nbpar: nothing to run{note}")
                return
            self._print(f"nbpar: {_count(self._to_run, 'step')} to run{note}, on {_where(r)}")
            for line in _placements(r, self._many):
                self._print(line)
        elif isinstance(event, StepStarted):
            if not self._many:
                self._print(f"  {_clock()} start   {event.step}")
        elif isinstance(event, StepLog):
            self._step_output(event)
        elif isinstance(event, SliceFinished):
            slices = r.steps[event.step].slices
            done = r.steps[event.step].slices_done
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
            self._left_out(event.step)
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
            for step in list(self._hidden):  # (steps that did not finish)
                self._left_out(step)
            counts, summary = r.counts(), r.summary()
            ran = len(r.steps) > counts.get("up-to-date", 0)
            self._print(f"nbpar: {summary} in {r.wall:.2f}s" if ran else f"nbpar: {summary}; nothing ran")


def progress_bar(result: RunResult, width: int = 24) -> str:
    """`[#########...........] 3/8 steps · 12/32 slices · 4.2s`"""
    counts = result.counts()
    fresh = counts.get("up-to-date", 0)
    steps = [s for s in result.steps.values() if s.status != "up-to-date"]
    finished = sum(n for status, n in counts.items() if status in FINAL) - fresh
    slices = sum(len(s.slices) for s in steps)
    slices_done = sum(s.slices_done for s in steps)
    units, done = len(steps) + slices, finished + slices_done
    filled = width * done // units if units else width
    parts = [f"{finished}/{len(steps)} steps"]
    if slices:
        parts.append(f"{slices_done}/{slices} slices")
    failed = counts.get("failed", 0)
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


def _placements(result: RunResult, many: bool) -> list[str]:
    """Where `--backend auto` put each step and why; for many steps, how many went where."""
    placed = {n: s for n, s in result.steps.items() if s.placed and s.status != "up-to-date"}
    if not many:
        return [f"  auto: {n} on a {s.backend}: {s.placed}" for n, s in placed.items()]
    counts: dict[str, int] = {}
    for s in placed.values():
        counts[s.backend or ""] = counts.get(s.backend or "", 0) + 1
    if not counts:
        return []
    where = ", ".join(f"{n:,} on {b}s" for b, n in counts.items())
    return [f"  auto: {where} (why: nbpar.last_run().steps[NAME].placed)"]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _clock() -> str:
    return time.strftime("%H:%M:%S")


# -- what the magics print ----------------------------------------------------
def describe_step(graph: Graph, step: Step) -> str:
    """The line `%%step` prints of registered `step`: what it reads, writes
    and waits for in `graph`, and how it runs."""
    reads = graph.read_labels(step.name)
    deps = sorted(graph.dependencies_of(step.name))
    fan = f" | over {step.over}" if step.over else ""
    if step.changes:
        fan += f" | changes {', '.join(sorted(step.changes))} in place"
    if step.effects:
        fan += f" | in notebook order: it {', '.join(EFFECT_LABELS[k] for k in sorted(step.effects))}"
    if step.in_kernel and step.backend is None:
        fan += " | runs in the kernel" + (" (it uses IPython)" if step.uses_ipython else "")
    return (
        f"step {step.name}: reads {', '.join(reads) or '-'}"
        f" | writes {', '.join(sorted(step.writes)) or '-'}"
        f" | after {', '.join(deps) or '-'}{fan}"
    )


def describe_plan(plan: Plan) -> str:
    """`%parrun --dry-run` and `%pardag` in a terminal: each step of `plan`,
    whether it runs and why, and what it waits for."""
    stale = set(plan.stale)
    lines = [f"nbpar plan: {len(stale)} of {len(plan.order)} steps to run"]
    for name in plan.order:
        state = "run       " if name in stale else "up to date"
        deps = sorted(plan.deps[name])
        why = f": {plan.reasons[name]}" if name in plan.reasons else ""
        lines.append(f"  {state}  {name}" + (f"  (after {', '.join(deps)})" if deps else "") + why)
    return "\n".join(lines)


def _listed(names: list[str]) -> str:
    """`a, b, c`, at most SHOWN_NAMES of them, then "and N more"."""
    shown = ", ".join(names[:SHOWN_NAMES])
    more = len(names) - SHOWN_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


_UNEXPLAINED = ("no successful run yet", "--force")  # too plain to announce when every step runs for one


def announce(plan: Plan) -> str | None:
    """The line said before a run: which steps are kept, and which run and
    why (None when every step runs because it never ran, or --force)."""
    stale = set(plan.stale)
    fresh = [n for n in plan.order if n not in stale]
    if not fresh:
        if all(plan.reasons.get(n) in _UNEXPLAINED for n in plan.stale):
            return None
        return f"nbpar: running {len(plan.stale)}: {_why(plan)}."
    if not stale:
        steps = "the only step is" if len(fresh) == 1 else f"all {len(fresh)} steps are"
        return f"nbpar: {steps} up to date ({_listed(fresh)}); nothing to run (--force reruns them)."
    are = "is" if len(fresh) == 1 else "are"
    return (
        f"nbpar: {len(fresh)} of {len(plan.order)} steps {are} up to date ({_listed(fresh)}); "
        f"running {len(plan.stale)}: {_why(plan)}."
    )


def _why(plan: Plan) -> str:
    """`a (code changed), b (needs a, which runs)`: the stale steps with their
    reasons, at most SHOWN_NAMES of them."""
    shown = [f"{n} ({plan.reasons[n]})" if n in plan.reasons else n for n in plan.stale]
    return _listed(shown)


def run_status(result: RunResult) -> str:
    """What `%parstatus` says of a run: its state, time and counts, then
    one line per running step (with its slices done)."""
    state = "going on" if result.end is None else "finished"
    lines = [f"nbpar: run {state}, {result.wall:.1f}s: {result.summary()}"]
    for record in result.steps.values():
        if record.status == "running":
            slices = record.slices
            progress = f" ({record.slices_done}/{len(slices)} slices)" if slices else ""
            lines.append(f"  running  {record.name}{progress}")
    return "\n".join(lines)


def cancelled_text(result: RunResult) -> str:
    """What `%parcancel` says once the run it cancelled has ended."""
    cancelled = result.by_status("cancelled")
    return f"nbpar: run cancelled; {len(cancelled)} steps cancelled" + (
        f": {', '.join(cancelled)}" if cancelled else ""
    )
