"""The text display: plain lines in logs and cells, a progress bar on a terminal."""

from __future__ import annotations

import io

from nbpar import Pipeline
from nbpar.ui.text import TextDisplay, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_with(stream: io.StringIO) -> str:
    p = Pipeline({"xs": list(range(8))})
    p.add_step("a", "print('hello')\nx = 1")
    p.add_step("fan", "y = xs", over="xs", slices=4)
    p.add_step("bad", "z = x / 0")
    p.run(backend="inline", listeners=[TextDisplay(stream)], check=False)
    return stream.getvalue()


def test_plain_lines_when_not_a_terminal():
    out = run_with(io.StringIO())
    assert "\x1b" not in out and "\r" not in out
    assert "nbpar: 3 steps to run, on " in out
    assert "[a] hello" in out and "slice   fan[3]" in out and "FAILED  bad" in out
    assert out.rstrip().splitlines()[-1].startswith("nbpar: 2 done, 1 failed in")


def test_a_progress_bar_on_a_terminal():
    out = run_with(Terminal())
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
