"""The live monitor of a run: standard ipywidgets, redrawn from the scheduler's events.

Data flow::

    scheduler loop (any thread) --event--> Monitor.__call__
        notes what the event tells (order and deps, when a unit was seen
        starting, the first failure, the step that printed last), marks the
        picture dirty and asks for a redraw:
          last redraw long enough ago  -> redraw now, in this thread
          else                         -> one threading.Timer for the rest
                                          of the gap (later events ride on it)
          RunFinished                  -> redraw now, always: the final state
    redraw (under one lock): render with svg.py / report.py, then set the
        widgets' traits inside hold_sync(); unchanged values send nothing
    heartbeat: while a run goes on, a redraw at least every second, so the
        clock and the running bars move during a long quiet step

The widgets are made in the constructor, in the thread that displays
`monitor.widget` (the kernel's main thread); afterwards they are only changed
by setting traits, which is safe from any thread (ipykernel sends comm
messages through its IOPub thread). Never display() or `with output:` here.

The gap between redraws is `interval` (0.1 s), longer when drawing is slow
(a redraw may take at most a fifth of the time), so a run of thousands of
steps sends a few updates a second, not one per event.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from ..events import Event, RunFinished, RunStarted, SliceStarted, StepFinished, StepLog, StepStarted
from ..records import RunResult, Status, StepRecord
from .report import step_log_html, summary_text
from .svg import graph_svg, timeline_svg

Key = tuple[str, int | None]  # (step, slice index or None for a whole step)

HEARTBEAT = 1.0  # seconds between redraws of a run that sends no events
OUTPUT_LIMIT = 20_000  # the log pane shows the last this many characters of a step's output
_COST_SHARE = 5  # the gap between redraws is at least this many times a redraw's cost
_HIDDEN, _SHOWN = "none", ""


class Monitor:
    """A listener of one run (or several, one after another) drawing a
    progress line, the graph, the timeline, a step's output, and a Cancel
    button calling `on_cancel` (hidden without one)."""

    def __init__(self, on_cancel: Callable[[], None] | None = None, *, interval: float = 0.1) -> None:
        self._on_cancel = on_cancel
        self._interval = interval
        self._lock = threading.RLock()
        # what the events told, read by redraws
        self._order: tuple[str, ...] = ()
        self._deps: Mapping[str, Iterable[str]] = {}
        self._records: Mapping[str, StepRecord] = {}
        self._result: RunResult | None = None
        self._started: dict[Key, float] = {}
        self._first_failure: str | None = None
        self._last_printer: str | None = None
        self._user_picked = False
        # the throttle
        self._dirty = False
        self._timer: threading.Timer | None = None
        self._heartbeat: threading.Timer | None = None  # redraws a quiet run: clock, running bars
        self._last_draw = -float("inf")  # time.monotonic() at the end of the last redraw
        self._gap = interval
        self._setting_picker = False
        # the widgets
        self.progress = widgets.HTML()
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", button_style="warning", tooltip="Stop the run", disabled=True
        )  # enabled while a run goes on
        self.cancel_button.on_click(self._cancel)
        self.cancel_button.layout.display = _HIDDEN if on_cancel is None else _SHOWN
        self.graph = widgets.HTML()
        self.timeline = widgets.HTML()
        self.picker = widgets.Dropdown(description="Output of", options=[])
        self.picker.observe(self._picked, names="value")
        self.log = widgets.HTML()
        self._header = widgets.HBox([self.progress, self.cancel_button], layout=widgets.Layout(align_items="center"))
        self._logs = widgets.VBox([self.picker, self.log])
        self._run_parts = (self._header, self.timeline, self._logs)
        for part in self._run_parts:
            part.layout.display = _HIDDEN  # until a run starts
        self.widget = widgets.VBox([self._header, self.graph, self.timeline, self._logs])

    @classmethod
    def for_graph(
        cls, order: Sequence[str], deps: Mapping[str, Iterable[str]], statuses: Mapping[str, Status] | None = None
    ) -> Monitor:
        """A monitor showing only the graph of `order` (topological), boxes
        coloured by `statuses` (default: waiting), before any run: its widget
        holds the graph alone (no run parts for a front end to show)."""
        monitor = cls()
        monitor.widget = widgets.VBox([monitor.graph])
        monitor._show_graph(order, deps, statuses or {})
        return monitor

    def _show_graph(
        self, order: Sequence[str], deps: Mapping[str, Iterable[str]], statuses: Mapping[str, Status]
    ) -> None:
        """Draw this graph, with no run yet."""
        with self._lock:
            self._order, self._deps = tuple(order), deps
            self._records = {name: StepRecord(name, status=statuses.get(name, "waiting")) for name in order}
            self._dirty = True
            self.flush()

    # -- events ------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        with self._lock:
            self._note(event)
            self._dirty = True
            if isinstance(event, RunFinished):
                self.flush()
            else:
                self._schedule()

    def _note(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._order, self._deps, self._records = event.order, event.deps, event.result.steps
            self._started.clear()
            self._first_failure = self._last_printer = None
            self.cancel_button.description = "Cancel"
        elif isinstance(event, StepStarted):
            self._started[(event.step, None)] = time.time()
        elif isinstance(event, SliceStarted):
            self._started[(event.step, event.index)] = time.time()
        elif isinstance(event, StepLog):
            self._last_printer = event.step
        elif isinstance(event, StepFinished) and self._first_failure is None:
            if event.result.steps[event.step].status == "failed":
                self._first_failure = event.step
        self._result = event.result

    # -- the throttle ------------------------------------------------------------
    def _schedule(self) -> None:
        """Redraw now if the last redraw is a gap ago, else once the gap is over."""
        if self._timer is not None:
            return  # the pending redraw will show this event too
        wait = self._last_draw + self._gap - time.monotonic()
        if wait <= 0:
            self.flush()
            return
        self._timer = threading.Timer(wait, self.flush)
        self._timer.daemon = True
        self._timer.start()

    def flush(self) -> None:
        """Redraw now if anything changed since the last redraw (any thread)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._dirty:
                return
            self._dirty = False
            began = time.monotonic()
            self._redraw()
            self._last_draw = time.monotonic()
            self._gap = max(self._interval, _COST_SHARE * (self._last_draw - began))
            if self._heartbeat is not None:
                self._heartbeat.cancel()
                self._heartbeat = None
            if self._result is not None and self._result.end is None:
                self._heartbeat = threading.Timer(max(HEARTBEAT, self._gap), self._beat)
                self._heartbeat.daemon = True
                self._heartbeat.start()

    def _beat(self) -> None:
        """No redraw for a second while the run goes on: redraw anyway, so
        its clock moves and its running bars grow."""
        with self._lock:
            self._heartbeat = None
            if self._result is not None and self._result.end is None:
                self._dirty = True
                self._schedule()

    # -- drawing -------------------------------------------------------------------
    def _redraw(self) -> None:
        now = time.time()
        result = self._result
        with contextlib.ExitStack() as held:
            for w in (self.progress, self.graph, self.timeline, self.picker, self.log, self.cancel_button):
                held.enter_context(w.hold_sync())
            self.graph.value = (
                f'<div style="max-height:560px;overflow:auto">{graph_svg(self._order, self._deps, self._records)}</div>'
            )
            if result is None:
                return
            for part in self._run_parts:
                part.layout.display = _SHOWN
            self.progress.value = _progress_html(result, now)
            self.cancel_button.disabled = result.end is not None
            self.timeline.value = timeline_svg(result, self._started, now)
            self._update_picker()
            shown = result.steps.get(self.picker.value) if self.picker.value else None
            self.log.value = step_log_html(shown, OUTPUT_LIMIT) if shown is not None else ""

    def _update_picker(self) -> None:
        """Offer the run's steps; unless the user chose one, show the first
        failure, else the step that printed last, else the first step."""
        options = list(self._order)
        if self._user_picked and self.picker.value in options:
            choice = self.picker.value
        else:
            choice = self._first_failure or self._last_printer or (options[0] if options else None)
        self._setting_picker = True
        try:
            if tuple(self.picker.options) != tuple(options):
                self.picker.options = options
            self.picker.value = choice
        finally:
            self._setting_picker = False

    def _picked(self, change: Any) -> None:
        """The user chose a step in the dropdown: keep it, show its output."""
        with self._lock:
            if self._setting_picker:
                return
            self._user_picked = True
            self._dirty = True
            self.flush()

    def _cancel(self, _button: Any) -> None:
        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancelling…"
        if self._on_cancel is not None:
            self._on_cancel()


def _progress_html(result: RunResult, now: float) -> str:
    if result.end is None:
        state, tint = "Running", "#1d4ed8"
    elif result.ok:
        state, tint = "Finished", "#15803d"
    else:
        state, tint = ("Interrupted" if result.interrupted else "Finished with problems"), "#b91c1c"
    summary = html.escape(summary_text(result, now))
    return f'<span style="font-size:13px"><b style="color:{tint}">{state}</b> · {summary}</span>'
