"""Step parallelism: `--over` fans a step out over slices of its data."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import nbpar
from nbpar import Pipeline, RunError

from .conftest import run_cell, run_cells

BACKENDS = ["process", "thread", "inline"]

# input kind -> (make the data of n items, a map step body, a chained step body)
KINDS = {
    "list": (lambda n: list(range(n)), "out = [x * 3 for x in data]", "out2 = [y + 1 for y in out]"),
    "tuple": (lambda n: tuple(range(n)), "out = tuple(x * 3 for x in data)", "out2 = tuple(y + 1 for y in out)"),
    "range": (lambda n: range(n), "out = [x * 3 for x in data]", "out2 = [y + 1 for y in out]"),
    "dict": (
        lambda n: {f"k{i:03}": i for i in range(n)},
        "out = {k: v * 3 for k, v in data.items()}",
        "out2 = {k: v + 1 for k, v in out.items()}",
    ),
    "ndarray": (lambda n: np.arange(n * 2).reshape(n, 2), "out = data * 3", "out2 = out + 1"),
    "DataFrame": (
        lambda n: pd.DataFrame({"a": range(n)}, index=[f"r{i}" for i in range(n)]),
        "out = data.assign(b=data.a * 3)",
        "out2 = out.assign(c=out.b + 1)",
    ),
    "Series": (lambda n: pd.Series(range(n), name="s"), "out = data * 3", "out2 = out + 1"),
}


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, (pd.DataFrame, pd.Series)):
        return type(a) is type(b) and a.equals(b) and list(a.index) == list(b.index)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    n=st.integers(0, 25),
    slicing=st.one_of(
        st.tuples(st.just("slices"), st.integers(1, 9)), st.tuples(st.just("slice_size"), st.integers(1, 9))
    ),
    chain=st.booleans(),
    total=st.booleans(),
)
def test_fan_out_equals_the_sequential_run(backend, kind, n, slicing, chain, total):
    make, body, chained_body = KINDS[kind]
    data = make(n)
    expected: dict = {"data": data}
    exec(body, {}, expected)
    if chain:
        exec(chained_body, {}, expected)

    p = Pipeline({"data": data})
    p.add_step("first", body, over="data", **{slicing[0]: slicing[1]})
    if chain:
        p.add_step("second", chained_body, over="out")  # inherits the slicing: a chain
    if total:
        p.add_step("whole", "size = len(out)")  # reads the merged output
    result = p.run(backend=backend, workers=2)
    assert same(p.namespace["out"], expected["out"])
    if chain:
        assert same(p.namespace["out2"], expected["out2"])
        assert len(result.steps["second"].slices) == len(result.steps["first"].slices)
    if total:
        assert p.namespace["size"] == len(expected["out"])
    records = result.steps["first"].slices
    assert [s.index for s in records] == list(range(len(records)))
    assert sum(s.size for s in records) == n
    assert all(s.size > 0 for s in records) or n == 0
    assert all(s.status == "done" and s.start <= s.end and s.worker for s in records)


@pytest.mark.parametrize("backend", BACKENDS)
def test_merges(backend):
    p = Pipeline({"items": list(range(10)), "biggest": max})
    p.add_step(
        "stats",
        "total = sum(items)\ncount = len(items)\ntop = max(items)\nby_key = {i: i * i for i in items}\nimport math",
        over="items",
        slices=3,
        merge={"total": "sum", "count": "list", "top": "biggest", "by_key": "dict"},
    )
    p.run(backend=backend, workers=2)
    ns = p.namespace
    assert ns["total"] == 45 and ns["count"] == [4, 3, 3] and ns["top"] == 9
    assert ns["by_key"] == {i: i * i for i in range(10)}
    assert ns["math"].__name__ == "math"  # modules are taken once, not merged


def test_auto_merge_of_numbers_is_a_list_per_slice_and_says_so_once():
    p = Pipeline({"items": list(range(6))})
    p.add_step("s", "n = len(items)\nfor item in items:\n    pass\nout = list(items)", over="items", slices=3)
    record = p.run(backend="thread").steps["s"]
    assert p.namespace["n"] == [2, 2, 2] and p.namespace["item"] == [1, 3, 5]
    assert record.notes == [
        "`item` is the list of the 3 slices' values (int: --merge auto does not combine them); "
        "--merge item=sum (or another) merges them, `_item` keeps it private to the step",
        "`n` is the list of the 3 slices' values (int: --merge auto does not combine them); "
        "--merge n=sum (or another) merges them, `_n` keeps it private to the step",
    ]  # not `out`: its lists are concatenated
    assert "nbpar:" not in record.output  # what the step printed stays the step's


def test_a_merge_that_was_asked_for_says_nothing():
    p = Pipeline({"items": list(range(6))})
    p.add_step("s", "n = len(items)\nlabel = 'x'", over="items", slices=3, merge={"n": "sum", "label": "list"})
    assert p.run(backend="thread").steps["s"].notes == []
    assert p.namespace["n"] == 6


def test_the_merge_note_is_shown_with_the_step_in_the_notebook(shell, capsys):
    run_cells(
        shell, "customers = list(range(8))", "%%step score --over customers --slices 4\nn_scored = len(customers)"
    )
    capsys.readouterr()
    run_cells(shell, "%parrun --backend inline")
    out = capsys.readouterr().out
    assert out.count("[score] nbpar: `n_scored` is the list of the 4 slices' values (int: ") == 1
    assert "--merge n_scored=sum (or another) merges them, `_n_scored` keeps it private to the step" in out


def test_default_slices_is_the_worker_count():
    p = Pipeline({"items": list(range(12))})
    p.add_step("s", "out = items", over="items")
    result = p.run(backend="thread", workers=3)
    assert [s.size for s in result.steps["s"].slices] == [4, 4, 4]


def test_sixteen_slices_share_two_workers():
    """Done-when: 16 slices of ~0.25 s CPU on 2 workers use both workers
    (the time against the sequential run is measured in benchmarks/)."""
    busy = "import time\n_end = time.process_time() + 0.25\nwhile time.process_time() < _end:\n    pass\n"
    p = Pipeline({"chunks": list(range(16))})
    p.add_step("work", busy + "done = list(chunks)", over="chunks", slices=16)
    result = p.run(backend="process", workers=2)
    assert p.namespace["done"] == list(range(16))
    workers = {s.worker for s in result.steps["work"].slices}
    assert len(workers) == 2, workers
    assert result.steps["work"].worker == ", ".join(sorted(workers))


def test_uneven_slices_are_taken_by_idle_workers():
    # slice 0 is slow; the other worker takes all the quick ones meanwhile
    body = "import time\nif 0 in items:\n    time.sleep(1.0)\nout = items"
    p = Pipeline({"items": list(range(8))})
    p.add_step("s", body, over="items", slices=8)
    result = p.run(backend="process", workers=2)
    slow = result.steps["s"].slices[0]
    quick_elsewhere = [s for s in result.steps["s"].slices[1:] if s.worker != slow.worker]
    assert len(quick_elsewhere) >= 5, [s.worker for s in result.steps["s"].slices]


def test_slices_and_other_steps_share_the_queue():
    # slice 0 is short, slice 1 long: solo takes the worker slice 0 frees,
    # while slice 1 still runs (a wide margin: no race on which ends first)
    p = Pipeline({"items": [0, 1]})
    body = "import time\ntime.sleep(0.05 if items == [0] else 1.0)\nout = items"
    p.add_step("fan", body, over="items", slices=2)
    p.add_step("solo", "alone = 1")
    result = p.run(backend="thread", workers=2)
    fan, solo = result.steps["fan"], result.steps["solo"]
    assert p.namespace["out"] == [0, 1] and p.namespace["alone"] == 1
    assert solo.start < fan.slices[1].end - 0.5  # solo did not wait for every slice


def test_a_chain_runs_slice_by_slice_without_a_barrier():
    body = "import time\ntime.sleep(0.2)\nfeats = [x * 2 for x in images]"
    p = Pipeline({"images": list(range(8))})
    p.add_step("features", body, over="images", slices=4)
    p.add_step("scores", "scores = [f + 1 for f in feats]", over="feats")
    p.add_step("summary", "best = max(scores)")
    result = p.run(backend="process", workers=2)
    features, scores = result.steps["features"], result.steps["scores"]
    assert p.namespace["best"] == 15
    assert scores.slices[0].start < features.end  # no barrier between the two steps
    for f, s in zip(features.slices, scores.slices, strict=True):
        assert s.worker == f.worker and s.start >= f.end  # slice i after slice i, same worker
    assert result.steps["summary"].start >= scores.end  # reading it whole waits for the merge


def test_a_chain_starts_late_slices_when_its_other_input_arrives():
    p = Pipeline({"images": list(range(4))})
    p.add_step("features", "feats = list(images)", over="images", slices=4)
    p.add_step("slow_model", "import time\ntime.sleep(0.5)\nweight = 10")
    p.add_step("scores", "scores = [f * weight for f in feats]", over="feats")
    p.run(backend="thread", workers=2)
    assert p.namespace["scores"] == [0, 10, 20, 30]


@pytest.mark.parametrize("slicing", [{"slices": 4}, {"slice_size": 2}])
def test_the_same_slicing_spelled_out_chains_too(slicing):
    p = Pipeline({"images": list(range(8))})
    p.add_step("features", "feats = list(images)", over="images", **slicing)
    p.add_step("scores", "scores = [f + 1 for f in feats]", over="feats", **slicing)
    assert p.plan().chained == {"scores": "features"}
    p.run(backend="thread", workers=2)
    assert p.namespace["scores"] == list(range(1, 9))
    p.add_step("scores", "scores = [f + 1 for f in feats]", over="feats", slices=2)
    assert p.plan(force=True).chained == {}  # another slicing: merged, then split again
    p.add_step("scores", "scores = [f + 1 for f in feats]", over="feats")
    assert p.plan(force=True).chained == {"scores": "features"}


def test_slices_spelled_as_the_default_chain_when_the_worker_count_is_known():
    p = Pipeline({"images": list(range(8))})
    body = "import time\ntime.sleep(0.3 if images[0] >= 4 else 0)\nfeats = list(images)"
    p.add_step("features", body, over="images")  # one slice per worker
    p.add_step("scores", "scores = [f + 1 for f in feats]", over="feats", slices=2)
    assert p.plan().chained == {}  # unknown until the run's worker count is
    assert p.plan(workers=2).chained == {"scores": "features"}
    assert p.plan(workers=3).chained == {}
    result = p.run(backend="thread", workers=2)
    assert p.namespace["scores"] == list(range(1, 9))
    assert result.steps["scores"].slices[0].start < result.steps["features"].end  # no barrier


def test_a_step_with_its_own_slicing_re_splits_the_merged_output():
    p = Pipeline({"images": list(range(10))})
    p.add_step("features", "feats = list(images)", over="images", slices=2)
    p.add_step("scores", "scores = [len(feats)]", over="feats", slices=5)
    result = p.run(backend="inline")
    assert p.namespace["scores"] == [2, 2, 2, 2, 2]
    assert result.steps["scores"].start >= result.steps["features"].end


def test_prints_are_labelled_with_the_slice(shell, capsys):
    run_cells(shell, "items = [1, 2]", "%%step s --over items --slices 2\nprint('got', items)\nout = items")
    run_cells(shell, "%parrun --backend inline")
    out = capsys.readouterr().out
    assert "[s[0]] got [1]" in out and "[s[1]] got [2]" in out


def test_magic_options(shell, capsys):
    run_cells(
        shell,
        "rows = {'a': 1, 'b': 2, 'c': 3, 'skip': 4}",
        "def wanted(key):\n    return key != 'skip'",
        "%%step double --over rows --slice-size 2 --filter wanted --merge dict\n"
        "doubled = {k: v * 2 for k, v in rows.items()}",
        "%%step count --over rows --slices 2 --merge n=sum\nn = len(rows)",
    )
    assert "| over rows" in capsys.readouterr().out
    run_cells(shell, "%parrun --workers 2")
    assert shell.user_ns["doubled"] == {"a": 2, "b": 4, "c": 6}
    assert shell.user_ns["n"] == 4


# -- errors -------------------------------------------------------------------


def test_a_failing_slice_names_it_and_writes_nothing(shell, capsys):
    run_cells(
        shell,
        "prices = {'apple': 1, 'kiwi': 0, 'pear': 2, 'plum': 4}",
        "%%step ratio --over prices --slices 2\nratios = {k: 10 / v for k, v in prices.items()}",
    )
    result = run_cell(shell, "%parrun --workers 2")
    assert isinstance(result.error_in_exec, RunError)
    shown = capsys.readouterr().out
    assert "slice 0 (keys 'apple' … 'kiwi') of step 'ratio' failed" in shown
    assert 'File "<step ratio>", line 2' in shown and "ZeroDivisionError" in shown
    assert "ratios" not in shell.user_ns
    assert nbpar.last_run().steps["ratio"].slices[0].status == "failed"


def test_unsliceable_input_says_what_is_sliceable():
    p = Pipeline({"n": 42})
    p.add_step("s", "out = n + 1", over="n")
    with pytest.raises(RunError) as info:
        p.run(backend="thread")
    error = info.value.result.steps["s"].error
    assert "step 's'" in error and "`n`" in error and "int" in error
    assert "Sliceable: lists, tuples, ranges, dicts" in error
    assert "out" not in p.namespace


def test_over_must_be_read():
    p = Pipeline()
    with pytest.raises(nbpar.GraphError, match=r"step 's': --over images, but the step does not read `images`"):
        p.add_step("s", "out = [1]", over="images")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"over": "xs", "slices": 0}, "--slices must be at least 1, not 0"),
        ({"over": "xs", "slices": 2, "slice_size": 3}, "give --slices or --slice-size, not both"),
        ({"over": "xs", "merge": "glue!"}, "--merge 'glue!': choose auto, concat, dict, list, sum"),
        ({"over": "xs", "merge": {"nope": "sum"}}, "--merge nope=sum, but the step does not write `nope`"),
        ({"slices": 3}, "--slices needs --over VAR"),
        ({"merge": "sum"}, "--merge needs --over VAR"),
    ],
)
def test_bad_fan_out_options_name_the_step(options, message):
    with pytest.raises(nbpar.GraphError, match="step 's': .*" + message.replace("(", r"\(").replace("$", r"\$")):
        Pipeline().add_step("s", "out = list(xs)", **options)


def test_a_fanned_out_step_may_change_its_slices_in_place_and_nothing_else():
    import pandas as pd

    p = Pipeline({"df": pd.DataFrame({"a": [1, 2, 3, 4]}), "seen": []})
    p.add_step("col", "df['c'] = df['a'] * 2", over="df", slices=2)  # each slice's new column, concatenated
    p.run(backend="thread")
    assert list(p.namespace["df"]["c"]) == [2, 4, 6, 8]
    with pytest.raises(nbpar.GraphError, match="step 'log': --over df, and the step changes `seen` in place"):
        p.add_step("log", "seen.append(len(df))", over="df")


def test_bad_merge_at_run_time_names_step_and_output():
    p = Pipeline({"xs": [1, 2, 3, 4]})
    p.add_step("s", "out = len(xs)", over="xs", slices=2, merge="concat")
    with pytest.raises(RunError) as info:
        p.run(backend="inline")
    error = info.value.result.steps["s"].error
    assert error.startswith("step 's': ") and "`out`" in error and "--merge list" in error
    assert "out" not in p.namespace


def test_merge_or_filter_function_missing_from_the_notebook():
    p = Pipeline({"xs": [1, 2]})
    p.add_step("s", "out = xs", over="xs", merge="combine")
    with pytest.raises(nbpar.PlanError, match=r"step 's' --merge names `combine`, which no step writes"):
        p.run(backend="inline")
    p.add_step("s", "out = xs", over="xs", filter="choose")
    with pytest.raises(nbpar.PlanError, match=r"step 's' --filter `choose`, which no step writes"):
        p.run(backend="inline")
    assert "out" not in p.namespace


def test_merge_names_something_that_is_not_a_function():
    p = Pipeline({"xs": [1, 2], "combine": 3})
    p.add_step("s", "out = xs", over="xs", merge="combine")
    with pytest.raises(RunError) as info:
        p.run(backend="inline")
    assert "--merge combine: `combine` is not a function in the notebook" in info.value.result.steps["s"].error


def test_filter_on_a_list_is_refused(shell):
    run_cells(shell, "xs = [1, 2]", "def keep(k):\n    return True", "%%step s --over xs --filter keep\nout = xs")
    result = run_cell(shell, "%parrun --backend inline")
    assert "--filter applies to the keys of a dict input" in nbpar.last_run().steps["s"].error
    assert isinstance(result.error_in_exec, RunError)


def test_bad_magic_option_for_fan_out(shell):
    with pytest.raises(UsageError, match="--slices must be at least 1"):
        shell.run_cell_magic("step", "s --over xs --slices 0", "out = xs")


# -- partitioned folders and pmap ---------------------------------------------


def test_partitioned_folder_loads_in_the_workers(tmp_path):
    for month, rows in {"2024-01": 3, "2024-02": 5, "2023-12": 2}.items():
        (tmp_path / f"{month}.csv").write_text("x\n" + "\n".join(str(i) for i in range(rows)) + "\n")

    def load(path):
        import os as _os

        return (_os.getpid(), len(open(path).read().splitlines()) - 1)

    parts = nbpar.partitions(tmp_path, loader=load, settings={"2024-*": {"year": 2024}, "2023-*": {"year": 2023}})
    p = Pipeline({"parts": parts, "recent": lambda name: name.startswith("2024")})
    p.add_step(
        "rows",
        textwrap.dedent(
            """
            counts = {}
            for name, part in parts.items():
                pid, n = part()
                counts[name] = (pid, n, part.settings["year"])
            """
        ),
        over="parts",
        filter="recent",
        slices=2,
    )
    p.run(backend="process", workers=2)
    counts = p.namespace["counts"]
    assert {k: v[1:] for k, v in counts.items()} == {"2024-01": (3, 2024), "2024-02": (5, 2024)}
    assert all(pid != os.getpid() for pid, _, _ in counts.values())  # loaded in the workers


@pytest.mark.parametrize("backend", BACKENDS)
def test_pmap_keeps_order(backend):
    assert nbpar.pmap(lambda x: x * x, range(20), workers=2, backend=backend) == [x * x for x in range(20)]


def test_pmap_error_names_the_item():
    def fragile(x):
        return 1 / (x - 5)

    with pytest.raises(RunError) as info:
        nbpar.pmap(fragile, range(10), workers=2)
    text = str(info.value)
    assert "(item 5) of step 'pmap' failed" in text and "in fragile" in text and "ZeroDivisionError" in text


def test_filter_and_merge_functions_are_inputs_of_the_step():
    p = Pipeline({"rows": {"a": 1, "b": 2, "c": 3}})
    p.add_step("rules", "def keep(key):\n    return key != 'b'\ndef total(values):\n    return sum(values)")
    p.add_step("count", "n = len(rows)", over="rows", filter="keep", merge="total")
    assert p.graph.dependencies()["count"] == {"rules"}  # the functions come from a step: wait for it
    p.run(backend="thread")
    assert p.namespace["n"] == 2
    assert p.run(backend="thread").steps["count"].status == "up-to-date"
    p.add_step("rules", "def keep(key):\n    return True\ndef total(values):\n    return sum(values)")
    assert p.run(backend="thread").steps["count"].status == "done"  # its filter changed
    assert p.namespace["n"] == 3


def test_a_filter_redefined_in_the_notebook_reruns_the_step():
    p = Pipeline({"rows": {"a": 1, "b": 2}, "keep": lambda key: key == "a"})
    p.add_step("count", "n = len(rows)", over="rows", filter="keep", merge="sum")
    p.run(backend="thread")
    assert p.namespace["n"] == 1
    p.namespace["keep"] = lambda key: True
    assert p.run(backend="thread").steps["count"].status == "done"
    assert p.namespace["n"] == 2
