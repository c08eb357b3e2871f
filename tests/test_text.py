"""The text display: plain lines in logs and cells, a progress bar on a terminal."""

from __future__ import annotations

import io

from nbpar import Pipeline
from nbpar.ui.text import LINES_PER_STEP, RUN_LINES, TextDisplay, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_with(stream: io.StringIO, interval: float = 0.25) -> str:
    p = Pipeline({"xs": list(range(8))})
    p.add_step("a", "print('hello')\nx = 1")
    p.add_step("fan", "y = xs", over="xs", slices=4)
    p.add_step("bad", "z = x / 0")
    p.run(backend="inline", listeners=[TextDisplay(stream, interval=interval)], check=False)
    return stream.getvalue()


def test_plain_lines_when_not_a_terminal():
    out = run_with(io.StringIO())
    assert "\x1b" not in out and "\r" not in out
    assert "nbpar: 3 steps to run, on " in out
    assert "[a] hello" in out and "slice   fan[3]" in out and "FAILED  bad" in out
    assert out.rstrip().splitlines()[-1].startswith("nbpar: 2 done, 1 failed in")


def test_a_progress_bar_on_a_terminal():
    out = run_with(Terminal(), interval=0)
    assert "\r\x1b[K[" in out and "3/3 steps · 4/4 slices · 1 failed" in out
    assert out.endswith("s\n") and "\r\x1b[Knbpar: 2 done, 1 failed in" in out  # the bar is cleared at the end


def test_progress_bar_counts():
    p = Pipeline({"xs": list(range(4))})
    p.add_step("fan", "y = xs", over="xs", slices=2)
    result = p.run(backend="inline")
    assert progress_bar(result, width=10).startswith("[##########] 1/1 steps · 2/2 slices · ")


def test_a_run_of_many_steps_counts_them_instead_of_listing_them():
    p = Pipeline()
    for i in range(300):
        p.add_step(f"s{i}", f"x{i} = {i}" if i != 150 else "print('one line')\nx150 = 1 / 0")
    stream = io.StringIO()
    p.run(backend="inline", listeners=[TextDisplay(stream)], check=False)
    lines = stream.getvalue().splitlines()
    assert len(lines) < 20, lines
    assert any("FAILED  s150" in line for line in lines) and "  [s150] one line" in lines
    assert any(line.endswith("300/300 steps finished") for line in lines)
    assert not any("start   s" in line or "done    s" in line for line in lines)


class CountingStream(io.StringIO):
    """Counts writes: each is a stream message in a notebook."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_a_flood_is_written_in_a_few_writes_and_capped_per_step():
    p = Pipeline()
    p.add_step("flood", "for _i in range(5000):\n    print('line', _i)\nx = 1")
    p.add_step("quiet", "y = 2")
    stream = CountingStream()
    display = TextDisplay(stream, interval=0.25)
    result = p.run(backend="thread", listeners=[display])
    lines = stream.getvalue().splitlines()
    shown = [line for line in lines if line.startswith("  [flood] line ")]
    assert shown == [f"  [flood] line {i}" for i in range(LINES_PER_STEP)]
    assert f"  [flood] {5000 - LINES_PER_STEP:,} more lines not shown: all are in " in stream.getvalue()
    assert "nbpar.last_run().steps['flood'].output" in stream.getvalue()
    assert result.steps["flood"].output.count("\n") == 5000  # the records keep all of it
    # one write when the run starts, then at most one per interval, and the last one at its end
    assert stream.writes <= 2 + result.wall / 0.25 + 1, stream.writes


def test_a_run_shows_at_most_run_lines_of_output():
    p = Pipeline()
    for i in range(60):
        p.add_step(f"s{i}", f"for _i in range({LINES_PER_STEP}):\n    print(_i)\nx{i} = {i}")
    stream = io.StringIO()
    p.run(backend="inline", listeners=[TextDisplay(stream)])
    printed = [line for line in stream.getvalue().splitlines() if line.startswith("  [s") and "not shown" not in line]
    assert len(printed) == RUN_LINES
    assert f"  [s59] {LINES_PER_STEP} more lines not shown" in stream.getvalue()


def test_a_quiet_run_writes_what_it_printed_last_without_waiting_for_an_event():
    """The timer writes the tail of a burst while a step is still running."""
    import threading

    gate = threading.Event()
    p = Pipeline({"gate": gate})
    p.add_step("burst", "print('early')\nprint('late')\ngate.wait(10)\nb = 1")
    stream = io.StringIO()
    display = TextDisplay(stream, interval=0.05)
    seen: list[bool] = []

    def watch() -> None:
        for _ in range(200):  # until the tail is written, while the step waits on the gate
            if "[burst] late" in stream.getvalue():
                seen.append(True)
                break
            threading.Event().wait(0.05)
        gate.set()

    threading.Thread(target=watch).start()
    p.run(backend="thread", listeners=[display])
    assert seen == [True]


def test_the_header_says_where_the_steps_run():
    p = Pipeline()
    p.add_step("here", "x = 1", backend="thread")
    stream = io.StringIO()
    p.run(backend="process", workers=2, listeners=[TextDisplay(stream)])
    assert stream.getvalue().splitlines()[0] == "nbpar: 1 step to run, on 2 threads"
    p.add_step("there", "y = 2")
    p.add_step("kernel", "import math\nz = 3", backend="inline")
    stream = io.StringIO()
    p.run(backend="process", workers=2, listeners=[TextDisplay(stream)])
    header = stream.getvalue().splitlines()[0]
    assert header.startswith("nbpar: 2 steps to run (1 up to date), on ")
    assert sorted(header.split(", on ")[1].split(" and ")) == ["2 process workers", "the kernel"]


def test_a_run_with_nothing_to_run_gives_no_time():
    p = Pipeline()
    p.add_step("a", "x = 1")
    p.run(backend="inline")
    stream = io.StringIO()
    p.run(backend="inline", listeners=[TextDisplay(stream)])
    assert stream.getvalue().splitlines() == [
        "nbpar: nothing to run (1 up to date)",
        "nbpar: 1 up-to-date; nothing ran",
    ]


def test_the_magics_text_is_made_in_ui_text():
    """What %%step, %parrun, --dry-run and %parstatus print, from a real
    pipeline's steps, plans and run."""
    from nbpar.ui.text import SHOWN_NAMES, announce, describe_plan, describe_step, run_status

    p = Pipeline()
    names = [f"s{i}" for i in range(SHOWN_NAMES + 2)]
    p.add_step("base", "x = 1")
    for name in names:
        p.add_step(name, f"{name}_out = x")
    assert describe_step(p.graph, p.steps["s0"]) == "step s0: reads x | writes s0_out | after base"
    assert announce(p.plan(force=True)) is None  # every step runs for --force: nothing to explain
    p.run(backend="inline")
    p.add_step("base", "x = 2")
    said = announce(p.plan())
    assert said is not None
    assert said.startswith("nbpar: running 11: base (code changed), s0 (needs base, which runs), ")
    assert said.endswith("and 3 more.")
    plan = describe_plan(p.plan()).splitlines()
    assert plan[0] == "nbpar plan: 11 of 11 steps to run"
    assert plan[2] == "  run         s0  (after base): needs base, which runs"
    status = run_status(p.run(backend="inline"))
    assert status.startswith("nbpar: run finished, ") and status.endswith("s: 11 done")
