"""The run loop's rules (nbpar/scheduler.py, packing.py, crashes.py) on the
scripted fake backend (tests/fake_backend.py), with no wall clock: how many
tasks small units go in (batches, fused chains), how many units of unknown
duration go out at once (probes), whom a crash is blamed on, retries,
timeouts (stop_worker, abandon, the grace) and --fail-fast. Time is
virtual, so every assertion is exact: the tasks submitted, in order, and
the virtual moments things happened.

Data flow of a test::

    Pipeline(steps) + FakeBackend(acts: what each step does, how long)
      -> run_fake(pipeline, backend, durations=what the last run timed)
      -> the RunResult, and the backend's record: jobs (keys, worker,
         submitted/start/end, fate), tasks(), stopped, abandoned

Then the pure decisions, packing.py and crashes.py, called directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nbpar import Pipeline
from nbpar.contract import Backend
from nbpar.crashes import CULPRIT, INNOCENT, SUSPECT, isolate
from nbpar.packing import (
    ALONE,
    BATCH,
    BATCH_OF_SMALL,
    FUSE,
    FUSED_MAX,
    GUESSED_BATCH,
    PROBE,
    SMALL,
    TAIL_BATCH,
    Estimates,
    batches,
    fuse,
    pack,
    reports_start,
    undeferred,
)
from nbpar.records import RunResult

from .fake_backend import Act, FakeBackend, run_fake

Key = tuple[str, "int | None"]

TINY = 0.001  # seconds a small step took last time (under packing.SMALL)


def independent(n: int) -> Pipeline:
    """Steps s0..s{n-1}, none reading another's outputs."""
    p = Pipeline({})
    for i in range(n):
        p.add_step(f"s{i}", f"v{i} = {i}")
    return p


def chain(n: int) -> Pipeline:
    """Steps s1..sn, each reading the one before's output: x{i} = x{i-1} + 1."""
    p = Pipeline({"x0": 0})
    for i in range(1, n + 1):
        p.add_step(f"s{i}", f"x{i} = x{i - 1} + 1")
    return p


def steps(names: str) -> Pipeline:
    """One independent step per letter of `names`."""
    p = Pipeline({})
    for name in names:
        p.add_step(name, f"{name}_ = 1")
    return p


def statuses(result: RunResult) -> dict[str, str]:
    return {name: record.status for name, record in result.steps.items()}


def keys(*names: str) -> list[Key]:
    return [(name, None) for name in names]


def sizes(backend: FakeBackend) -> list[int]:
    return [len(task) for task in backend.tasks()]


# -- batching, probes, fusion --------------------------------------------------


def test_small_units_ready_together_go_in_batches_of_a_quarter_each() -> None:
    # 40 ready, each timed at TINY: at least two batches per worker (40 / 4),
    # well under BATCH seconds each.
    p = independent(40)
    backend = FakeBackend(workers=2)
    result, _ = run_fake(p, backend, durations={f"s{i}": TINY for i in range(40)})
    assert result.ok
    assert backend.tasks() == [keys(*(f"s{i}" for i in range(start, start + 10))) for start in (0, 10, 20, 30)]
    assert not any(task.report_start for job in backend.jobs for task in job.tasks)  # (their outcomes say when)
    assert [p.namespace[f"v{i}"] for i in range(40)] == list(range(40))


def test_a_batch_holds_about_batch_seconds_of_work_and_units_not_small_go_alone() -> None:
    # 100 ready at 0.004 s each: BATCH / 0.004 = 12 per batch, fewer than
    # 100 / 4; at 0.01 s each (not under SMALL), one per task.
    p = independent(100)
    backend = FakeBackend(workers=2)
    run_fake(p, backend, durations={f"s{i}": 0.004 for i in range(100)})
    assert sizes(backend) == [12] * 8 + [4]
    backend = FakeBackend(workers=2)
    run_fake(p, backend, durations={f"s{i}": 0.01 for i in range(100)})
    assert sizes(backend) == [1] * 100


def test_no_more_small_units_than_workers_go_one_per_task() -> None:
    backend = FakeBackend(workers=2)
    run_fake(independent(2), backend, durations={"s0": TINY, "s1": TINY})
    assert backend.tasks() == [keys("s0"), keys("s1")]


def test_units_of_unknown_duration_probe_two_per_worker_then_the_rest_are_batched() -> None:
    # Nothing timed: 4 probes (2 per worker) go out, the 36 others wait.
    # Each probe back frees one more probe, until 4 are back (at 0.002):
    # 3 more went meanwhile; then the typical unit (TINY, the fake's default)
    # says the 33 left are small: batches of ceil(33 / 4) = 9.
    p = independent(40)
    backend = FakeBackend(workers=2)
    result, scheduler = run_fake(p, backend)
    assert result.ok
    assert sizes(backend) == [1] * 7 + [9, 9, 9, 6]
    probes = backend.jobs[:7]
    assert [job.submitted for job in probes] == [0.0] * 4 + [0.001] * 2 + [0.002]
    for job in backend.jobs:  # never more than 4 units of unknown duration in flight
        in_flight = [j for j in probes if j.submitted <= job.submitted and j.end is not None and j.end > job.submitted]
        assert len(in_flight) <= 4
    assert len([j for j in probes if j.submitted == 0.0]) == 4
    assert set(scheduler.took) == {f"s{i}" for i in range(40)}


def test_an_inline_backend_does_not_probe() -> None:
    backend = FakeBackend(inline=True)
    result, _ = run_fake(independent(6), backend)
    assert result.ok and backend.tasks() == [keys(f"s{i}") for i in range(6)]


def test_a_chain_of_small_steps_is_fused_into_tasks_of_at_most_batch_seconds() -> None:
    # Each step holds back the next alone: one task runs them back to back
    # while the whole stays under BATCH (12 * 0.004 = 0.048 s).
    p = chain(20)
    backend = FakeBackend(workers=2)
    result, _ = run_fake(p, backend, durations={f"s{i}": 0.004 for i in range(1, 21)})
    assert result.ok and p.namespace["x20"] == 20
    assert backend.tasks() == [keys(*(f"s{i}" for i in range(1, 13))), keys(*(f"s{i}" for i in range(13, 21)))]
    assert [t.inherits for t in backend.jobs[0].tasks[:3]] == [(), ("x1",), ("x2",)]


def test_fusion_stops_at_a_step_that_is_not_small_or_never_timed() -> None:
    p = chain(7)
    backend = FakeBackend(workers=2)
    durations = {f"s{i}": TINY for i in range(1, 8)} | {"s3": 1.0}
    del durations["s6"]  # never timed: not fused (its guess is only this run's typical unit)
    result, _ = run_fake(p, backend, durations=durations)
    assert result.ok and p.namespace["x7"] == 7
    assert backend.tasks() == [keys("s1", "s2"), keys("s3"), keys("s4", "s5"), keys("s6", "s7")]


# -- crashes ---------------------------------------------------------------------


def test_a_crash_with_several_units_started_runs_the_suspects_alone_and_names_the_culprit() -> None:
    # a and b run (c waits for a worker); b's worker dies at 0.5 and, shared
    # fate, fails all three. Both a and b had started: suspects, run alone,
    # one after the other; c, innocent, is held meanwhile. b dies again
    # alone: the culprit. a and c run again and succeed.
    backend = FakeBackend(workers=2, acts={"a": Act(1.0), "b": Act(0.5, crashes=2), "c": Act(1.0)})
    result, _ = run_fake(steps("abc"), backend, durations={"a": 1.0, "b": 1.0, "c": 1.0})
    assert backend.tasks() == [keys("a"), keys("b"), keys("c"), keys("a"), keys("b"), keys("c")]
    assert [(j.start, j.end, j.fate) for j in backend.jobs] == [
        (0.0, 0.5, "crashed"),
        (0.0, 0.5, "crashed"),
        (0.5, 0.5, "crashed"),  # (queued: it never ran)
        (0.5, 1.5, "done"),  # suspect a, alone
        (1.5, 2.0, "crashed"),  # suspect b, alone: the culprit
        (2.0, 3.0, "done"),
    ]
    assert backend.overlapping(backend.jobs[3]) == [] and backend.overlapping(backend.jobs[4]) == []
    assert statuses(result) == {"a": "done", "b": "failed", "c": "done"}
    assert [result.steps[n].attempts for n in "abc"] == [2, 2, 2]
    error = result.steps["b"].error or ""
    assert error.startswith("The worker process (fake 0) running step 'b' died: it exited with code 3 (scripted)\n")


def test_a_crash_with_one_unit_started_blames_it_at_once() -> None:
    # One worker: c is queued behind b, so only b had started.
    backend = FakeBackend(workers=1, acts={"b": Act(0.5, crashes=1)})
    result, _ = run_fake(steps("bc"), backend, durations={"b": 1.0, "c": 1.0})
    assert backend.tasks() == [keys("b"), keys("c"), keys("c")]
    assert statuses(result) == {"b": "failed", "c": "done"}


def test_a_crash_on_a_backend_without_shared_fate_fails_only_its_own_unit() -> None:
    backend = FakeBackend(workers=2, shared_fate=False, acts={"a": Act(1.0), "b": Act(0.5, crashes=1)})
    result, _ = run_fake(steps("ab"), backend, durations={"a": 1.0, "b": 1.0})
    assert backend.tasks() == [keys("a"), keys("b")]
    assert [j.fate for j in backend.jobs] == ["done", "crashed"]
    assert statuses(result) == {"a": "done", "b": "failed"}


def test_a_batch_that_crashes_is_run_again_unit_by_unit_until_the_culprit_is_named() -> None:
    # 8 small units: 4 batches of 2. s5 kills its worker 3 times. Its
    # batch's crash fails the batch beside it (shared fate); a batch says
    # nothing of which unit it was, so their steps are unbatched and run
    # again one per task. Small units do not report their start, so the
    # next crash (s5 again) makes every unit in flight then a suspect, run
    # alone: s5, alone, is the culprit; the others are done.
    backend = FakeBackend(workers=2, acts={"s5": Act(crashes=3)})
    result, scheduler = run_fake(independent(8), backend, durations={f"s{i}": TINY for i in range(8)})
    assert statuses(result) == {f"s{i}": "failed" if i == 5 else "done" for i in range(8)}
    assert [(job.keys, job.fate) for job in backend.jobs] == [
        (keys("s0", "s1"), "done"),
        (keys("s2", "s3"), "done"),
        (keys("s4", "s5"), "crashed"),
        (keys("s6", "s7"), "crashed"),
        (keys("s4"), "done"),  # done before s5's crash
        (keys("s5"), "crashed"),
        (keys("s6"), "crashed"),
        (keys("s7"), "crashed"),  # (queued)
        (keys("s5"), "crashed"),  # suspect, alone: the culprit
        (keys("s6"), "done"),  # suspects, alone, innocent
        (keys("s7"), "done"),
    ]
    assert [backend.overlapping(job) for job in backend.jobs[8:]] == [[], [], []]
    assert scheduler._unbatched == {"s4", "s5", "s6", "s7"}
    # (a small unit does not report its start: which worker ran it is not known)
    assert (result.steps["s5"].error or "").startswith(
        "The worker process running step 's5' died: it exited with code 3 (scripted)\n"
    )


# -- retries ---------------------------------------------------------------------


def test_retries_run_a_crashing_unit_again_and_say_so_until_the_last_attempt() -> None:
    backend = FakeBackend(workers=2, acts={"a": Act(1.0, crashes=5)})
    result, _ = run_fake(steps("a"), backend, durations={"a": 1.0}, retries=2)
    assert [(j.start, j.fate) for j in backend.jobs] == [(0.0, "crashed"), (1.0, "crashed"), (2.0, "crashed")]
    record = result.steps["a"]
    assert record.status == "failed" and record.attempts == 3
    died = "The worker process (fake 0) running step 'a' died: it exited with code 3 (scripted)"
    assert record.output == "".join(f"nbpar: attempt {n} of step 'a' failed ({died}); retrying\n" for n in (1, 2))
    assert (record.error or "").startswith(f"(failed 3 attempts; this was the last)\n{died}\n")


def test_a_retried_step_that_succeeds_the_second_time_is_done(tmp_path: Path) -> None:
    tries = tmp_path / "tries"
    p = Pipeline({})
    p.add_step(
        "flaky",
        f"import pathlib\np = pathlib.Path({str(tries)!r})\nn = len(p.read_text()) if p.exists() else 0\n"
        "p.write_text('x' * (n + 1))\nif n == 0:\n    raise ValueError('first time')\nok = n",
        retries=1,
    )
    backend = FakeBackend(workers=2, acts={"flaky": Act(1.0)})
    result, _ = run_fake(p, backend, durations={"flaky": 1.0})
    assert result.ok and p.namespace["ok"] == 1 and result.steps["flaky"].attempts == 2
    assert [j.start for j in backend.jobs] == [0.0, 1.0]
    assert (
        result.steps["flaky"].output == "nbpar: attempt 1 of step 'flaky' failed (ValueError: first time); retrying\n"
    )


# -- timeouts --------------------------------------------------------------------


def test_a_unit_past_its_timeout_and_grace_on_an_isolated_backend_has_its_worker_stopped() -> None:
    # a ignores its alarm: at 1 s (timeout) + 1 s (grace) its worker is
    # stopped; shared fate fails b too, which, innocent, runs again.
    p = Pipeline({})
    p.add_step("a", "a_ = 1", timeout=1)
    p.add_step("b", "b_ = 1")
    backend = FakeBackend(workers=2, grace=1.0, acts={"a": Act(5.0, ignores_alarm=True), "b": Act(3.0)})
    result, _ = run_fake(p, backend, durations={"a": 1.0, "b": 1.0})
    assert backend.stopped == ["fake 0"] and backend.abandoned == []
    assert [(j.keys, j.start, j.end, j.fate) for j in backend.jobs] == [
        (keys("a"), 0.0, 2.0, "killed"),
        (keys("b"), 0.0, 2.0, "crashed"),
        (keys("b"), 2.0, 5.0, "done"),
    ]
    assert statuses(result) == {"a": "failed", "b": "done"}
    assert (result.steps["a"].error or "").startswith(
        "step 'a' did not finish within its timeout of 1s (--timeout 1), and did not stop when asked"
    )
    assert "its worker process (fake 0) was killed" in (result.steps["a"].error or "")


def test_a_unit_that_ends_within_the_grace_is_not_stopped_but_what_it_made_is_dropped() -> None:
    backend = FakeBackend(workers=2, grace=1.0, acts={"a": Act(1.5, ignores_alarm=True)})
    result, _ = run_fake(steps("a"), backend, durations={"a": 1.0}, timeout=1.0)
    assert backend.stopped == [] and [j.fate for j in backend.jobs] == ["done"]
    assert result.steps["a"].status == "failed" and "a_" not in result.steps
    assert result.steps["a"].error == (
        "step 'a' ran for 1.5s, past its timeout of 1s (--timeout 1), and could not be stopped in time: "
        "the fake's step ran past its timeout. What it made is dropped.\n"
    )


def test_a_unit_that_stops_at_its_own_alarm_needs_no_stopping() -> None:
    backend = FakeBackend(workers=2, acts={"a": Act(5.0)})
    result, _ = run_fake(steps("a"), backend, durations={"a": 1.0}, timeout=1.0)
    assert backend.stopped == [] and backend.abandoned == []
    assert [(j.end, j.fate) for j in backend.jobs] == [(1.0, "done")]
    assert result.steps["a"].error == "step 'a' was stopped after its timeout of 1s (scripted).\n"


@pytest.mark.parametrize("grace", [0.0, 0.5])
def test_a_unit_past_its_timeout_on_a_backend_that_cannot_stop_a_worker_is_abandoned(grace: float) -> None:
    backend = FakeBackend(
        workers=2, isolated=False, shared_fate=False, grace=grace, acts={"a": Act(5.0, ignores_alarm=True)}
    )
    result, _ = run_fake(steps("a"), backend, durations={"a": 1.0}, timeout=1.0)
    assert backend.stopped == [] and backend.abandoned == [backend.jobs[0].future]
    assert backend.clock.time == 1.0 + grace  # the run ended as the unit was abandoned
    assert backend.jobs[0].fate == "running"  # (a thread runs on)
    assert result.steps["a"].error == (
        "step 'a' did not finish within its timeout of 1s (--timeout 1). A thread cannot be stopped: "
        "it was abandoned, runs on in the background, and what it makes is dropped.\n"
    )


def test_an_inline_unit_past_its_timeout_is_stopped_only_by_its_own_alarm() -> None:
    backend = FakeBackend(inline=True, acts={"a": Act(5.0, ignores_alarm=True)})
    result, _ = run_fake(steps("a"), backend, durations={"a": 1.0}, timeout=1.0)
    assert backend.stopped == [] and backend.abandoned == []
    assert (result.steps["a"].error or "").startswith("step 'a' ran for 5.0s, past its timeout of 1s")


@pytest.mark.parametrize(("isolated", "grace"), [(False, 0.0), (True, 0.25)])
def test_a_chain_of_slices_longer_than_the_timeout_is_held_to_each_units_timeout(isolated: bool, grace: float) -> None:
    # f's slice and g's after it, in one task: 1.5 s each, of a 2 s timeout.
    # When g's slice starts, f's is over: its deadline (2 s + grace) is not
    # g's, which ends at 3 s.
    p = Pipeline({"rows": [1, 2]})
    p.add_step("f", "sq = [x * x for x in rows]", over="rows", slices=2)
    p.add_step("g", "cu = [x + 1 for x in sq]", over="sq", slices=2)
    backend = FakeBackend(
        workers=2, isolated=isolated, shared_fate=isolated, grace=grace, acts={"f": Act(1.5), "g": Act(1.5)}
    )
    result, _ = run_fake(p, backend, durations={"f": 1.0, "g": 1.0}, timeout=2.0)
    assert result.ok and p.namespace["cu"] == [2, 5]
    assert backend.tasks() == [[("f", 0), ("g", 0)], [("f", 1), ("g", 1)]]
    assert backend.stopped == [] and backend.abandoned == [] and backend.clock.time == 3.0


# -- fail-fast -------------------------------------------------------------------


def test_fail_fast_stops_the_units_in_flight_and_cancels_the_rest() -> None:
    p = Pipeline({})
    p.add_step("a", "raise ValueError('no')")
    p.add_step("b", "b_ = 1")
    p.add_step("c", "c_ = b_ + 1")
    acts = {"a": Act(1.0), "b": Act(5.0)}
    durations = {"a": 1.0, "b": 1.0, "c": 1.0}
    backend = FakeBackend(workers=2, acts=acts)
    result, _ = run_fake(p, backend, durations=durations, fail_fast=True)
    assert statuses(result) == {"a": "failed", "b": "cancelled", "c": "cancelled"}
    assert [(j.keys, j.end, j.fate) for j in backend.jobs] == [(keys("a"), 1.0, "done"), (keys("b"), 1.0, "stopped")]
    assert result.steps["b"].reason == "--fail-fast: step 'a' failed"
    backend = FakeBackend(workers=2, acts=acts)
    result, _ = run_fake(p, backend, durations=durations)
    assert statuses(result) == {"a": "failed", "b": "done", "c": "done"}


# -- packing.py, directly ----------------------------------------------------------


def test_estimates_come_from_this_run_then_the_last_then_the_typical_unit() -> None:
    estimates = Estimates({"old": 2.0}, probes=2)
    assert estimates.estimate("old") == 2.0 and estimates.estimate("new") is None
    estimates.learn("old", 3.0)
    assert estimates.estimate("old") == 3.0 and estimates.typical is None
    estimates.learn("x", 1.0)
    assert estimates.typical == 2.0  # the median of the first 2
    assert estimates.estimate("new") == 2.0 and not estimates.known("new") and estimates.known("old")


def test_pack_probes_as_many_as_free_and_defers_the_rest() -> None:
    backend = FakeBackend(workers=2)
    units: list[tuple[list[Key], Backend]] = [(keys(f"s{i}"), backend) for i in range(5)]
    parcels, deferred = pack(units, Estimates({}, 4), (), probes_free=3)
    assert parcels == [(PROBE, keys(f"s{i}"), backend) for i in range(3)]
    assert deferred == keys("s3", "s4")


def test_pack_sends_units_of_unknown_duration_alone_on_an_inline_backend() -> None:
    backend = FakeBackend(inline=True)
    parcels, deferred = pack([(keys("a"), backend)], Estimates({}, 2), (), probes_free=0)
    assert parcels == [(ALONE, keys("a"), backend)] and deferred == []


def test_pack_batches_small_units_but_not_large_unbatched_or_chained_ones() -> None:
    backend = FakeBackend(workers=1)
    last = {"s0": TINY, "s1": TINY, "s2": TINY, "big": 1.0, "crashed": TINY, "head": TINY}
    units: list[tuple[list[Key], Backend]] = [(keys(n), backend) for n in ("s0", "big", "s1", "crashed", "s2")]
    units.append(([("head", 0), ("next", 0)], backend))
    parcels, deferred = pack(units, Estimates(last, 2), {"crashed"}, probes_free=0)
    assert deferred == []
    assert parcels == [
        (ALONE, keys("big"), backend),
        (ALONE, keys("crashed"), backend),
        (ALONE, [("head", 0), ("next", 0)], backend),
        (BATCH_OF_SMALL, keys("s0", "s1"), backend),  # 3 small on 1 worker: 2 per batch (two batches a worker)
        (BATCH_OF_SMALL, keys("s2"), backend),
    ]


def test_batches_of_units_only_guessed_small_hold_at_most_guessed_batch() -> None:
    backend = FakeBackend(workers=2)
    estimates = Estimates({}, 1)
    estimates.learn("probe", 1e-5)  # the typical unit: every other step is guessed at 1e-5 s
    guessed = keys(*(f"g{i}" for i in range(1000)))
    # at most GUESSED_BATCH; towards the end a quarter (2 per worker) of what is left, at least TAIL_BATCH
    assert [len(k) for _, k, _ in batches(guessed, backend, estimates)] == [GUESSED_BATCH] * 12 + [
        58,
        44,
        33,
        TAIL_BATCH,
        TAIL_BATCH,
        33,  # (the last takes what is left rather than leave 1)
    ]
    known = Estimates({f"g{i}": 1e-5 for i in range(1000)}, 1)
    # 1000 / (2 per worker) first, then a quarter of what is left: 750 / 4, 562 / 4 ...
    assert [len(k) for _, k, _ in batches(guessed, backend, known)] == [250, 188, 141, 106, 79, 59, 45, 33, 32, 32, 35]
    assert batches(guessed[:2], backend, known) == [(FUSE, [k], backend) for k in guessed[:2]]
    assert int(BATCH / 1e-5) > 250  # (so BATCH is not what limits these)


def test_fuse_follows_the_links_while_steps_are_timed_small_and_the_whole_under_batch() -> None:
    links = {f"s{i}": f"s{i + 1}" for i in range(300)}
    small = Estimates({f"s{i}": 1e-5 for i in range(301)}, 2)
    assert len(fuse(("s0", None), small, (), links.get)) == FUSED_MAX
    assert fuse(("s0", None), small, {"s3"}, links.get) == keys("s0", "s1", "s2")
    assert fuse(("s0", 1), small, (), links.get) == [("s0", 1)]  # a slice is never fused
    assert fuse(("s300", None), small, (), links.get) == keys("s300")  # no link
    mixed = Estimates({"s0": TINY, "s1": TINY, "s2": SMALL}, 2)  # s2 is not under SMALL
    assert fuse(("s0", None), mixed, (), links.get) == keys("s0", "s1")
    untimed = Estimates({"s0": TINY}, 1)
    untimed.learn("p", TINY)  # a typical unit: s1 is guessed small, but never timed
    assert fuse(("s0", None), untimed, (), links.get) == keys("s0")
    heavy = Estimates({f"s{i}": 0.004 for i in range(20)}, 2)
    assert len(fuse(("s0", None), heavy, (), links.get)) == 12  # 12 * 0.004 <= BATCH < 13 * 0.004


def test_undeferred_releases_all_once_typical_is_known_else_as_many_as_may_probe() -> None:
    estimates = Estimates({}, 1)
    assert undeferred(10, estimates, 3) == 3 and undeferred(10, estimates, -1) == 0 and undeferred(2, estimates, 3) == 2
    estimates.learn("a", 1.0)
    assert undeferred(10, estimates, 0) == 10


@pytest.mark.parametrize(
    ("batch", "first", "guess", "timeout", "reports"),
    [
        (False, True, 1.0, None, True),  # a unit of known size
        (False, True, TINY, None, False),  # a small one: its outcome says when it ran
        (False, True, None, None, True),  # unknown: as if SMALL, not under it
        (True, True, 1.0, None, False),  # a batch's unit
        (True, False, TINY, 2.0, True),  # with a timeout: the deadline starts at its start
        (False, False, TINY, None, True),  # a later slice of a chain: a crash's culprit if it started
    ],
)
def test_reports_start(batch: bool, first: bool, guess: float | None, timeout: float | None, reports: bool) -> None:
    assert reports_start(batch, first, guess, timeout) is reports


def test_the_loop_and_packing_agree_on_which_units_report_their_start() -> None:
    backend = FakeBackend(workers=2)
    run_fake(independent(2), backend, durations={"s0": TINY, "s1": 1.0})
    said = {job.keys[0][0]: job.tasks[0].report_start for job in backend.jobs}
    assert said == {"s0": reports_start(False, True, TINY, None), "s1": reports_start(False, True, 1.0, None)}
    assert said == {"s0": False, "s1": True}


# -- crashes.py, directly -----------------------------------------------------------


def test_isolate_a_killed_unit_is_the_culprit_and_the_rest_innocent() -> None:
    cohort = [(keys("a"), False), (keys("b"), False)]
    verdicts, unbatch = isolate(cohort, started={("a", None), ("b", None)}, killed={("b", None)}, fused=())
    assert verdicts == [(("a", None), INNOCENT), (("b", None), CULPRIT)] and unbatch == set()


def test_isolate_one_task_started_its_last_started_unit_is_the_culprit() -> None:
    chain_: list[Key] = [("f", 0), ("g", 0), ("h", 0)]
    cohort = [(chain_, False), (keys("queued"), False)]
    verdicts, _ = isolate(cohort, started={("f", 0), ("g", 0)}, killed=(), fused=())
    assert verdicts == [(("f", 0), INNOCENT), (("g", 0), CULPRIT), (("h", 0), INNOCENT), (("queued", None), INNOCENT)]


def test_isolate_one_unit_nothing_started_is_the_culprit() -> None:
    verdicts, _ = isolate([(keys("a"), False)], started=(), killed=(), fused=())
    assert verdicts == [(("a", None), CULPRIT)]


def test_isolate_several_started_each_such_tasks_first_unit_is_a_suspect() -> None:
    cohort: list[tuple[list[Key], bool]] = [([("f", 0), ("g", 0)], False), ([("f", 1), ("g", 1)], False)]
    cohort.append((keys("c"), False))
    verdicts, _ = isolate(cohort, started={("f", 0), ("g", 0), ("g", 1)}, killed=(), fused=())
    assert dict(verdicts) == {
        ("f", 0): SUSPECT,  # a task that had a unit taken: its chain is suspected as a whole
        ("g", 0): INNOCENT,
        ("f", 1): SUSPECT,  # (its first unit, though only g's started: g needs f's outputs)
        ("g", 1): INNOCENT,
        ("c", None): INNOCENT,
    }


def test_isolate_nothing_started_every_chain_is_suspect_and_batches_are_unbatched() -> None:
    cohort = [(keys("s0", "s1"), True), (keys("a"), False), (keys("b", "fused"), False)]
    verdicts, unbatch = isolate(cohort, started=(), killed=(), fused={"fused"})
    assert verdicts == [
        (("s0", None), INNOCENT),  # a batch's units: run again one per task (unbatched)
        (("s1", None), INNOCENT),
        (("a", None), SUSPECT),
        (("b", None), SUSPECT),
        (("fused", None), INNOCENT),
    ]
    assert unbatch == {"s0", "s1", "b", "fused"}


def test_isolate_a_batch_alone_that_crashed_has_no_culprit_yet() -> None:
    verdicts, unbatch = isolate([(keys("s0", "s1"), True)], started=(), killed=(), fused=())
    assert verdicts == [(("s0", None), INNOCENT), (("s1", None), INNOCENT)] and unbatch == {"s0", "s1"}
