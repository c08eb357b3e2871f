"""The registered steps as a table, for `%parsteps`: HTML for notebooks, text for terminals.

Graph (steps, what each waits for, where each read comes from), {name: last status}
    --_rows--> one row of strings a step (step, reads, writes and what it
               changes in place, after, over, backend (`inline` for a step
               that runs in the kernel unless given one), last status)
    --steps_table_html--> <table> with the status cell coloured
    --steps_table_text--> aligned columns
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from ..graph import Graph, Step
from .svg import colour

COLUMNS = ("step", "reads", "writes", "after", "over", "backend", "last status")
_TEXT_CELL = 40  # a text cell longer than this is cut


def steps_table_html(graph: Graph, statuses: Mapping[str, str]) -> str:
    """An HTML table of the steps of `graph`; `reads` leaves out builtins no
    step writes and says which step's version a name several steps write
    comes from, `after` lists every step a step waits for (inferred or
    --after), `last status` comes from `statuses`."""
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{c}</th>' for c in COLUMNS)
    body = []
    for row in _rows(graph, statuses):
        cells = [f'<td style="padding:2px 8px;vertical-align:top">{html.escape(c)}</td>' for c in row[:-1]]
        status = row[-1]
        fill = f"background:{colour(status)};" if status else ""
        cells.append(f'<td style="{fill}padding:2px 8px">{html.escape(status)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="nbpar-steps" style="border-collapse:collapse"><tr>{head}</tr>{"".join(body)}</table>'


def steps_table_text(graph: Graph, statuses: Mapping[str, str]) -> str:
    """The same table as aligned plain text, long cells cut with "…"."""
    rows = [COLUMNS, *(tuple(_cut(c) for c in row) for row in _rows(graph, statuses))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _rows(graph: Graph, statuses: Mapping[str, str]) -> list[tuple[str, ...]]:
    position = graph.position()
    deps = graph.dependencies()
    rows: list[tuple[str, ...]] = []
    for name, step in graph.steps.items():
        after = sorted(deps.get(name, ()), key=position.__getitem__)
        rows.append(
            (
                name,
                ", ".join(graph.read_labels(name)),
                _writes(step),
                ", ".join(after),
                _fan_out(step),
                step.backend or ("inline" if step.in_kernel else ""),
                statuses.get(name, ""),
            )
        )
    return rows


def _writes(step: Step) -> str:
    """`n, total; changes df in place`: the names it binds, then the inputs it changes."""
    bound = ", ".join(sorted(step.writes - step.changes))
    if not step.changes:
        return bound
    changes = f"changes {', '.join(sorted(step.changes))} in place"
    return f"{bound}; {changes}" if bound else changes


def _fan_out(step: Step) -> str:
    """`xs, 4 slices`, `xs, 10 a slice`, `xs` (a slice a worker), with its filter."""
    if step.over is None:
        return ""
    text = step.over
    if step.slices is not None:
        text += f", {step.slices} slices"
    elif step.slice_size is not None:
        text += f", {step.slice_size} a slice"
    if step.filter is not None:
        text += f", if {step.filter}"
    return text


def _cut(text: str) -> str:
    return text if len(text) <= _TEXT_CELL else text[: _TEXT_CELL - 1] + "…"
