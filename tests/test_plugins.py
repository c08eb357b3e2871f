"""Plugins: `nbpar.subscribe` gets the events of every run in the process."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import nbpar
from nbpar.events import subscribers

from .conftest import ROOT, run_cell, run_cells


@pytest.fixture(autouse=True)
def no_subscribers():
    """Each test starts and ends with no subscriber."""
    assert subscribers() == ()
    yield
    for listener in subscribers():
        nbpar.Subscription(listener).unsubscribe()


def readme_example() -> str:
    """The README's example, as users copy it."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Plugins") :]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def test_the_readme_example_logs_every_steps_duration_to_csv(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_cells(
        shell,
        readme_example(),
        "%%step load\nrows = list(range(1000))",
        "%%step total\ntotal = sum(rows)",
        "%%step broken\nbad = total / 0",
        "%%step after_broken\nnever = bad + 1",
    )
    assert not run_cell(shell, "%parrun --workers 2").success  # broken fails; a plugin sees that too
    run_cells(shell, "%parrun total --workers 2 --force", "subscription.unsubscribe()", "%parrun total --force")
    rows = list(csv.reader((tmp_path / "durations.csv").open()))
    first, second = rows[:4], rows[4:]
    assert sorted(r[:2] for r in first) == [
        ["after_broken", "skipped"],
        ["broken", "failed"],
        ["load", "done"],
        ["total", "done"],
    ]
    assert [r[:2] for r in second] == [["load", "done"], ["total", "done"]]  # the third run is not logged
    for _name, status, duration, worker, attempts in rows:
        if status == "skipped":
            assert (duration, worker, attempts) == ("", "", "0")
        else:
            assert float(duration) >= 0 and worker.startswith("pid ") and attempts == "1"


def test_a_step_finished_event_carries_status_duration_worker_and_error(shell):
    finished: dict[str, nbpar.StepRecord] = {}

    def keep(event: nbpar.Event) -> None:
        if isinstance(event, nbpar.StepFinished):
            finished[event.step] = event.record

    with nbpar.subscribe(keep):
        run_cells(shell, "%%step ok\nx = 1", "%%step fails --backend thread\ny = x / 0")
        assert not run_cell(shell, "%parrun --workers 2").success
    ok, fails = finished["ok"], finished["fails"]
    assert ok.status == "done" and ok.error is None and ok.worker.startswith("pid ")
    assert ok.duration is not None and ok.duration >= 0
    assert fails.status == "failed" and fails.worker.startswith("thread ") and fails.backend == "thread"
    assert "ZeroDivisionError" in fails.error and 'File "<step fails>", line 2' in fails.error
    assert subscribers() == ()  # the with block ended the subscription


def test_every_kind_of_run_reaches_a_subscriber(shell):
    runs: list[nbpar.RunResult] = []
    steps: list[str] = []

    def listen(event: nbpar.Event) -> None:
        if isinstance(event, nbpar.RunFinished):
            runs.append(event.result)
        elif isinstance(event, nbpar.StepStarted):
            steps.append(event.step)

    with nbpar.subscribe(listen):
        run_cells(shell, "%%step a --run --backend thread\na = 1")  # %%step --run
        run_cells(shell, "%%step b\nb = a + 1", "%parrun --background --workers 2", "%parwait")
        assert nbpar.pmap(abs, [-1, -2], workers=2) == [1, 2]
        p = nbpar.Pipeline()
        p.add_step("c", "c = 3")
        p.run(backend="inline")
    assert len(runs) == 4 and all(r.end is not None for r in runs)
    assert steps == ["a", "b", "pmap", "c"]  # an up-to-date step (a, in the second run) gets no events


def test_a_subscriber_that_raises_is_reported_once_and_the_run_goes_on(shell, capsys):
    calls = []

    def broken(event: nbpar.Event) -> None:
        calls.append(event)
        raise ValueError("the plugin is broken")

    with nbpar.subscribe(broken):
        run_cells(shell, *(f"%%step s{i}\nv{i} = {i}" for i in range(5)), "%parrun --workers 2 --backend thread")
    assert [shell.user_ns[f"v{i}"] for i in range(5)] == list(range(5))
    assert nbpar.last_run().ok and len(calls) > 5  # called for every event all the same
    err = capsys.readouterr().err
    assert err.count("nbpar: listener") == 1 and err.count("ValueError: the plugin is broken") == 1
    assert "nbpar: listener test_a_subscriber_that_raises_is_reported_once_and_the_run_goes_on.<locals>.broken " in err
    assert "raised ValueError on RunStarted; the run goes on" in err
    assert 'in broken\n    raise ValueError("the plugin is broken")' in err  # its own traceback, not nbpar's frames
    assert "_emit" not in err


def test_subscribe_refuses_what_it_cannot_call():
    with pytest.raises(TypeError, match="takes a function of one event, not str"):
        nbpar.subscribe("print")  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_notebook_run_by_nbpar_run_can_subscribe(tmp_path: Path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(c)
        for c in (
            "%load_ext nbpar",
            "import nbpar\nseen = []\n_ = nbpar.subscribe(lambda e: seen.append(type(e).__name__))",
            "%%step a\nx = 1",
            "%parrun --workers 1",
            "print('events:', ' '.join(seen))",
        )
    ]
    nbformat.write(nb, tmp_path / "sub.ipynb")
    done = subprocess.run(
        [sys.executable, "-m", "nbpar.cli", "run", str(tmp_path / "sub.ipynb")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "events: RunStarted StepStarted StepFinished RunFinished" in done.stdout
