"""pandas frames with text, categorical, datetime and nullable columns on the
process backend (nbpar/sharing.py, "Values pickled once a run"): the steps
get the frame with every dtype as the kernel has it and the results of a
sequential run; the kernel pickles such a frame once per run, not once per
step that reads it; an in-place change between runs reaches the next run.
Real process pool, `nbpar.Pipeline`."""

from __future__ import annotations

import gc
import os
import time
from typing import Any

import pytest

from nbpar import Pipeline, sharing
from nbpar.options import BackendName

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")

WORKERS = 2
ROWS = 20_000  # the text column alone pickles to more than sharing.VALUE_FILE: the pickle goes in a file
READERS = 4


class Counted:
    """An object in a frame's object column that counts how many times this
    process pickled it (the kernel's count: a worker's is its own)."""

    pickled = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        Counted.pickled += 1
        return Counted, (self.value,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counted) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def make_frame(rows: int) -> Any:
    """Every kind of column a notebook has without pyarrow."""
    rng = np.random.default_rng(0)
    ints = pd.array(rng.integers(0, 50, rows), dtype="Int64")
    ints[::7] = pd.NA
    return pd.DataFrame(
        {
            "amount": rng.random(rows),
            "text": pd.Series([f"customer-{k % 997}" for k in range(rows)], dtype=object),
            "mixed": pd.Series([None if k % 5 == 0 else f"m{k % 3}" for k in range(rows)], dtype=object),
            "default_str": [f"d{k % 11}" for k in range(rows)],  # pandas' own text dtype (`str` in pandas 3)
            "string": pd.array([None if k % 9 == 0 else f"s{k % 13}" for k in range(rows)], dtype="string"),
            "segment": pd.Categorical.from_codes(rng.integers(0, 6, rows), [f"seg-{k}" for k in range(6)]),
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, rows), unit="s"),
            "zoned": pd.date_range("2024-03-30", periods=rows, freq="min", tz="Europe/Paris"),
            "nullable": ints,
            "flag": pd.array([None if k % 4 == 0 else k % 2 == 0 for k in range(rows)], dtype="boolean"),
        }
    )


READER = """\
dtypes{k} = {{name: str(dtype) for name, dtype in df.dtypes.items()}}
exact{k} = dict(df.dtypes)
by{k} = df.groupby({key!r}, observed=True, dropna=False)["amount"].sum().round(9).to_dict()
na{k} = int(df["nullable"].isna().sum()) + int(df["string"].isna().sum())
"""
KEYS = ["text", "segment", "nullable", "string"]


def add_readers(p: Pipeline) -> None:
    for k, key in enumerate(KEYS[:READERS]):
        p.add_step(f"read{k}", READER.format(k=k, key=key))


def results(ns: dict[str, Any]) -> dict[str, Any]:
    return {name: ns[name] for k in range(READERS) for name in (f"by{k}", f"na{k}", f"dtypes{k}")}


def test_a_frame_of_every_column_kind_reaches_process_steps_as_a_sequential_run_has_it():
    """Made by a step in a worker and read by 4 steps in others: the same
    results as inline, and each step saw every dtype exactly as it is."""
    runs: dict[str, dict[str, Any]] = {}
    for backend in ("inline", "process"):
        p = Pipeline({"make_frame": make_frame, "ROWS": ROWS})
        p.add_step("make", "df = make_frame(ROWS)")
        add_readers(p)
        assert p.run(workers=WORKERS, backend=backend).ok
        runs[backend] = results(p.namespace)
        kernel = dict(p.namespace["df"].dtypes)
        for k in range(READERS):
            assert p.namespace[f"exact{k}"] == kernel  # (pandas dtypes compare by kind, unit, tz, categories)
        p.shutdown()
    assert runs["process"] == runs["inline"]
    dtypes = runs["process"]["dtypes0"]
    assert dtypes["text"] == "object" and dtypes["mixed"] == "object" and dtypes["segment"] == "category"
    assert dtypes["nullable"] == "Int64" and dtypes["string"] == "string" and dtypes["flag"] == "boolean"
    assert dtypes["when"].startswith("datetime64[") and dtypes["zoned"].endswith(", Europe/Paris]")


def counted_frame() -> Any:
    df = make_frame(ROWS)
    df["obj"] = pd.Series([Counted(k) if k == 0 else k for k in range(ROWS)], dtype=object)
    return df


def kernel_picklings(backend: BackendName, readers: int, runs: int = 2, **namespace: Any) -> list[int]:
    """How many times the kernel pickled the frame's Counted object, per run."""
    p = Pipeline({"counted_frame": counted_frame, **namespace})
    if "df" not in namespace:
        p.add_step("make", "df = counted_frame()")
    for k in range(readers):
        p.add_step(f"read{k}", READER.format(k=k, key=KEYS[k]))
    counts = []
    for _ in range(runs):
        Counted.pickled = 0
        assert p.run(workers=WORKERS, backend=backend, force=True).ok
        counts.append(Counted.pickled)
        assert p.namespace[f"na{readers - 1}"] == p.namespace["na0"]
    p.shutdown()
    return counts


def test_the_kernel_pickles_a_frame_that_steps_read_once_per_run():
    """A frame made by a step and read by 4 steps on other workers: the
    kernel pickles it once per run to send it (not once per reader), and
    again in the next run. The thread backend sends nothing: what the
    kernel pickles there (its fingerprint of the new version) is the rest."""
    threads = kernel_picklings("thread", READERS)
    sharing.reset_stats()
    processes = kernel_picklings("process", READERS)
    assert processes == [n + 1 for n in threads], (processes, threads)
    assert sharing.stats()["values"] == 2 and sharing.stats()["reused"] == 2 * (READERS - 1)


def test_a_notebook_frame_is_pickled_as_many_times_for_four_readers_as_for_one():
    """From the notebook: checked when the run starts, then pickled once for
    the run's tasks, however many steps read it."""
    one = kernel_picklings("process", 1, df=counted_frame())
    four = kernel_picklings("process", READERS, df=counted_frame())
    assert one == four, (one, four)


def test_an_in_place_change_between_runs_reaches_the_next_run():
    """A notebook frame changed in place after a run (same object, same
    id): the next run's steps see the change, never the pickle of the run
    before."""
    df = make_frame(ROWS)
    p = Pipeline({"df": df})
    for k in range(READERS):
        p.add_step(f"peek{k}", f"first{k} = (df['text'].iloc[0], df['segment'].iloc[0], df['nullable'].iloc[1])")
    assert p.run(workers=WORKERS, backend="process").ok
    assert p.namespace["first3"] == ("customer-0", df["segment"].iloc[0], df["nullable"].iloc[1])
    df.loc[0, "text"] = "changed"
    df.loc[0, "segment"] = "seg-5"
    df.loc[1, "nullable"] = 4242
    assert p.run(workers=WORKERS, backend="process", force=True).ok
    for k in range(READERS):
        assert p.namespace[f"first{k}"] == ("changed", "seg-5", 4242)
    p.shutdown()


def test_the_pickle_file_of_a_frame_goes_when_the_run_ends():
    """The frame's pickle is in a file of the kernel's directory, pinned by
    the run: gone once the run is over."""
    folder = sharing.directory()
    before = set(os.listdir(folder))
    sharing.reset_stats()
    p = Pipeline({"df": make_frame(ROWS)})
    add_readers(p)
    assert p.run(workers=WORKERS, backend="process").ok
    assert sharing.stats()["files"] >= 1  # the frame's pickle went in a file
    p.shutdown()
    deadline = time.monotonic() + 10
    while {n for n in os.listdir(folder) if n.endswith(".pkl")} - before and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert not {n for n in os.listdir(folder) if n.endswith(".pkl")} - before


@pytest.mark.parametrize("backend", ["inline", "process"])
def test_objects_a_steps_outputs_share_stay_shared_in_the_notebook(backend: BackendName):
    """A list in a frame's cell, also an output of its own: as after a
    top-to-bottom run, the notebook has one list, so a later cell that
    changes it sees the change through the frame (a step's outputs cross
    as one pickle)."""
    p = Pipeline({})
    p.add_step("s", "import pandas as pd\ndf2 = pd.DataFrame({'tags': [[1], [2]]})\nfirst2 = df2.loc[0, 'tags']")
    p.add_step("t", "n = len(df2)")  # a reader: the frame is sent again in the run
    p.run(backend=backend, workers=WORKERS)
    ns = p.namespace
    assert ns["first2"] is ns["df2"].loc[0, "tags"]


def test_a_steps_change_in_place_reaches_neither_the_kernels_frame_nor_another_step():
    """One worker runs them all, in this order: make, wait, change, look
    (it decodes the frame's text once and gives each step a copy). `change`
    changes the frame's text in place: a new version, which `after`, below
    it, reads; `look`, above it, reads the maker's version, untouched, as
    does the kernel's memo of it. (Rows enough for the text to go in a
    shared file, which the worker keeps the decoded strings of.)"""
    p = Pipeline({"make_frame": make_frame, "ROWS": 100_000})
    p.add_step("make", "df = make_frame(ROWS)")
    p.add_step("wait", "import time\ntime.sleep(0.2)\nwaited = True")
    p.add_step("look", "seen = (df.loc[0, 'text'], df.loc[1, 'mixed'], df.loc[2, 'default_str'], waited)")
    p.add_step("change", "df.loc[0, 'text'] = 'changed'\ndf.loc[1, 'mixed'] = 'x'\ndf.loc[2, 'default_str'] = 'y'")
    p.add_step("after", "after = (df.loc[0, 'text'], df.loc[1, 'mixed'], df.loc[2, 'default_str'])")
    original = ("customer-0", "m1", "d2")
    for _ in range(2):
        result = p.run(workers=1, backend="process", force=True)
        assert result.ok
        assert result.steps["change"].start < result.steps["look"].start  # (the same worker: the copy it kept)
        ns = p.namespace
        assert ns["seen"] == (*original, True) and ns["after"] == ("changed", "x", "y")
        made = p.version("make", "df")
        assert (made.loc[0, "text"], made.loc[1, "mixed"], made.loc[2, "default_str"]) == original
        assert ns["df"].loc[0, "text"] == "changed"
    p.shutdown()


def test_a_frame_from_a_step_changed_in_place_in_the_kernel_reaches_the_next_run():
    """The kernel sends a frame a step made on to its readers without
    encoding its text again while the frame is unchanged: a change in place
    in the kernel (the same array, one item replaced) makes its readers
    stale and reaches them."""
    p = Pipeline({"make_frame": make_frame, "ROWS": ROWS})
    p.add_step("make", "df = make_frame(ROWS)")
    for k in range(READERS):
        p.add_step(f"peek{k}", f"first{k} = (df.loc[0, 'text'], df.loc[3, 'default_str'], len(df))")
    assert p.run(workers=WORKERS, backend="process").ok
    assert p.namespace["first0"] == ("customer-0", "d3", ROWS)
    df = p.namespace["df"]
    df.loc[0, "text"] = "changed in the kernel"
    df.loc[3, "default_str"] = "d3, changed"
    result = p.run(workers=WORKERS, backend="process")
    assert result.steps["make"].status == "up-to-date"
    assert all(result.steps[f"peek{k}"].status == "done" for k in range(READERS))
    for k in range(READERS):
        assert p.namespace[f"first{k}"] == ("changed in the kernel", "d3, changed", ROWS)
    p.shutdown()


def arrow_frame(rows: int) -> Any:
    """Columns backed by Arrow (pyarrow's strings, numbers with nulls, dates)."""
    pa = pytest.importorskip("pyarrow")
    return pd.DataFrame(
        {
            "text": pd.array([None if k % 7 == 0 else f"a{k % 31}" for k in range(rows)], dtype="string[pyarrow]"),
            "number": pd.array([None if k % 5 == 0 else k for k in range(rows)], dtype=pd.ArrowDtype(pa.int64())),
            "day": pd.array(
                pd.date_range("2024-01-01", periods=rows, freq="min"), dtype=pd.ArrowDtype(pa.timestamp("s"))
            ),
            "amount": np.arange(rows, dtype=float),
        }
    )


def test_arrow_backed_columns_reach_process_steps_as_a_sequential_run_has_them():
    pytest.importorskip("pyarrow")
    runs: dict[str, Any] = {}
    for backend in ("inline", "process"):
        p = Pipeline({"arrow_frame": arrow_frame, "ROWS": ROWS})
        p.add_step("make", "df = arrow_frame(ROWS)")
        for k in range(2):
            p.add_step(
                f"r{k}", f"r{k} = (dict(df.dtypes), df.groupby('text')['amount'].sum().to_dict(), df['number'].sum())"
            )
        assert p.run(workers=WORKERS, backend=backend).ok
        runs[backend] = (p.namespace["r0"], p.namespace["r1"])
        pd.testing.assert_frame_equal(p.namespace["df"], arrow_frame(ROWS))
        p.shutdown()
    assert runs["process"] == runs["inline"]
