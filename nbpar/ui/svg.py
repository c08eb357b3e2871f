"""SVG pictures of a run: the step graph and the worker timeline.

Pure functions from run state to a self-contained SVG string (no script, no
external CSS, text escaped), deterministic given their inputs: the caller
passes `now`. The live monitor, `%pardag` and the HTML report all draw with
them, so a run looks the same while it runs and afterwards::

    order, deps, {step: StepRecord} --graph_svg-->    layered DAG, one box a step,
                                                      coloured by status (STATUS_COLOURS)
    RunResult, {unit: time seen started}, now
                                    --timeline_svg--> one lane a worker, one bar a step
                                                      (or a slice of a fanned-out step)

Every root carries a class (`nbpar-graph`, `nbpar-timeline`) and every step
box and bar `data-step` / `data-status`, for tests and browsers to find.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..records import FINAL, RunResult, SliceRecord, StepRecord

STATUS_COLOURS: dict[str, str] = {
    "waiting": "#f3f4f6",
    "queued": "#e0e7ff",
    "running": "#93c5fd",
    "done": "#86efac",
    "up-to-date": "#ccfbf1",
    "failed": "#fca5a5",
    "skipped": "#fde68a",
    "cancelled": "#d6d3d1",
}
_UNKNOWN_COLOUR = "#ffffff"
_STROKES = {"running": ("#2563eb", 2.0), "failed": ("#dc2626", 2.0)}  # status -> (colour, width)
_STROKE = ("#6b7280", 1.0)
_INK = "#111827"
_MUTED = "#6b7280"
_EDGE = "#9ca3af"
_FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
_CHAR = 7.0  # average width of a 12px character, for sizing boxes and cutting text

# graph geometry
_MARGIN = 12
_LEGEND_H = 30
_BOX_H = 40
_BOX_MIN, _BOX_MAX = 72, 168
_GAP_X, _GAP_Y = 20, 40
_ROW_MAX = 10  # wider layers wrap onto several rows

# timeline geometry
_PLOT_W = 720
_LANE_H, _BAR_H = 22, 16
_AXIS_H = 40
_TICKS = 8  # about this many ticks on the time axis


def colour(status: str) -> str:
    """The fill colour of `status`, the same in every picture."""
    return STATUS_COLOURS.get(status, _UNKNOWN_COLOUR)


def seconds(value: float) -> str:
    """A duration for people: 0.35 s, 4.2 s, 125 s."""
    if value < 1:
        return f"{value:.2f} s"
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


# -- the graph ------------------------------------------------------------------


def layers(order: Sequence[str], deps: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Each step's layer: the longest path to it from a step with no
    dependencies. `order` must be topological (dependencies first)."""
    layer: dict[str, int] = {}
    for name in order:
        parents = [layer[d] for d in deps.get(name, ()) if d in layer]
        layer[name] = 1 + max(parents) if parents else 0
    return layer


def graph_svg(order: Sequence[str], deps: Mapping[str, Iterable[str]], steps: Mapping[str, StepRecord]) -> str:
    """The steps of `order` as a layered graph, top to bottom, an arrow from
    each dependency to its dependent, each box coloured by its status in
    `steps` (a missing record: waiting)."""
    legend, legend_w = _legend()
    at = _layout(order, deps, legend_w)
    edges = [_edge(dep, name, at) for name in order for dep in deps.get(name, ()) if dep in at.place]
    nodes = [_node(name, steps.get(name), at.place[name][1:], at.box_w) for name in order]
    body = [legend, f'<g fill="none" stroke="{_EDGE}" stroke-width="1.2">', *edges, "</g>", *nodes]
    return _svg("nbpar-graph", at.width, at.height, body)


@dataclass
class _Layout:
    box_w: int
    width: float
    height: float
    rows: list[list[float]]  # the left edges of each row's boxes
    place: dict[str, tuple[int, float, float]]  # step -> (row, x, y) of its box


def _layout(order: Sequence[str], deps: Mapping[str, Iterable[str]], min_width: float) -> _Layout:
    """Boxes in rows: a layer a row (wrapped when wide), in `order`, each row centred."""
    rows = _rows(order, layers(order, deps))
    box_w = _box_width(order)
    width = max(_MARGIN * 2 + max((len(r) for r in rows), default=0) * (box_w + _GAP_X) - _GAP_X, min_width)
    height = _MARGIN * 2 + _LEGEND_H + len(rows) * (_BOX_H + _GAP_Y) - (_GAP_Y if rows else 0)
    at = _Layout(box_w, width, height, [], {})
    for r, row in enumerate(rows):
        x0 = (width - (len(row) * (box_w + _GAP_X) - _GAP_X)) / 2
        at.rows.append([x0 + i * (box_w + _GAP_X) for i in range(len(row))])
        for name, x in zip(row, at.rows[-1], strict=True):
            at.place[name] = (r, x, _row_top(r))
    return at


def _row_top(row: int) -> float:
    return _MARGIN + _LEGEND_H + row * (_BOX_H + _GAP_Y)


def _rows(order: Sequence[str], layer: Mapping[str, int]) -> list[list[str]]:
    """The names in each row, top to bottom."""
    by_layer: dict[int, list[str]] = {}
    for name in order:
        by_layer.setdefault(layer[name], []).append(name)
    return [by_layer[k][i : i + _ROW_MAX] for k in sorted(by_layer) for i in range(0, len(by_layer[k]), _ROW_MAX)]


def _box_width(order: Sequence[str]) -> int:
    longest = max((len(n) for n in order), default=0)
    return int(min(max(longest * _CHAR + 20, _BOX_MIN), _BOX_MAX))


def _legend() -> tuple[str, float]:
    """The status legend along the top, and its width."""
    parts, x = [], float(_MARGIN)
    for status, fill in STATUS_COLOURS.items():
        parts.append(
            f'<rect x="{x:.0f}" y="{_MARGIN}" width="12" height="12" rx="2" fill="{fill}" stroke="{_STROKE[0]}"/>'
            f'<text x="{x + 16:.0f}" y="{_MARGIN + 10}" font-size="11" fill="{_MUTED}">{status}</text>'
        )
        x += 16 + len(status) * 6.5 + 14
    return f'<g class="nbpar-legend">{"".join(parts)}</g>', x + _MARGIN


def _edge(source: str, target: str, at: _Layout) -> str:
    """A path from the bottom of `source`'s box to the top of `target`'s,
    ending in a chevron; through the rows in between it runs down the gap
    between two boxes nearest its straight line, so it never hides behind
    a box."""
    (r1, x1, y1), (r2, x2, y2) = at.place[source], at.place[target]
    x1, y1, x2 = x1 + at.box_w / 2, y1 + _BOX_H, x2 + at.box_w / 2
    points = [(x1, y1)]  # pairs: where the path leaves a row, where it enters the next
    for r in range(r1 + 1, r2):
        lefts = at.rows[r]
        gaps = [lefts[0] - _GAP_X / 2, *(x + at.box_w + _GAP_X / 2 for x in lefts)]
        straight = x1 + (x2 - x1) * (r - r1) / (r2 - r1)
        gap = min(gaps, key=lambda g: abs(g - straight))
        points += [(gap, _row_top(r) - 4), (gap, _row_top(r) + _BOX_H + 4)]
    points.append((x2, y2 - 1))
    d = f"M{x1:.1f},{y1:.1f}"
    for i in range(0, len(points), 2):
        (ax, ay), (bx, by) = points[i], points[i + 1]
        mid = (ay + by) / 2
        d += f" C{ax:.1f},{mid:.1f} {bx:.1f},{mid:.1f} {bx:.1f},{by:.1f}"
        if i + 2 < len(points):
            d += f" L{points[i + 2][0]:.1f},{points[i + 2][1]:.1f}"
    tip_x, tip_y = points[-1]
    d += f" M{tip_x - 4:.1f},{tip_y - 7:.1f} L{tip_x:.1f},{tip_y:.1f} L{tip_x + 4:.1f},{tip_y - 7:.1f}"
    return f'<path data-from="{_attr(source)}" data-to="{_attr(target)}" d="{d}"/>'


def _node(name: str, record: StepRecord | None, xy: tuple[float, float], box_w: int) -> str:
    x, y = xy
    status = record.status if record is not None else "waiting"
    stroke, stroke_w = _STROKES.get(status, _STROKE)
    slices = record.slices if record is not None else []
    label_y = y + 16 if slices else y + _BOX_H / 2 + 4
    parts = [
        f'<g class="nbpar-step" data-step="{_attr(name)}" data-status="{_attr(status)}">',
        f"<title>{html.escape(_node_tip(name, record))}</title>",
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{box_w}" height="{_BOX_H}" rx="8" '
        f'fill="{colour(status)}" stroke="{stroke}" stroke-width="{stroke_w}"/>',
        f'<text x="{x + box_w / 2:.1f}" y="{label_y:.1f}" text-anchor="middle" fill="{_INK}">'
        f"{html.escape(_cut(name, box_w - 12))}</text>",
    ]
    if slices:
        done = record.slices_done if record is not None else 0
        track = box_w - 52
        parts.append(
            f'<rect x="{x + 8:.1f}" y="{y + 25:.1f}" width="{track}" height="5" rx="2" fill="#ffffff" stroke="{_EDGE}"'
            ' stroke-width="0.5"/>'
            f'<rect x="{x + 8:.1f}" y="{y + 25:.1f}" width="{track * done / len(slices):.1f}" height="5" rx="2"'
            f' fill="{_MUTED}"/>'
            f'<text x="{x + box_w - 8:.1f}" y="{y + 31:.1f}" text-anchor="end" font-size="10" fill="{_INK}">'
            f"{done}/{len(slices)}</text>"
        )
    parts.append("</g>")
    return "".join(parts)


def _node_tip(name: str, record: StepRecord | None) -> str:
    if record is None:
        return f"{name}: waiting"
    lines = [f"{name}: {record.status}"]
    if record.slices:
        lines.append(f"{record.slices_done}/{len(record.slices)} slices done")
    if record.duration is not None:
        lines.append(seconds(record.duration) + (f" on {record.worker}" if record.worker else ""))
    if record.reason:
        lines.append(record.reason)
    return "\n".join(lines)


# -- the timeline ----------------------------------------------------------------


@dataclass(frozen=True)
class _Bar:
    step: str
    index: int | None  # the slice, None for a whole step
    status: str
    worker: str
    start: float
    end: float

    @property
    def label(self) -> str:
        return self.step if self.index is None else f"{self.step}[{self.index}]"


def timeline_svg(result: RunResult, started: Mapping[tuple[str, int | None], float], now: float) -> str:
    """Which worker ran what when: a lane per worker, a bar per step or
    slice that a worker has taken, from its start (or the time in `started`,
    keyed (step, slice or None)) to its end (or `now`), over an axis in
    seconds since the run started."""
    bars = _bars(result, started, now)
    lanes = sorted({b.worker for b in bars}, key=_natural)
    label_w = int(min(max((len(w) for w in lanes), default=0) * 6.5 + 16, 180))
    top = _MARGIN
    width = label_w + _PLOT_W + 24
    height = top + len(lanes) * _LANE_H + _AXIS_H
    end = max([result.end if result.end is not None else now, *(b.end for b in bars)])
    span = max(end - result.start, 0.01)

    def x_of(t: float) -> float:
        return label_w + max(t - result.start, 0.0) / span * _PLOT_W

    body = []
    for i, lane in enumerate(lanes):
        y = top + i * _LANE_H
        stripe = "#f9fafb" if i % 2 == 0 else "#ffffff"
        body.append(
            f'<rect x="{label_w}" y="{y}" width="{_PLOT_W}" height="{_LANE_H}" fill="{stripe}"/>'
            f'<text x="{label_w - 6}" y="{y + _LANE_H / 2 + 4:.1f}" text-anchor="end" font-size="11" fill="{_MUTED}">'
            f"{html.escape(lane)}</text>"
        )
    row = {lane: i for i, lane in enumerate(lanes)}
    body += [_bar_svg(b, x_of(b.start), x_of(b.end), top + row[b.worker] * _LANE_H) for b in bars]
    if not bars:
        body.append(f'<text x="{label_w}" y="{top + 12}" font-size="11" fill="{_MUTED}">no step has started yet</text>')
    body.append(_axis(span, label_w, top + len(lanes) * _LANE_H))
    return _svg("nbpar-timeline", width, height, body)


def _bars(result: RunResult, started: Mapping[tuple[str, int | None], float], now: float) -> list[_Bar]:
    """A bar for every unit a worker has taken: the slices of a fanned-out
    step, else the step itself."""
    bars: list[_Bar | None] = []
    for name, record in result.steps.items():
        if not record.slices:
            bars.append(_bar(name, None, record.status, record, started, now))
        for piece in record.slices:
            # a slice left unfinished by a failure or cancel takes its step's status
            status = record.status if record.status in FINAL and piece.status not in FINAL else piece.status
            bars.append(_bar(name, piece.index, status, piece, started, now))
    return [b for b in bars if b is not None]


def _bar(
    step: str,
    index: int | None,
    status: str,
    unit: StepRecord | SliceRecord,
    started: Mapping[tuple[str, int | None], float],
    now: float,
) -> _Bar | None:
    """The unit's bar, None if no worker has it or its start is unknown."""
    begin = unit.start if unit.start is not None else started.get((step, index))
    if unit.worker is None or begin is None:
        return None
    return _Bar(step, index, status, unit.worker, begin, unit.end if unit.end is not None else max(now, begin))


def _bar_svg(bar: _Bar, x1: float, x2: float, lane_y: float) -> str:
    width = max(x2 - x1, 1.5)
    y = lane_y + (_LANE_H - _BAR_H) / 2
    stroke, stroke_w = _STROKES.get(bar.status, _STROKE)
    tip = f"{bar.label} · {seconds(bar.end - bar.start)} · {bar.worker} · {bar.status}"
    index = "" if bar.index is None else f' data-slice="{bar.index}"'
    text = _cut(bar.label, width - 6, char=6.0)
    label = (
        f'<text x="{x1 + 3:.1f}" y="{y + _BAR_H - 4:.1f}" font-size="10" fill="{_INK}">{html.escape(text)}</text>'
        if text
        else ""
    )
    return (
        f'<g class="nbpar-bar" data-step="{_attr(bar.step)}"{index} data-status="{_attr(bar.status)}">'
        f"<title>{html.escape(tip)}</title>"
        f'<rect x="{x1:.1f}" y="{y:.1f}" width="{width:.1f}" height="{_BAR_H}" rx="2" fill="{colour(bar.status)}"'
        f' stroke="{stroke}" stroke-width="{stroke_w / 2}"/>{label}</g>'
    )


def _axis(span: float, left: float, y: float) -> str:
    """The time axis under the lanes: ticks at a round step, in seconds."""
    step = _tick_step(span)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    parts = [f'<g class="nbpar-axis" font-size="10" fill="{_MUTED}">']
    parts.append(f'<line x1="{left}" y1="{y}" x2="{left + _PLOT_W}" y2="{y}" stroke="{_MUTED}"/>')
    for i in range(int(span / step + 1e-9) + 1):
        x = left + i * step / span * _PLOT_W
        parts.append(
            f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="{_MUTED}"/>'
            f'<text x="{x:.1f}" y="{y + 15}" text-anchor="middle">{_tick_label(i * step, decimals)}</text>'
        )
    parts.append(f'<text x="{left}" y="{y + 32}">seconds since the run started</text></g>')
    return "".join(parts)


def _tick_step(span: float) -> float:
    """A round distance between ticks (1, 2 or 5 times a power of ten)
    giving at most about eight ticks over `span` seconds."""
    raw = span / _TICKS
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def _tick_label(value: float, decimals: int) -> str:
    """0, 0.5, 1, 1.5: no trailing zeros."""
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _natural(text: str) -> list[str | int]:
    """Sort key putting "thread nbpar_2" before "thread nbpar_10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# -- shared --------------------------------------------------------------------


def _svg(cls: str, width: float, height: float, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" style="max-width:100%;height:auto;background:#ffffff" '
        f'font-family="{_FONT}" font-size="12">' + "".join(body) + "</svg>"
    )


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _cut(text: str, room: float, char: float = _CHAR) -> str:
    """`text`, shortened with an ellipsis to fit `room` pixels ("" if nothing fits)."""
    fits = int(room // char)
    if len(text) <= fits:
        return text
    return text[: fits - 1] + "…" if fits > 1 else ""
