"""Small steps travel in batches (one task for many units), as joblib batches
small tasks: a batch must behave exactly as the steps one by one would."""

from __future__ import annotations

import pytest

from nbpar import Pipeline, RunError
from nbpar.backends.process import ProcessBackend
from nbpar.backends.thread import ThreadBackend


def tiny(n: int) -> Pipeline:
    p = Pipeline()
    for i in range(n):
        p.add_step(f"s{i}", f"x{i} = {i} * 2")
    p.add_step("join", "total = sum([" + ", ".join(f"x{i}" for i in range(n)) + "])")
    return p


@pytest.fixture
def submissions(monkeypatch):
    """Count the tasks handed to the process and thread backends."""
    counted: list[int] = []
    for cls in (ProcessBackend, ThreadBackend):
        original = cls.submit

        def submit(self, tasks, report, original=original):
            counted.append(len(tasks))
            return original(self, tasks, report)

        monkeypatch.setattr(cls, "submit", submit)
    return counted


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_many_small_steps_go_in_a_few_batches(backend, submissions):
    p = tiny(300)
    first = p.run(backend=backend, workers=2)  # durations unknown: a few probes, then batches
    assert first.ok and p.namespace["total"] == sum(i * 2 for i in range(300))
    assert len(submissions) < 60, f"{len(submissions)} tasks for 301 steps"
    submissions.clear()
    again = p.run(backend=backend, workers=2, force=True)  # durations known: batches at once
    assert again.ok and max(submissions) > 10 and len(submissions) <= 12
    for record in again.steps.values():
        assert record.status == "done" and record.worker and record.start <= record.end
        assert record.attempts == 1


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_a_failing_step_in_a_batch_fails_alone(backend, submissions):
    p = tiny(100)
    p.run(backend=backend, workers=2)
    p.add_step("s40", "x40 = 1 / 0")
    submissions.clear()
    with pytest.raises(RunError) as info:
        p.run(backend=backend, workers=2, force=True)
    result = info.value.result
    assert max(submissions) > 1, "the steps should have gone in batches"
    assert result.steps["s40"].status == "failed" and "ZeroDivisionError" in result.steps["s40"].error
    assert result.steps["join"].status == "skipped"
    assert all(result.steps[f"s{i}"].status == "done" for i in range(100) if i != 40)


def test_a_crash_in_a_batch_names_its_step_and_spares_the_others(submissions):
    p = tiny(100)
    p.run(backend="process", workers=2)
    p.add_step("s70", "import os\nos._exit(4)\nx70 = 140")
    submissions.clear()
    with pytest.raises(RunError) as info:
        p.run(backend="process", workers=2, force=True)
    result = info.value.result
    assert max(submissions) > 1, "the steps should have gone in batches"
    assert "running step 's70' died" in result.steps["s70"].error
    assert "exited with code 4" in result.steps["s70"].error
    assert [n for n, r in result.steps.items() if r.status == "failed"] == ["s70"]
    assert all(p.namespace[f"x{i}"] == i * 2 for i in range(100) if i != 70)
