"""One contract, every backend: what `Pipeline.run` promises wherever steps run."""

from __future__ import annotations

import os
import sys
import textwrap
import time

import numpy as np
import pytest

import nbpar
from nbpar import Pipeline, PlanError, RunError
from nbpar.events import RunFinished, RunStarted, StepFinished, StepLog, StepStarted

from .conftest import run_cell, run_cells

BACKENDS = ["process", "thread", "inline"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def make(steps: dict[str, str], **namespace) -> Pipeline:
    p = Pipeline(dict(namespace))
    for name, source in steps.items():
        p.add_step(name, textwrap.dedent(source))
    return p


def test_chain_and_fan_in(backend):
    p = make(
        {
            "load": "rows = list(range(1000))",
            "evens": "evens = sum(x for x in rows if x % 2 == 0)",
            "odds": "odds = sum(x for x in rows if x % 2)",
            "total": "total = evens + odds",
        }
    )
    result = p.run(workers=2, backend=backend)
    assert p.namespace["total"] == sum(range(1000))
    assert result.ok and result.backend == backend and result.wall > 0
    for record in result.steps.values():
        assert record.status == "done" and record.attempts == 1
        assert record.start <= record.end and record.worker
    assert result.steps["evens"].start >= result.steps["load"].end
    assert result.steps["total"].start >= max(result.steps["evens"].end, result.steps["odds"].end)
    waits = list(result.waits)  # when the kernel waited for its workers: from, to, from, to, ...
    assert waits and len(waits) % 2 == 0 and waits == sorted(waits)
    assert result.start <= waits[0] and waits[-1] <= result.end
    assert nbpar.last_run() is result


def test_a_step_gets_only_what_it_reads(backend):
    p = make({"a": "seen = sorted(k for k in globals() if not k.startswith('__'))\nx = k1"}, k1=1, k2=2)
    p.run(backend=backend, workers=1)
    assert p.namespace["seen"] == ["k1"]


def test_builtins_and_modules_are_usable(backend):
    p = make({"a": "import math\nr = math.sqrt(len(range(16)))"})
    p.run(backend=backend, workers=1)
    assert p.namespace["r"] == 4.0 and p.namespace["math"].__name__ == "math"


def test_failure_writes_nothing_skips_dependents_and_lets_branches_finish(backend):
    p = make(
        {
            "bad": "partial = 1\nraise KeyError('missing')",
            "needs_bad": "y = partial + 1",
            "branch": "z = 3",
        }
    )
    with pytest.raises(RunError) as info:
        p.run(backend=backend, workers=2)
    result = info.value.result
    assert result.steps["bad"].status == "failed"
    assert "KeyError: 'missing'" in result.steps["bad"].error
    assert 'File "<step bad>", line 2' in result.steps["bad"].error
    assert result.steps["needs_bad"].status == "skipped"
    assert result.steps["branch"].status == "done" and p.namespace["z"] == 3
    assert "partial" not in p.namespace and "y" not in p.namespace
    assert info.value.failed == ["bad"]
    assert "1 of 3 steps failed: bad" in str(info.value)


def test_check_false_returns_the_failed_result(backend):
    p = make({"bad": "raise RuntimeError('x')"})
    result = p.run(backend=backend, check=False)
    assert not result.ok and result.steps["bad"].status == "failed"


def test_line_numbers_follow_the_cell(backend):
    p = Pipeline()
    p.add_step("s", "a = 1\n\nb = a[0]\n", first_line=2, header="%%step s")
    with pytest.raises(RunError) as info:
        p.run(backend=backend)
    error = info.value.result.steps["s"].error
    assert 'File "<step s>", line 4, in <module>' in error
    assert "b = a[0]" in error and "TypeError" in error


def test_traceback_goes_into_notebook_functions(backend):
    ns: dict = {}
    exec(compile("def helper(v):\n    return v['nope']\n", "<notebook cell>", "exec"), ns)
    p = Pipeline({"helper": ns["helper"]})
    p.add_step("s", "r = helper({})")
    with pytest.raises(RunError) as info:
        p.run(backend=backend)
    error = info.value.result.steps["s"].error
    assert error.index('"<step s>"') < error.index('"<notebook cell>", line 2, in helper')
    assert "worker.py" not in error


def test_traceback_into_a_cell_function_shows_its_source_line(shell, backend):
    """A function defined in an ordinary IPython cell: the traceback names the
    cell (IPython's filename for it), the line and the line's code, although
    the worker's linecache never saw the cell (cloudpickle 3.1 renames every
    function's file "<dynamic-code>")."""
    run_cells(shell, "def lookup(v):\n    return v['nope']", "%%step s\nr = lookup({})")
    cell_file = shell.user_ns["lookup"].__code__.co_filename
    result = run_cell(shell, f"%parrun --backend {backend} --workers 1 --no-widget")
    assert not result.success
    error = nbpar.last_run().steps["s"].error
    assert f"File \"{cell_file}\", line 2, in lookup\n    return v['nope']" in error
    assert "dynamic-code" not in error


def test_pmap_traceback_shows_the_cell_function_source_line(shell, backend):
    run_cells(shell, "import nbpar\ndef halve(x):\n    return 1 / (x - x)")
    cell_file = shell.user_ns["halve"].__code__.co_filename
    result = run_cell(shell, f"nbpar.pmap(halve, [1, 2], workers=1, backend={backend!r})")
    assert isinstance(result.error_in_exec, RunError)
    error = str(result.error_in_exec)
    assert f'File "{cell_file}", line 3, in halve\n    return 1 / (x - x)' in error


def test_cached_functions_cross_both_ways(shell, backend):
    """`functools.cache` / `lru_cache` wrappers of the notebook's or a step's
    functions (pickle cannot find them by name) travel as the function they
    wrap, with their cache parameters; their caches start empty."""
    run_cells(
        shell,
        "import functools\n@functools.lru_cache(maxsize=8)\ndef square(x):\n    return x * x",
        "%%step s\nimport functools\n@functools.cache\ndef double(x):\n    return 2 * x\nn = square(3)",
        f"%parrun --backend {backend} --workers 1 --no-widget",
    )
    double = shell.user_ns["double"]
    assert shell.user_ns["n"] == 9 and double(4) == 8 and double(4) == 8
    assert double.cache_info().hits == 1 and double.cache_parameters() == {"maxsize": None, "typed": False}


def test_recarrays_cross_both_ways(backend):
    """NumPy loads `numpy.rec` lazily: a worker without it must not send
    `recarray` back as a copy of the class (whose methods then fail)."""
    given = np.zeros(2, dtype=[("a", "i8")]).view(np.recarray)
    p = make({"s": "r = np.ones(2, dtype=[('a', 'i8'), ('b', 'f8')]).view(np.recarray)\nseen = repr(given)"}, np=np)
    p.namespace["given"] = given
    p.run(backend=backend, workers=1)
    r = p.namespace["r"]
    assert type(r) is np.recarray and r.a.tolist() == [1, 1] and repr(r).startswith("rec.array(")
    assert p.namespace["seen"] == repr(given)


def test_system_exit_is_a_step_failure(backend):
    p = make({"quits": "import sys\nsys.exit(3)"})
    with pytest.raises(RunError):
        p.run(backend=backend)
    assert "SystemExit: 3" in nbpar.last_run().steps["quits"].error


def test_prints_are_captured_per_step_and_reported(backend):
    p = make({"a": "print('line a1')\nprint('line a2')\nx = 1", "b": "print('only b', end='')\ny = 2"})
    events = []
    result = p.run(backend=backend, workers=2, listeners=[events.append])
    assert result.steps["a"].output == "line a1\nline a2\n"
    assert result.steps["b"].output == "only b\n"
    logs = "".join(e.text for e in events if isinstance(e, StepLog) and e.step == "a")
    assert logs == "line a1\nline a2\n"


def test_events_come_in_order(backend):
    p = make({"a": "x = 1", "b": "y = x"})
    events = []
    p.run(backend=backend, listeners=[events.append])
    kinds = [(type(e).__name__, getattr(e, "step", None)) for e in events]
    assert kinds == [
        ("RunStarted", None),
        ("StepStarted", "a"),
        ("StepFinished", "a"),
        ("StepStarted", "b"),
        ("StepFinished", "b"),
        ("RunFinished", None),
    ]
    assert isinstance(events[0], RunStarted) and events[0].order == ("a", "b")
    assert isinstance(events[-1], RunFinished) and isinstance(events[1], StepStarted)
    assert isinstance(events[2], StepFinished)
    events.clear()  # again, now that both are known to be small (they do not report their start)
    p.run(backend=backend, listeners=[events.append], force=True)
    assert [(type(e).__name__, getattr(e, "step", None)) for e in events] == kinds


def test_outputs_enter_the_namespace_as_each_step_finishes(backend):
    p = make({"a": "x = 1", "b": "y = x + 1"})
    seen = {}

    def listener(event):
        if isinstance(event, StepFinished):
            seen[event.step] = sorted(k for k in ("x", "y") if k in p.namespace)

    p.run(backend=backend, listeners=[listener])
    assert seen == {"a": ["x"], "b": ["x", "y"]}


def test_up_to_date_then_force(backend):
    p = make({"a": "x = [1]", "b": "y = x + [2]"})
    p.run(backend=backend)
    again = p.run(backend=backend)
    assert {s.status for s in again.steps.values()} == {"up-to-date"}
    forced = p.run(backend=backend, force=True)
    assert {s.status for s in forced.steps.values()} == {"done"}


def test_deleting_an_output_makes_the_step_stale(backend):
    p = make({"a": "x = 1"})
    p.run(backend=backend)
    del p.namespace["x"]
    assert p.run(backend=backend).steps["a"].status == "done"
    assert p.namespace["x"] == 1


def test_a_self_update_is_not_rerun(backend):
    p = make({"bump": "counter += 1"}, counter=0)
    p.run(backend=backend)
    p.run(backend=backend)
    assert p.namespace["counter"] == 1


def test_del_of_a_notebook_name_removes_it(backend):
    p = make({"drop": "del scratch\ndone = True"}, scratch=[1])
    p.run(backend=backend)
    assert "scratch" not in p.namespace and p.namespace["done"] is True


def test_per_step_backend_overrides_the_run(backend):
    p = Pipeline()
    p.add_step("here", "import threading\nwhere = threading.current_thread().name", backend="inline")
    p.add_step("there", "other = 1")
    result = p.run(backend=backend, workers=1)
    assert result.steps["here"].worker == "kernel" and result.steps["here"].backend == "inline"
    assert result.steps["there"].backend == backend


def test_missing_input_is_refused_before_anything_runs(backend):
    p = make({"fine": "a = 1", "broken": "b = nowhere"})
    with pytest.raises(PlanError, match=r"step 'broken' reads `nowhere`"):
        p.run(backend=backend)
    assert "a" not in p.namespace


def test_prints_arrive_while_the_step_runs(backend):
    if backend == "inline":
        pytest.skip("inline steps block the loop that would show them")
    p = make({"chatty": "import time\nprint('early line')\ntime.sleep(1.5)\nx = 1"})
    arrived = {}

    def listener(event):
        if isinstance(event, StepLog):
            arrived["log"] = time.time()
            arrived["status"] = event.result.steps["chatty"].status

    result = p.run(backend=backend, workers=1, listeners=[listener])
    assert arrived["status"] == "running"
    assert arrived["log"] < result.steps["chatty"].end  # seen before the step ended
    assert result.steps["chatty"].output == "early line\n"


def test_a_step_is_queued_until_a_worker_takes_it(backend):
    p = make({"a": "import time\ntime.sleep(0.3)\nx = 1", "b": "y = 2"})
    seen = {}

    def listener(event):
        if isinstance(event, StepStarted) and event.step == "a":
            seen["b"] = event.result.steps["b"].status

    p.run(backend=backend, workers=1, listeners=[listener])
    assert seen["b"] in ("waiting", "queued")  # one worker: b cannot run beside a


def test_a_changed_step_shows_its_new_lines_in_the_same_worker(backend):
    p = Pipeline()
    p.add_step("s", "x = 1\ny = 2")
    p.run(backend=backend, workers=1)
    p.add_step("s", "x = 1\ny = undefined_here + 1")
    p.namespace["undefined_here"] = None
    with pytest.raises(RunError) as info:
        p.run(backend=backend, workers=1)
    error = info.value.result.steps["s"].error
    assert "y = undefined_here + 1" in error and "TypeError" in error


ANNOTATED = """
def f(x: int, *, scale: float = 1.0) -> list:
    return [x * scale]
seen = f.__annotations__
"""


def test_a_step_compiles_with_the_notebooks_flags_and_nothing_else(backend):
    # nbpar's own modules use `from __future__ import annotations`: a step must not inherit it
    p = make({"plain": ANNOTATED})
    p.run(backend=backend, workers=1)
    assert p.namespace["seen"] == {"x": int, "scale": float, "return": list}


def test_a_notebook_wide_future_import_applies_to_steps(backend):
    import __future__

    p = Pipeline()
    p.add_step("lazy", ANNOTATED.replace("int", "Undefined"), flags=__future__.annotations.compiler_flag)
    assert p.steps["lazy"].reads == set()  # annotations are not evaluated: not reads
    p.run(backend=backend, workers=1)
    assert p.namespace["seen"] == {"x": "Undefined", "scale": "float", "return": "list"}


PATCHER = """
import builtins, os, sys
builtins.sorted = lambda *args, **kwargs: ["patched"]
os.chdir(folder)
sys.path.append(folder)
patched = 1
"""


def test_a_step_leaves_nothing_behind_but_its_outputs(backend, tmp_path):
    # the next step, in the same worker (one), gets unpatched builtins, the kernel's cwd and sys.path
    here, path = os.getcwd(), list(sys.path)
    p = Pipeline({"folder": str(tmp_path)})
    # (its os.chdir is interpreter-wide state, which runs in the kernel unless the step names a backend)
    p.add_step("patch", PATCHER, backend=backend)
    p.add_step("later", "import os, sys\nseen = (sorted([3, 1, 2]), os.getcwd(), folder in sys.path)", after=["patch"])
    result = p.run(backend=backend, workers=1)
    assert p.namespace["seen"] == ([1, 2, 3], here, False)
    assert (sorted([2, 1]), os.getcwd(), sys.path) == ([1, 2], here, path)  # the kernel's too
    note = "nbpar: the working directory (to {}), sys.path and the builtin `sorted` changed while step 'patch' ran"
    if backend == "process":
        assert "nbpar:" not in result.steps["patch"].output  # the worker was its own
    else:  # the kernel's, shared: put back, and said
        assert note.format(tmp_path) in result.steps["patch"].output


def test_every_step_starts_in_the_kernels_working_directory_with_its_sys_path(backend, tmp_path, monkeypatch):
    p = make({"where": "import os, sys\nwhere = (os.getcwd(), sys.path[0])"})
    p.run(backend=backend, workers=1)  # (a warm worker, started elsewhere)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    p.run(backend=backend, workers=1, force=True)
    assert p.namespace["where"] == (str(tmp_path), str(tmp_path / "src"))
