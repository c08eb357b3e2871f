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


def chain(n: int) -> Pipeline:
    p = Pipeline()
    for i in range(n):
        p.add_step(f"c{i}", f"y{i} = y{i - 1} + 1" if i else "y0 = 0")
    return p


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_a_chain_of_small_steps_goes_as_one_task(backend, submissions):
    p = chain(100)
    p.run(backend=backend, workers=2)
    submissions.clear()
    result = p.run(backend=backend, workers=2, force=True)
    assert result.ok and p.namespace["y99"] == 99
    assert len(submissions) <= 3, submissions
    assert [r.status for r in p.run(backend=backend, workers=2).steps.values()] == ["up-to-date"] * 100


def test_a_chain_whose_links_a_join_also_reads_still_goes_as_one_task(submissions):
    """Each link has two dependents, the next link and the join; only the
    next link is held back by it alone, so the chain is still fused (a link
    that happened to take over 5 ms on a busy machine ends a fused run: a
    few tasks, not one per link)."""
    p = chain(100)
    p.add_step("join", "total = sum([" + ", ".join(f"y{i}" for i in range(100)) + "])")
    p.run(workers=2)
    submissions.clear()
    assert p.run(workers=2, force=True).ok and p.namespace["total"] == sum(range(100))
    assert len(submissions) <= 10 and max(submissions) >= 20, submissions


def test_two_small_steps_held_back_by_one_are_not_fused_behind_it(submissions):
    """Two steps that can run side by side go to two workers, not one task."""
    p = Pipeline()
    p.add_step("a", "a = 1")
    p.add_step("b", "b = a + 1")
    p.add_step("c", "c = a + 2")
    p.run(workers=2)
    submissions.clear()
    assert p.run(workers=2, force=True).ok
    assert submissions == [1, 1, 1], submissions


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_a_failure_inside_a_fused_chain_stops_it_there(backend, submissions):
    p = chain(50)
    p.run(backend=backend, workers=2)
    p.add_step("c20", "y20 = y19 + 1\nraise ValueError('twenty')")
    submissions.clear()
    with pytest.raises(RunError) as info:
        p.run(backend=backend, workers=2, force=True)
    result = info.value.result
    assert max(submissions) > 10, "the chain should have gone as one task"
    assert [result.steps[f"c{i}"].status for i in (19, 20, 21, 49)] == ["done", "failed", "skipped", "skipped"]
    assert p.namespace["y19"] == 19 and "ValueError: twenty" in result.steps["c20"].error
    p.add_step("c20", "y20 = y19 + 1")  # fixed: the rest of the chain runs
    again = p.run(backend=backend, workers=2)
    assert again.ok and p.namespace["y49"] == 49 and again.steps["c19"].status == "up-to-date"


def test_a_retried_step_inside_a_fused_chain_lets_the_rest_follow(tmp_path):
    p = chain(30)
    p.run(backend="process", workers=2)
    p.namespace["folder"] = str(tmp_path)
    flaky = "import os\n_m = os.path.join(folder, 'once')\nif not os.path.exists(_m):\n"
    flaky += "    open(_m, 'w').close()\n    raise OSError('busy')\ny10 = y9 + 1"
    p.add_step("c10", flaky, retries=1)
    p.run(backend="process", workers=2)  # c10 is new: it and what follows run, and are timed
    (tmp_path / "once").unlink()
    result = p.run(backend="process", workers=2, force=True)
    assert result.ok and p.namespace["y29"] == 29 and result.steps["c10"].attempts == 2


def test_a_crash_inside_a_fused_chain_names_its_step(submissions):
    p = chain(40)
    p.run(backend="process", workers=2)
    p.add_step("c25", "import os\nos._exit(6)\ny25 = y24 + 1")
    submissions.clear()
    with pytest.raises(RunError) as info:
        p.run(backend="process", workers=2, force=True)
    result = info.value.result
    assert "running step 'c25' died" in result.steps["c25"].error
    assert [n for n, r in result.steps.items() if r.status == "failed"] == ["c25"]
    assert p.namespace["y24"] == 24 and all(result.steps[f"c{i}"].status == "done" for i in range(25))


def test_a_run_keeps_the_notebooks_objects_out_of_the_gcs_scans_and_lets_them_back_after():
    """frozen_heap: during a run (foreground or background, also one that
    fails) the objects from before are frozen; after it, none are."""
    import gc

    p = Pipeline()
    p.add_step("look", "import gc\nfrozen = gc.get_freeze_count()", backend="inline")
    p.add_step("bad", "raise ValueError('no')", backend="inline")
    assert gc.get_freeze_count() == 0
    with pytest.raises(RunError):
        p.run()
    assert p.namespace["frozen"] > 0 and gc.get_freeze_count() == 0
    del p.namespace["frozen"]
    p.start().wait(check=False)
    assert p.namespace["frozen"] > 0 and gc.get_freeze_count() == 0


def test_a_second_run_of_thousands_of_steps_compiles_none_of_them_again():
    """A worker keeps every step it compiled (an LRU cache smaller than a
    run's steps would be emptied by each run and compile all of them again)."""
    from nbpar.worker import _code

    p = tiny(5000)
    p.run(backend="inline")
    before = _code.cache_info()
    p.run(backend="inline", force=True)
    after = _code.cache_info()
    assert after.misses == before.misses and after.hits - before.hits == 5001
