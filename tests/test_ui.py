"""The run displays, from the user's side: the monitor widget fed by real
runs, its SVG pictures, the steps table and the HTML report."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from nbpar import Pipeline, RunResult, StepRecord
from nbpar.events import Event, RunFinished, RunStarted, StepFinished, StepLog, StepStarted
from nbpar.ui.monitor import Monitor
from nbpar.ui.report import report_html, summary_text, write_report
from nbpar.ui.svg import STATUS_COLOURS, graph_svg, timeline_svg
from nbpar.ui.table import steps_table_html, steps_table_text

SVG = "{http://www.w3.org/2000/svg}"


def make_pipeline() -> Pipeline:
    """Five steps: one prints, one fans out over 4 slices, one fails, one is
    skipped because of it, one is independent."""
    p = Pipeline({"xs": list(range(8))})
    p.add_step("load", "print('hello from load')\na = 1")
    p.add_step("fan", "out = list(xs)", over="xs", slices=4)
    p.add_step("bad", "b = a + 1\nraise ValueError('boom')")
    p.add_step("after_bad", "c = b * 2")
    p.add_step("other", "d = len(out)")
    return p


def run(p: Pipeline, *listeners: Any, backend: str = "thread") -> RunResult:
    return p.run(backend=backend, workers=2, listeners=listeners, check=False)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def finished() -> tuple[Pipeline, Monitor, RunResult]:
    p = make_pipeline()
    monitor = Monitor()
    result = run(p, monitor)
    p.shutdown()
    return p, monitor, result


def svg_of(value: str) -> ET.Element:
    """The <svg> element in a widget's HTML, parsed as XML."""
    return ET.fromstring(value[value.index("<svg") : value.rindex("</svg>") + len("</svg>")])


def by_class(root: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("class") == cls]


def test_graph_names_every_step_with_its_status(finished: tuple[Pipeline, Monitor, RunResult]) -> None:
    _, monitor, result = finished
    root = svg_of(monitor.graph.value)
    assert root.get("class") == "nbpar-graph"
    nodes = {n.get("data-step"): n.get("data-status") for n in by_class(root, "nbpar-step")}
    assert nodes == {
        "load": "done",
        "fan": "done",
        "bad": "failed",
        "after_bad": "skipped",
        "other": "done",
    }
    assert {n: r.status for n, r in result.steps.items()} == nodes
    edges = {(e.get("data-from"), e.get("data-to")) for e in root.iter(f"{SVG}path")}
    assert edges == {("load", "bad"), ("bad", "after_bad"), ("fan", "other")}
    fan = next(n for n in by_class(root, "nbpar-step") if n.get("data-step") == "fan")
    assert "4/4" in "".join(fan.itertext())
    legend = "".join(by_class(root, "nbpar-legend")[0].itertext())
    assert all(status in legend for status in STATUS_COLOURS)


def test_timeline_has_a_bar_per_step_and_slice_and_an_axis(finished: tuple[Pipeline, Monitor, RunResult]) -> None:
    _, monitor, result = finished
    root = svg_of(monitor.timeline.value)
    assert root.get("class") == "nbpar-timeline"
    bars = [(b.get("data-step"), b.get("data-slice"), b.get("data-status")) for b in by_class(root, "nbpar-bar")]
    assert sorted(bars, key=str) == sorted(
        [
            ("load", None, "done"),
            ("bad", None, "failed"),
            ("other", None, "done"),
            *(("fan", str(i), "done") for i in range(4)),
        ],
        key=str,
    )
    tips = [b.find(f"{SVG}title") for b in by_class(root, "nbpar-bar")]
    assert all(t is not None and t.text and " s · thread nbpar_" in t.text for t in tips)
    lanes = {t.text for t in root.iter(f"{SVG}text") if t.text and t.text.startswith("thread nbpar_")}
    assert lanes == {w for r in result.steps.values() for w in (r.worker or "").split(", ") if w}
    axis = "".join(by_class(root, "nbpar-axis")[0].itertext())
    assert axis.startswith("0") and "seconds since the run started" in axis


def test_progress_line_and_cancel_button_after_the_run(finished: tuple[Pipeline, Monitor, RunResult]) -> None:
    _, monitor, _ = finished
    text = monitor.progress.value
    for part in ("3/5 steps done", "4/4 slices", "1 failed", "1 skipped", "Finished with problems"):
        assert part in text
    assert monitor.cancel_button.layout.display == "none"  # no on_cancel given
    assert monitor.timeline.layout.display == "" and monitor.widget.children[0].layout.display == ""


def test_logs_jump_to_the_failure_until_the_user_picks_a_step() -> None:
    p = make_pipeline()
    monitor = Monitor()
    run(p, monitor, backend="inline")
    assert monitor.picker.options == ("load", "fan", "bad", "other", "after_bad")
    assert monitor.picker.value == "bad"
    assert "ValueError: boom" in monitor.log.value and "Traceback" in monitor.log.value
    monitor.picker.value = "load"  # as the user does
    assert "hello from load" in monitor.log.value
    monitor.picker.value = "after_bad"
    assert "skipped: it needs &#x27;bad&#x27;, which failed" in monitor.log.value
    run(p, monitor, backend="inline")  # bad fails again
    assert monitor.picker.value == "after_bad"  # the user's choice stays


def test_cancel_button_calls_back_and_is_disabled_once_the_run_ends() -> None:
    calls: list[str] = []
    monitor = Monitor(on_cancel=lambda: calls.append("cancel"))
    assert monitor.cancel_button.layout.display == ""
    p = Pipeline()
    p.add_step("a", "a = 1")
    started: list[bool] = []

    def click_while_running(event: Event) -> None:
        if isinstance(event, StepStarted):
            started.append(monitor.cancel_button.disabled)
            monitor.cancel_button.click()

    run(p, monitor, click_while_running, backend="inline")
    assert calls == ["cancel"] and started == [False]
    assert monitor.cancel_button.disabled


def synthetic_run(n: int) -> tuple[RunResult, tuple[str, ...], dict[str, frozenset[str]]]:
    names = tuple(f"step_{i:04}" for i in range(n))
    deps = {name: frozenset([names[i - 1]] if i % 10 else []) for i, name in enumerate(names)}
    result = RunResult({name: StepRecord(name) for name in names}, backend="thread", workers=4, start=time.time())
    return result, names, deps


def emit_steps(monitor: Monitor, result: RunResult, names: tuple[str, ...]) -> None:
    """What the scheduler emits for each step, as fast as it can."""
    for i, name in enumerate(names):
        record = result.steps[name]
        record.status, record.start, record.worker = "running", time.time(), f"thread nbpar_{i % 4}"
        monitor(StepStarted(result, name))
        record.output += f"line {i}\n"
        monitor(StepLog(result, name, f"line {i}\n"))
        record.status, record.end = "done", time.time()
        monitor(StepFinished(result, name))


def test_a_thousand_steps_send_few_updates() -> None:
    result, names, deps = synthetic_run(1000)
    monitor = Monitor()
    changes: dict[str, int] = {"graph": 0, "timeline": 0, "log": 0}
    monitor.graph.observe(lambda _: changes.__setitem__("graph", changes["graph"] + 1), names="value")
    monitor.timeline.observe(lambda _: changes.__setitem__("timeline", changes["timeline"] + 1), names="value")
    monitor.log.observe(lambda _: changes.__setitem__("log", changes["log"] + 1), names="value")
    monitor(RunStarted(result, names, deps))
    emit_steps(monitor, result, names)
    result.end = time.time()
    monitor(RunFinished(result))
    assert 2 <= changes["graph"] < 50 and changes["timeline"] < 50 and changes["log"] < 50, changes
    root = svg_of(monitor.graph.value)
    assert [n.get("data-status") for n in by_class(root, "nbpar-step")] == ["done"] * 1000
    assert len(by_class(svg_of(monitor.timeline.value), "nbpar-bar")) == 1000
    assert "1000/1000 steps done" in monitor.progress.value
    assert "line 999" in monitor.log.value  # the step that printed last


def test_redraws_come_at_most_ten_a_second_while_the_run_goes_on() -> None:
    result, names, deps = synthetic_run(200)
    monitor = Monitor()
    redraws: list[float] = []
    monitor.progress.observe(lambda _: redraws.append(time.monotonic()), names="value")
    began = time.monotonic()
    monitor(RunStarted(result, names, deps))
    for name in names:
        emit_steps(monitor, result, (name,))
        time.sleep(0.005)
    elapsed = time.monotonic() - began
    assert 5 <= len(redraws) <= elapsed / 0.1 + 2, (len(redraws), elapsed)
    assert all(b - a >= 0.09 for a, b in zip(redraws, redraws[1:], strict=False))


def test_a_pending_redraw_happens_when_events_stop() -> None:
    result, names, deps = synthetic_run(2)
    monitor = Monitor(interval=0.5)
    monitor(RunStarted(result, names, deps))  # drawn at once
    result.steps[names[0]].status = "running"
    monitor(StepStarted(result, names[0]))  # within the gap: drawn later
    assert 'data-status="running"' not in monitor.graph.value
    time.sleep(1.0)
    assert 'data-status="running"' in monitor.graph.value
    bar = by_class(svg_of(monitor.timeline.value), "nbpar-bar")
    assert bar == []  # no worker yet: no bar


def test_for_graph_draws_before_any_run() -> None:
    p = make_pipeline()
    deps = p.graph.dependencies()
    monitor = Monitor.for_graph(p.graph.select(), deps, {"load": "done", "bad": "failed"})
    nodes = {n.get("data-step"): n.get("data-status") for n in by_class(svg_of(monitor.graph.value), "nbpar-step")}
    assert nodes == {"load": "done", "fan": "waiting", "bad": "failed", "after_bad": "waiting", "other": "waiting"}
    assert monitor.timeline.layout.display == "none" and monitor.timeline.value == ""
    assert monitor.widget.children == (monitor.graph,)  # the graph alone: no progress, no Cancel
    assert monitor.cancel_button.disabled


def test_running_bars_reach_now_and_names_are_escaped() -> None:
    result = RunResult({"a&<b>": StepRecord("a&<b>", status="running", worker="pid 7")}, "process", 1, start=100.0)
    svg = timeline_svg(result, {("a&<b>", None): 101.0}, now=103.0)
    root = ET.fromstring(svg)
    (bar,) = by_class(root, "nbpar-bar")
    assert bar.get("data-step") == "a&<b>" and bar.get("data-status") == "running"
    title = bar.find(f"{SVG}title")
    assert title is not None and title.text == "a&<b> · 2.0 s · pid 7 · running"
    labels = [t.text for t in by_class(root, "nbpar-axis")[0].iter(f"{SVG}text")]
    assert labels[:4] == ["0", "0.5", "1", "1.5"] and labels[-1] == "seconds since the run started"
    assert timeline_svg(result, {}, now=103.0) == timeline_svg(result, {}, now=103.0)  # deterministic
    graph = ET.fromstring(graph_svg(["a&<b>"], {}, result.steps))
    assert [n.get("data-step") for n in by_class(graph, "nbpar-step")] == ["a&<b>"]


def test_wide_graph_wraps_and_stays_valid() -> None:
    names = [f"s{i}" for i in range(300)]
    deps = {n: frozenset(["s0"]) if n != "s0" else frozenset() for n in names}
    root = ET.fromstring(graph_svg(names, deps, {}))
    assert len(by_class(root, "nbpar-step")) == 300
    assert float(root.get("width", "0")) < 2000


def test_steps_table(finished: tuple[Pipeline, Monitor, RunResult]) -> None:
    p, _, result = finished
    statuses = {n: r.status for n, r in result.steps.items()}
    table = steps_table_html(p.graph, statuses)
    ET.fromstring(table)
    for text in ("<th", "reads", "writes", "after", "over", "backend", "last status", "xs, 4 slices", "failed"):
        assert text in table
    lines = steps_table_text(p.graph, statuses).splitlines()
    assert lines[0].split() == ["step", "reads", "writes", "after", "over", "backend", "last", "status"]
    assert set(lines[1]) == {"-", " "}
    row = next(line for line in lines if line.startswith("bad"))
    assert row.split()[1:5] == ["a", "b", "load", "failed"]


def test_report_has_every_step_and_the_traceback(finished: tuple[Pipeline, Monitor, RunResult], tmp_path: Path) -> None:
    p, _, result = finished
    path = tmp_path / "run.html"
    write_report(path, [result])
    page = path.read_text(encoding="utf-8")
    assert page == report_html([result])
    assert summary_text(result, time.time()) in page
    for name in result.steps:
        assert f'data-step="{name}"' in page and f"<summary>{name} (" in page
    assert "ValueError: boom" in page and "hello from load" in page
    assert 'class="nbpar-graph"' in page and 'class="nbpar-timeline"' in page
    assert "<script" not in page and "<link" not in page


@pytest.mark.slow
def test_monitor_in_a_real_kernel_saves_the_final_graph(kernel_name: str, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from IPython.display import display\n"
            "from nbpar import Pipeline\n"
            "from nbpar.ui.monitor import Monitor\n"
            "p = Pipeline({'xs': list(range(8))})\n"
            "p.add_step('load', 'a = 1')\n"
            "p.add_step('fan', 'out = list(xs)', over='xs', slices=4)\n"
            "p.add_step('both', 'c = a + len(out)')"
        ),
        nbformat.v4.new_code_cell(
            "m = Monitor()\ndisplay(m.widget)\nr = p.run(backend='thread', workers=2, listeners=[m])\nprint(r.ok)"
        ),
    ]
    NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=120,
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    assert "True" in "".join(o.get("text", "") for o in nb.cells[1].outputs)
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    graphs = [
        m["state"]["value"]
        for m in state.values()
        if m["model_name"] == "HTMLModel" and 'class="nbpar-graph"' in m["state"].get("value", "")
    ]
    assert len(graphs) == 1
    nodes = {n.get("data-step"): n.get("data-status") for n in by_class(svg_of(graphs[0]), "nbpar-step")}
    assert nodes == {"load": "done", "fan": "done", "both": "done"}


def test_a_quiet_long_step_still_moves_the_clock():
    from nbpar.ui.monitor import Monitor

    monitor = Monitor()
    progress: list[str] = []
    monitor.progress.observe(lambda change: progress.append(change["new"]), names="value")
    p = Pipeline()
    p.add_step("quiet", "import time\ntime.sleep(2.5)\nx = 1")
    p.run(backend="thread", listeners=[monitor])
    running = [v for v in progress if "Running" in v]
    assert len(set(running)) >= 2, running  # redrawn while no event came


def test_the_monitor_shows_a_merge_note_with_the_step() -> None:
    p = Pipeline({"customers": list(range(8))})
    p.add_step("score", "n_scored = len(customers)", over="customers", slices=4)
    monitor = Monitor()
    p.run(backend="inline", listeners=[monitor])
    monitor.flush()
    assert monitor.picker.value == "score"
    assert "nbpar: `n_scored` is the list of the 4 slices&#x27; values (int: " in monitor.log.value
