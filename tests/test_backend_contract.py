"""The backend contract (nbpar/contract.py), at the Backend level: what
every backend, present and future, must do for the run loop, tested by
calling it as the loop does (open_run, submit, stop_worker, stop,
close_run, shutdown), not through `Pipeline`.

Each test runs on every backend in `KITS`: the real ones (made by
`make_backend`: inline, thread, a real loky pool of processes) and the
scripted fake (tests/fake_backend.py) in its three shapes. A test that does
not apply to a backend skips by the backend's capabilities (`isolated`,
`inline`, `shared_fate`), never by its name. A new backend is one line in
`KITS` (what makes a step crash or run forever there: `Kit`).

Data flow of a test::

    kit (a backend, how to script a crash or an endless step, how to wait)
      -> run = backend.open_run(reports.append)
      -> backend.submit([Task, ...], run) -> Future -> [Outcome, ...] | WorkerCrash
      -> the reports that arrived (kit.wait: real time, or the fake's virtual clock)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pytest

from nbpar.backends import make_backend
from nbpar.contract import Backend, BackendRun, Outcome, PicklingProblem, Task, WorkerCrash

from .fake_backend import Act, FakeBackend

WAIT = 60.0  # seconds a real backend may take to do what a test waits for (never asserted)

Reports = list[tuple[str, str, "int | None", Any]]


@dataclass
class Kit:
    """A backend under test and how a test scripts it there: the source
    of a step that kills its worker (`crash`) or runs until stopped
    (`forever`), and how to wait for something the backend does (`wait`)."""

    backend: Backend
    crash: Callable[[str], str]  # step name -> its source
    forever: Callable[[str], str]
    wait: Callable[[Callable[[], bool]], None]


def _real_wait(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < deadline, "the backend did not do it in time"
        time.sleep(0.01)


def _real(name: str, workers: int) -> Callable[[], Kit]:
    def make() -> Kit:
        return Kit(
            make_backend(name, workers),
            crash=lambda step: "import os\nos._exit(3)",
            forever=lambda step: "import time\ntime.sleep(600)",
            wait=_real_wait,
        )

    return make


def _fake(**shape: Any) -> Callable[[], Kit]:
    def make() -> Kit:
        backend = FakeBackend(**shape)

        def crash(step: str) -> str:
            backend.acts[step] = Act(crashes=1)
            return "pass"

        def forever(step: str) -> str:
            backend.acts[step] = Act(seconds=math.inf)
            return "pass"

        return Kit(backend, crash, forever, wait=backend.clock.run_until)

    return make


KITS: dict[str, Callable[[], Kit]] = {
    "inline": _real("inline", 1),
    "thread": _real("thread", 2),
    "process": _real("process", 2),
    "fake": _fake(workers=2),  # process-like: isolated, shared fate
    "fake-thread": _fake(workers=2, isolated=False, shared_fate=False, worker_prefix="fake thread "),
    "fake-inline": _fake(inline=True, isolated=False, shared_fate=False, worker_prefix="fake kernel "),
}
REAL = {"inline", "thread", "process"}  # made once per module (a process pool is slow to start)


@pytest.fixture(scope="module")
def real_kits() -> Iterator[dict[str, Kit]]:
    made: dict[str, Kit] = {}
    yield made
    for kit in made.values():
        kit.backend.shutdown()


@pytest.fixture(params=list(KITS))
def kit(request: pytest.FixtureRequest, real_kits: dict[str, Kit]) -> Kit:
    name: str = request.param
    if name not in REAL:
        return KITS[name]()
    if name not in real_kits:
        real_kits[name] = KITS[name]()
    return real_kits[name]


@pytest.fixture
def run(kit: Kit) -> Iterator[tuple[BackendRun, Reports]]:
    reports: Reports = []
    lock = threading.Lock()

    def report(kind: str, step: str, index: int | None, payload: Any) -> None:
        with lock:
            reports.append((kind, step, index, payload))

    opened = kit.backend.open_run(report)
    yield opened, reports
    kit.backend.close_run(opened)


def task(step: str, source: str, writes: tuple[str, ...] = (), **fields: Any) -> Task:
    inputs = fields.pop("inputs", {})
    return Task(step, source, inputs, writes, **fields)


def outcomes(future: Future[list[Outcome]]) -> list[Outcome]:
    return future.result(timeout=WAIT)


def failure(future: Future[list[Outcome]]) -> BaseException | None:
    return future.exception(timeout=WAIT)


# -- what a backend says of itself --------------------------------------------


def test_capabilities_are_consistent(kit: Kit) -> None:
    b = kit.backend
    assert isinstance(b.name, str) and b.name
    assert isinstance(b.worker_prefix, str) and b.worker_prefix
    assert b.workers >= 1 and b.grace >= 0 and isinstance(b.late, str)
    assert {type(b.inline), type(b.isolated), type(b.shared_fate)} == {bool}
    if b.inline:
        assert b.workers == 1 and not b.isolated and not b.shared_fate  # (the loop's own thread)


# -- running tasks ------------------------------------------------------------


def test_a_task_runs_its_code_and_reports_its_start_and_lines(kit: Kit, run: tuple[BackendRun, Reports]) -> None:
    opened, reports = run
    b = kit.backend
    future = b.submit([task("a", "print('hi')\nx = y + 1", ("x",), inputs={"y": 1})], opened)
    if b.inline:  # it ran inside submit, its reports too
        assert future.done() and [r[0] for r in reports] == ["start", "log"]
    [outcome] = outcomes(future)
    assert outcome.ok and outcome.step == "a" and outcome.outputs == {"x": 2} and outcome.output == "hi\n"
    assert outcome.worker.startswith(b.worker_prefix) and outcome.start <= outcome.end
    kit.wait(lambda: len(reports) == 2)  # (a live line may come after the outcome)
    (start, step, index, (worker, when)), log = reports
    assert (start, step, index, worker) == ("start", "a", None, outcome.worker)
    assert when <= outcome.end
    assert log == ("log", "a", None, "hi\n")


def test_a_unit_that_does_not_report_its_start_says_so_as_it_prints(kit: Kit, run: tuple[BackendRun, Reports]) -> None:
    opened, reports = run
    [outcome] = outcomes(kit.backend.submit([task("a", "print('hi')", report_start=False)], opened))
    kit.wait(lambda: len(reports) == 2)
    (printing, step, _, (worker, _)), log = reports
    assert (printing, step, worker) == ("printing", "a", outcome.worker)
    assert log == ("log", "a", None, "hi\n")


def test_a_silent_unit_that_does_not_report_its_start_reports_nothing(
    kit: Kit, run: tuple[BackendRun, Reports]
) -> None:
    opened, reports = run
    [outcome] = outcomes(kit.backend.submit([task("a", "x = 1", ("x",), report_start=False)], opened))
    assert outcome.ok and reports == []


def test_a_failing_step_is_an_outcome_with_its_error_never_an_exception(
    kit: Kit, run: tuple[BackendRun, Reports]
) -> None:
    opened, _ = run
    [outcome] = outcomes(kit.backend.submit([task("bad", "x = 1\nraise KeyError('missing')", ("x",))], opened))
    assert not outcome.ok and outcome.outputs == {} and outcome.worker.startswith(kit.backend.worker_prefix)
    assert outcome.error is not None and "KeyError: 'missing'" in outcome.error
    assert 'File "<step bad>", line 2' in outcome.error


def test_outcomes_come_in_task_order_and_independent_tasks_run_past_a_failure(
    kit: Kit, run: tuple[BackendRun, Reports]
) -> None:
    opened, _ = run
    tasks = [task("a", "a = 1", ("a",)), task("b", "1 / 0"), task("c", "c = 3", ("c",))]
    got = outcomes(kit.backend.submit(tasks, opened))
    assert [o.step for o in got] == ["a", "b", "c"]
    assert [o.ok for o in got] == [True, False, True] and got[2].outputs == {"c": 3}
    assert len({o.worker for o in got}) == 1  # one worker runs one submission


def test_a_chain_passes_outputs_on_and_stops_at_its_first_failing_unit(
    kit: Kit, run: tuple[BackendRun, Reports]
) -> None:
    opened, _ = run
    chain = [
        task("a", "x = 1", ("x",)),
        task("b", "y = x + 1", ("y",), inherits=("x",)),
        task("c", "z = y / 0", ("z",), inherits=("y",)),
        task("d", "w = z", ("w",), inherits=("z",)),
    ]
    got = outcomes(kit.backend.submit(chain, opened))
    assert [o.step for o in got] == ["a", "b", "c"]
    assert got[1].outputs == {"y": 2} and got[2].error is not None and "ZeroDivisionError" in got[2].error


def test_an_isolated_unit_changes_its_own_copy_of_an_input(kit: Kit, run: tuple[BackendRun, Reports]) -> None:
    if not kit.backend.isolated:
        pytest.skip("not isolated: a unit shares the kernel's objects (the loop sends copies: Task.copies)")
    opened, _ = run
    rows = [1, 2]
    [outcome] = outcomes(
        kit.backend.submit([task("a", "rows.append(3)\nn = len(rows)", ("n",), inputs={"rows": rows})], opened)
    )
    assert outcome.outputs == {"n": 3} and rows == [1, 2]


def test_an_input_that_cannot_be_pickled(kit: Kit, run: tuple[BackendRun, Reports]) -> None:
    opened, _ = run
    lock = threading.Lock()
    submission = [task("locked", "with lock:\n    done = True", ("done",), inputs={"lock": lock})]
    if not kit.backend.isolated:  # nothing crosses to another process: it runs
        assert outcomes(kit.backend.submit(submission, opened))[0].outputs == {"done": True}
        return
    with pytest.raises(PicklingProblem) as info:
        kit.backend.submit(submission, opened)
    assert "step 'locked'" in str(info.value) and "`lock`" in str(info.value)
    assert outcomes(kit.backend.submit([task("after", "ok = 1", ("ok",))], opened))[0].ok  # the backend goes on


# -- stopping, crashes ----------------------------------------------------------


def _started(reports: Reports, step: str) -> str | None:
    """The worker that reported it took `step`, if one did."""
    return next((r[3][0] for r in list(reports) if r[0] == "start" and r[1] == step), None)


def test_stop_worker_stops_an_isolated_worker_and_its_unit_fails_with_a_worker_crash(
    kit: Kit, run: tuple[BackendRun, Reports]
) -> None:
    opened, reports = run
    b = kit.backend
    if not b.isolated:  # a thread, the kernel: the loop abandons the unit instead
        worker = outcomes(b.submit([task("quick", "pass")], opened))[0].worker
        assert b.stop_worker(worker) is False
        return
    future = b.submit([task("long", kit.forever("long"))], opened)
    kit.wait(lambda: _started(reports, "long") is not None)
    took = _started(reports, "long")
    assert took is not None and took.startswith(b.worker_prefix)
    assert b.stop_worker(took) is True
    assert isinstance(failure(future), WorkerCrash)
    assert outcomes(b.submit([task("after", "ok = 1", ("ok",))], opened))[0].ok  # a new worker takes over


def test_a_worker_that_dies_fails_its_unit_with_a_worker_crash(kit: Kit, run: tuple[BackendRun, Reports]) -> None:
    if not kit.backend.isolated:
        pytest.skip("not isolated: a step that exits ends the kernel")
    opened, _ = run
    crash = failure(kit.backend.submit([task("dies", kit.crash("dies"))], opened))
    assert isinstance(crash, WorkerCrash) and str(crash)
    assert outcomes(kit.backend.submit([task("after", "ok = 1", ("ok",))], opened))[0].ok  # a new worker takes over


def test_shared_fate_a_dying_worker_fails_every_unit_in_flight(kit: Kit, run: tuple[BackendRun, Reports]) -> None:
    b = kit.backend
    if not b.isolated or b.workers < 2:
        pytest.skip("needs two isolated workers")
    opened, reports = run
    long = b.submit([task("long", kit.forever("long"))], opened)
    kit.wait(lambda: _started(reports, "long") is not None)
    crash = failure(b.submit([task("dies", kit.crash("dies"))], opened))
    assert isinstance(crash, WorkerCrash)
    if b.shared_fate:
        assert isinstance(failure(long), WorkerCrash)
    else:  # the innocent runs on: stop it
        assert not long.done()
        worker = _started(reports, "long")
        assert worker is not None and b.stop_worker(worker)
        assert isinstance(failure(long), WorkerCrash)


def test_stop_ends_the_units_in_flight_of_an_isolated_run(kit: Kit, run: tuple[BackendRun, Reports]) -> None:
    b = kit.backend
    opened, reports = run
    if not b.isolated:  # a thread runs on (abandoned): only nothing in flight is stopped here
        b.stop(opened)
        assert outcomes(b.submit([task("after", "ok = 1", ("ok",))], opened))[0].ok
        return
    future = b.submit([task("long", kit.forever("long"))], opened)
    kit.wait(lambda: _started(reports, "long") is not None)
    b.stop(opened)
    assert failure(future) is not None
    fresh = b.open_run(lambda *report: None)
    try:
        assert outcomes(b.submit([task("after", "ok = 1", ("ok",))], fresh))[0].ok  # the next run gets workers
    finally:
        b.close_run(fresh)


def test_close_run_is_idempotent(kit: Kit) -> None:
    opened = kit.backend.open_run(lambda *report: None)
    assert outcomes(kit.backend.submit([task("a", "x = 1", ("x",))], opened))[0].ok
    kit.backend.close_run(opened)
    kit.backend.close_run(opened)
    assert opened.closed


@pytest.mark.parametrize("name", list(KITS))
def test_shutdown_is_idempotent_and_a_fresh_backend_works_after_it(name: str) -> None:
    kit = KITS[name]()
    kit.backend.warm_up()
    opened = kit.backend.open_run(lambda *report: None)
    assert outcomes(kit.backend.submit([task("a", "x = 1", ("x",))], opened))[0].outputs == {"x": 1}
    kit.backend.close_run(opened)
    kit.backend.shutdown()
    kit.backend.shutdown()
    again = KITS[name]()
    opened = again.backend.open_run(lambda *report: None)
    try:
        assert outcomes(again.backend.submit([task("a", "x = 2", ("x",))], opened))[0].outputs == {"x": 2}
    finally:
        again.backend.close_run(opened)
        again.backend.shutdown()
