"""A run as one self-contained HTML page, and the text pieces the monitor shares.

    RunResult (+ the run's order and deps, from RunStarted or the plan)
        --report_html--> <html>: summary line, graph SVG, timeline SVG,
                         a table of steps, failed steps' tracebacks,
                         every step's output in <details>
        --write_report--> that page, written to a file (`nbpar run --report`)

`summary_text` (the progress line) and `step_log_html` (a step's output and
traceback) are used live by the monitor too. Inline CSS only: the page can
be mailed or attached to a CI run.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence

from ..records import RunResult, StepRecord
from .svg import colour, graph_svg, seconds, timeline_svg

_PRE = "margin:4px 0;padding:6px 8px;white-space:pre-wrap;font:12px ui-monospace,Menlo,Consolas,monospace"
_CSS = f"""
body {{ font: 14px system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px; color: #111827; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
table {{ border-collapse: collapse; }}
th, td {{ border-bottom: 1px solid #e5e7eb; padding: 3px 10px; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; }}
pre {{ {_PRE}; background: #f9fafb; }}
pre.error {{ background: #fef2f2; color: #991b1b; }}
details {{ margin: 4px 0; }} summary {{ cursor: pointer; }}
"""


def summary_text(result: RunResult, now: float) -> str:
    """One line: "3/6 steps done · 1 running · 12/32 slices · 4.2 s · 1 failed"."""
    records = list(result.steps.values())
    counts = result.counts()
    parts = [f"{result.succeeded}/{len(records)} steps done"]
    running = counts.get("running", 0)
    if running:
        parts.append(f"{running} running")
    pieces = sum(len(r.slices) for r in records)
    if pieces:
        parts.append(f"{sum(r.slices_done for r in records)}/{pieces} slices")
    parts.append(seconds((result.end if result.end is not None else now) - result.start))
    for status in ("failed", "skipped", "cancelled"):
        count = counts.get(status, 0)
        if count:
            parts.append(f"{count} {status}")
    if result.interrupted:
        parts.append("interrupted")
    return " · ".join(parts)


def step_log_html(record: StepRecord, limit: int | None = None) -> str:
    """What `record`'s step printed (the last `limit` characters), why it
    was skipped or cancelled, nbpar's notes on it, and its traceback if it failed."""
    parts = []
    if record.reason:
        parts.append(f"<div><i>{html.escape(record.status)}: {html.escape(record.reason)}</i></div>")
    parts.extend(f"<div><i>nbpar: {html.escape(note)}</i></div>" for note in record.notes)  # e.g. a merge's
    output = record.output
    if limit is not None and len(output) > limit:
        cut = len(output) - limit
        output = f"… ({cut} earlier characters not shown)\n" + output[cut:]
    if output:
        parts.append(f'<pre style="{_PRE};background:#f9fafb">{html.escape(output)}</pre>')
    if record.error:
        parts.append(f'<pre style="{_PRE};background:#fef2f2;color:#991b1b">{html.escape(record.error)}</pre>')
    if not parts:
        parts.append(f"<div><i>no output{'' if record.status in ('done', 'up-to-date') else ' yet'}</i></div>")
    return "".join(parts)


def report_html(runs: Sequence[RunResult], title: str = "nbpar run") -> str:
    """The report page: for each run, in order, its summary, graph,
    timeline, steps, failures and output."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for number, result in enumerate(runs, 1):
        heading = f"Run {number} of {len(runs)}" if len(runs) > 1 else "Run"
        body += _run_sections(result, heading)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _run_sections(result: RunResult, heading: str) -> list[str]:
    now = result.end if result.end is not None else time.time()
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.start))
    failed = [r for r in result.steps.values() if r.status == "failed"]
    workers = f"{result.workers} {html.escape(result.backend)} worker{'s' if result.workers != 1 else ''}"
    sections = [
        f"<h2>{heading}</h2>",
        f"<p><b>{html.escape(summary_text(result, now))}</b><br>started {when} on {workers}</p>",
        "<h3>Graph</h3>",
        graph_svg(list(result.steps), result.deps, result.steps),
        "<h3>Timeline</h3>",
        timeline_svg(result, {}, now),
        "<h3>Steps</h3>",
        _steps_table(result),
    ]
    if failed:
        sections.append("<h3>Failures</h3>")
        sections += [
            f'<h4>{html.escape(r.name)}</h4><pre class="error">{html.escape(r.error or "")}</pre>' for r in failed
        ]
    sections.append("<h3>Output</h3>")
    sections += [_output_details(r) for r in result.steps.values()]
    return sections


def write_report(path: str | os.PathLike[str], runs: Sequence[RunResult], title: str = "nbpar run") -> None:
    """Write `report_html(runs)` to `path` (UTF-8)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(report_html(runs, title))


def _steps_table(result: RunResult) -> str:
    rows = [
        "<table><tr><th>step</th><th>status</th><th>duration</th><th>worker</th><th>attempts</th><th>note</th></tr>"
    ]
    for r in result.steps.values():
        duration = seconds(r.duration) if r.duration is not None else ""
        note = r.reason or (f"{len(r.slices)} slices" if r.slices else "")
        rows.append(
            f"<tr><td>{html.escape(r.name)}</td>"
            f'<td style="background:{colour(r.status)}">{html.escape(r.status)}</td>'
            f'<td class="num">{duration}</td><td>{html.escape(r.worker or "")}</td>'
            f'<td class="num">{r.attempts}</td><td>{html.escape(note)}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def _output_details(record: StepRecord) -> str:
    return (
        f"<details><summary>{html.escape(record.name)} ({html.escape(record.status)})</summary>"
        f"{step_log_html(record)}</details>"
    )
