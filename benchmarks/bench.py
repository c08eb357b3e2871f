"""nbpar against the tools users would otherwise pick, on one machine, cold and warm.

    .venv/bin/python benchmarks/bench.py [--quick] [--only WORKLOAD ...] [--tools TOOL ...]
                                         [--workers N] [--repeats R] [--cap SECONDS]

Each workload is one task graph, built natively for each tool:

* nbpar process: a `nbpar.Pipeline` of source-snippet steps (`p3 = spin(4, 6000000)`),
  `run(workers=N, backend="process", force=True)`; a fanned-out workload is one
  step with `over="items", slices=16`.
* nbpar magics: the same steps as `%%step` cells in a real
  `IPython.core.interactiveshell.InteractiveShell.instance()` after
  `%load_ext nbpar`, run by `%parrun --no-widget --force --workers N` (its
  printed lines captured).
* nbpar thread: the Pipeline with backend="thread" (only on workloads whose
  steps can overlap in threads or are too small to matter: tiny, chain, array, frames).
* kedro ParallelRunner / ThreadRunner: a Kedro `Pipeline` of `node`s over
  `MemoryDataset`s (constants are catalog entries), `runner.run(pipeline,
  catalog)` with a fresh `SharedMemoryDataCatalog` (ParallelRunner) or
  `DataCatalog` (ThreadRunner) per run; kedro multinode: kedro-partitioned's
  `multinode` on the ParallelRunner (fan-out workload only, when installed).
* dask processes: `dask.delayed` calls, `dask.compute(graph, scheduler="processes",
  num_workers=N)`; dask distributed: the same graph on
  `Client(LocalCluster(n_workers=N, threads_per_worker=1, processes=True))`,
  `client.compute(graph, sync=True)`. The delayed graph is built anew (fresh
  keys) before every run, untimed.
* joblib: `Parallel(n_jobs=N)` (loky) with `delayed` calls, one `Parallel`
  call per wave of the graph (the tasks whose inputs are ready); a wave of one
  task runs in the parent, as a joblib user would call a single function.

The work is `benchmarks/work.py`, importable by every tool's workers (this
script puts its folder on PYTHONPATH before any pool starts). Workloads, full
sizes (--quick: smaller, one round):

* cpu:         8 independent steps of ~1 s of pure-Python CPU, then a join
* tiny-100, tiny-1000, tiny-10000: that many steps `x_i = double(i)`, then a join
* array:       one step makes a 200 MB float64 array, 4 steps each reduce it
               (~0.03-0.08 s each), then a join
* slices:      16 items of ~0.25 s each (nbpar: one step fanned out over 16
               slices; the others: 16 tasks), then a join
* chain:       200 (quick: 50) dependent steps `c_k = link(c_{k-1}, k)`, then a join
* wide-narrow: 16 steps of ~0.1 s, 4 steps of ~0.2 s each reading 4 of them,
               then a join
* frames:      one step makes a 1M-row (quick: 200k) pandas DataFrame with numeric,
               `str` (object), categorical and datetime columns, 4 steps read it
               (a groupby each), then a join

Cold and warm, per tool. cold: the tool's first run from a fresh state,
pool start included: nbpar after `nbpar.backends.process.stop_pool()` (thread:
a pipeline whose thread pool is shut down; magics: the pool that `%load_ext`
warms up is stopped too); joblib after its reusable loky executor is shut
down; dask distributed including LocalCluster and Client start (closed after
each round's warm run). warm: a second run right after, pools up. Kedro's
runners and dask's processes scheduler keep nothing between runs (each run
starts its own pool, and a ParallelRunner its Manager process), so every run
of theirs is cold: they run once per round and the same runs count for both.

Library imports are done before any timing. Rounds: R (3; 1 with --quick),
each running every tool once (cold, then warm) in an order rotated from round
to round; times are medians over the rounds. The sequential run (plain calls
in this process, each step timed) gives the reference result, which every
tool's result must equal (exit status 1 otherwise), and the ideal:
max(sequential / workers, critical path), from each step's fastest time.

A peer whose cold run on a workload is over --cap (60 s; 10 s with --quick)
is not run there again; one predicted to be, from its times on the smaller
tiny sizes, is skipped. One whose cold run took over a quarter of the cap, or
over 5 s and twice nbpar's, runs one round only, as does Kedro's ThreadRunner
on pure-Python CPU work. Runs during which other processes took a noticeable
share of the CPUs are marked * (see CpuMeter); before each tool's cold run
the script waits a little (--quiet-wait) for them to leave the CPUs. The
header also measures the machine's ceiling: how much more work N bare
processes spinning at once do than one. Only the standard library is
imported at module level: dask's worker processes are spawned and re-import
this file.

Where nbpar's time goes: after each workload's rows, one line per nbpar
variant splits the wall time W of its median warm run into four parts that
sum to W (see Breakdown). The run loop runs in the calling thread, and
RunResult.waits says when it waited for its workers' reports and outcomes:

* worker: the loop waits and at least one worker runs a step (or slice) of
  the run, between the start and end its worker recorded;
* transport: the loop waits and no step runs anywhere: tasks and outcomes
  on their way (queues, pipes, unpickling and pickling in the worker, the
  outcome's unpickling in loky's thread of the kernel);
* kernel CPU: the loop's thread does not wait and is on a CPU
  (time.thread_time over the run): planning, pickling inputs, settling
  outcomes, writing outputs, IPython's cell;
* kernel off CPU: it does not wait and is not on a CPU (preempted, waiting
  for the GIL that another thread of the kernel holds, in a system call).

The line ends with each worker's total step time.

The magics' first run after `%load_ext`: once per workload (untimed in the
tables), twice: in this process's IPython shell, a fresh extension
(`%unload_ext`, which stops every pool, then `%load_ext nbpar`, whose
warm-up starts the pool), the `%%step` cells and at once `%parrun`, then a
second `%parrun` (cells run back to back in one thread, as `nbpar run`
runs a notebook); and the same cells sent at once to a new Jupyter kernel
(ipykernel), as Run All sends them. Waiting for workers = how much later
the first run's first step started in a worker after the run began
(RunResult.start) than the second run's; the pool was warm if every worker
the first run used already existed when its %parrun began. Target: a warm
pool and no more than FIRST_SLACK (5 ms) of waiting.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import math
import os
import platform
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import work  # noqa: E402

# -- workloads: one task graph each ---------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """An argument that is the output of another task."""

    name: str


@dataclass
class Task:
    name: str  # the step's name and the variable it writes
    func: str  # a function of work.py
    args: tuple[Any, ...] = ()

    def source(self) -> str:
        args = ", ".join(a.name if isinstance(a, Ref) else repr(a) for a in self.args)
        return f"{self.name} = {self.func}({args})"

    def refs(self) -> list[str]:
        return [a.name for a in self.args if isinstance(a, Ref)]


@dataclass
class Workload:
    name: str
    title: str
    tasks: list[Task]  # in a topological order; the last one, `total`, is the result
    items: list[Any] | None = None  # fan-out: tasks[:-1] are crunch(item); nbpar runs one step over slices
    slices: int = 0
    thread: bool = False  # nbpar thread runs it (threads cannot overlap pure-Python CPU work)
    overhead: bool = False  # report the per-step overhead (tiny steps, chain)
    memory: bool = False  # sample the process tree's RSS (array)
    rounds: int | None = None  # fewer rounds than --repeats (the 10,000 steps)
    size_bytes: int = 0

    @property
    def family(self) -> str:
        return self.name.split("-")[0]

    @property
    def functions(self) -> list[str]:
        names = {t.func for t in self.tasks}
        if self.items is not None:
            names.add("crunch")
        return sorted(names)

    def nbpar_steps(self) -> list[dict[str, Any]]:
        """Pipeline.add_step keyword arguments, and what the %%step cells say."""
        if self.items is None:
            return [{"name": t.name, "source": t.source()} for t in self.tasks]
        return [
            {
                "name": "work",
                "source": "results = [crunch(item) for item in items]",
                "over": "items",
                "slices": self.slices,
            },
            {"name": "total", "source": "total = join_sum(*results)"},
        ]

    def waves(self) -> list[list[Task]]:
        """The tasks in waves: each wave's tasks need only earlier waves' outputs."""
        level: dict[str, int] = {}
        for t in self.tasks:
            level[t.name] = 1 + max((level[r] for r in t.refs()), default=-1)
        out: list[list[Task]] = [[] for _ in range(max(level.values()) + 1)]
        for t in self.tasks:
            out[level[t.name]].append(t)
        return out

    def ideal(self, per_step: dict[str, float], workers: int) -> tuple[float, float, float]:
        """(ideal, sequential work, critical path) from per-step times."""
        finish: dict[str, float] = {}
        for t in self.tasks:
            finish[t.name] = per_step[t.name] + max((finish[r] for r in t.refs()), default=0.0)
        total, path = sum(per_step.values()), max(finish.values())
        return max(total / workers, path), total, path


def join(name: str, parts: Iterable[str]) -> Task:
    return Task(name, "join_sum", tuple(Ref(p) for p in parts))


SIZES: dict[str, dict[str, Any]] = {
    # seconds of CPU per step (converted to spin loops by calibration), counts
    "full": {
        "cpu": 1.0,
        "tiny": [100, 1000, 10_000],
        "array": 25_000_000,
        "slice": 0.25,
        "chain": 200,
        "wide": 0.1,
        "narrow": 0.2,
        "frames": 1_000_000,
    },
    "quick": {
        "cpu": 0.2,
        "tiny": [100, 1000],
        "array": 6_250_000,
        "slice": 0.05,
        "chain": 50,
        "wide": 0.02,
        "narrow": 0.04,
        "frames": 200_000,
    },
}
CPU_STEPS, SLICES, WIDE, NARROW = 8, 16, 16, 4
SLOW = 5.0  # s: a peer whose cold run takes longer, and over twice nbpar's, runs one round


def workloads(size: dict[str, Any], rate: float) -> list[Workload]:
    def loops(seconds: float) -> int:
        return max(1000, round(seconds * rate / 1000) * 1000)

    out = []
    cpu = [Task(f"p{k}", "spin", (k + 1, loops(size["cpu"]))) for k in range(CPU_STEPS)]
    out.append(
        Workload(
            "cpu",
            f"{CPU_STEPS} independent steps of ~{size['cpu']:g} s of pure-Python CPU, then a join",
            [*cpu, join("total", (t.name for t in cpu))],
        )
    )
    for n in size["tiny"]:
        xs = [Task(f"x{i}", "double", (i,)) for i in range(n)]
        out.append(
            Workload(
                f"tiny-{n}",
                f"{n:,} trivial steps (x_i = double(i)), then a join",
                [*xs, join("total", (t.name for t in xs))],
                thread=True,
                overhead=True,
                rounds=1 if n >= 10_000 else None,
            )
        )
    n = size["array"]
    reds = [Task(f"r{k}", f, (Ref("a"),)) for k, f in enumerate(work.REDUCTIONS)]
    out.append(
        Workload(
            "array",
            f"one {n * 8 / 1e6:.0f} MB float64 array (a = make_array({n:,})) read by {len(reds)} steps "
            f"({', '.join(work.REDUCTIONS)}), then a join",
            [Task("a", "make_array", (n,)), *reds, join("total", (t.name for t in reds))],
            thread=True,
            memory=True,
            size_bytes=n * 8,
        )
    )
    rows = size["frames"]
    groups = [Task(f"g{k}", f, (Ref("df"),)) for k, f in enumerate(work.FRAME_GROUPS)]
    out.append(
        Workload(
            "frames",
            f"one {rows:,}-row pandas frame with numeric, str (object), categorical and datetime columns "
            f"(df = make_frame({rows:,})) read by {len(groups)} steps (a groupby each), then a join",
            [Task("df", "make_frame", (rows,)), *groups, join("total", (t.name for t in groups))],
            thread=True,
        )
    )
    items = [(k + 1, loops(size["slice"])) for k in range(SLICES)]
    parts = [Task(f"s{k}", "crunch", (item,)) for k, item in enumerate(items)]
    out.append(
        Workload(
            "slices",
            f"{SLICES} items of ~{size['slice']:g} s each (nbpar: one step --over items --slices {SLICES}), "
            "then a join",
            [*parts, join("total", (t.name for t in parts))],
            items=items,
            slices=SLICES,
        )
    )
    links = [Task("c0", "link", (1, 0))]
    for k in range(1, size["chain"]):
        links.append(Task(f"c{k}", "link", (Ref(f"c{k - 1}"), k)))
    out.append(
        Workload(
            "chain",
            f"{size['chain']} dependent steps (c_k = link(c_(k-1), k)), then a join",
            [*links, join("total", [links[-1].name])],
            thread=True,
            overhead=True,
        )
    )
    wide = [Task(f"w{k}", "spin", (k + 1, loops(size["wide"]))) for k in range(WIDE)]
    per = WIDE // NARROW
    narrow = [
        Task(f"n{j}", "narrow", (loops(size["narrow"]), *(Ref(w.name) for w in wide[j * per : (j + 1) * per])))
        for j in range(NARROW)
    ]
    out.append(
        Workload(
            "wide-narrow",
            f"{WIDE} steps of ~{size['wide']:g} s, then {NARROW} steps of ~{size['narrow']:g} s each reading "
            f"{per} of them, then a join",
            [*wide, *narrow, join("total", (t.name for t in narrow))],
        )
    )
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    return bool(a == b)


# -- the tools ------------------------------------------------------------------------


class Tool:
    """One way of running a workload. Untimed: setup (once per workload),
    reset (before a cold run), prepare (before every run), after (after the
    round's runs), teardown. Timed: run."""

    label = ""
    key = ""
    peer = True
    keeps_pool = True  # False: every run starts from scratch; one run per round counts as cold and warm

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.wl: Workload | None = None
        self.record: Any = None  # nbpar's RunResult of the last run
        self.note = ""  # said beside its times (set by setup)

    def missing(self) -> str | None:
        """Why this tool cannot run at all, or None."""
        return None

    def applies(self, wl: Workload) -> str | None:
        """Why this tool does not run this workload, or None."""
        return None

    def setup(self, wl: Workload) -> None:
        self.wl = wl

    def reset(self) -> None:
        pass

    def prepare(self) -> None:
        pass

    def run(self, cold: bool) -> Any:
        raise NotImplementedError

    def after(self) -> None:
        pass

    def teardown(self) -> None:
        self.wl = None


def func(name: str) -> Callable[..., Any]:
    return getattr(work, name)


class Sequential(Tool):
    label, key, peer, keeps_pool = "sequential", "sequential", False, False

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.per_step: list[dict[str, float]] = []

    def setup(self, wl: Workload) -> None:
        super().setup(wl)
        self.per_step = []

    def run(self, cold: bool) -> Any:
        assert self.wl is not None
        values: dict[str, Any] = {}
        times: dict[str, float] = {}
        clock = time.perf_counter
        for t in self.wl.tasks:
            args = [values[a.name] if isinstance(a, Ref) else a for a in t.args]
            t0 = clock()
            values[t.name] = func(t.func)(*args)
            times[t.name] = clock() - t0
        self.per_step.append(times)
        return values["total"]


def stop_nbpar_pool() -> None:
    from nbpar.backends.process import stop_pool

    for thread in threading.enumerate():  # %load_ext's warm-up may be starting the pool
        if thread.name == "nbpar-warm-up" and thread is not threading.current_thread():
            thread.join(60)
    stop_pool(wait=True)


def check_nbpar(result: Any, label: str) -> None:
    bad = {n: r.status for n, r in result.steps.items() if r.status != "done"}
    if bad:
        raise RuntimeError(f"{label}: not every step ran: {bad}")


class NbparPipeline(Tool):
    def __init__(self, workers: int, backend: str) -> None:
        super().__init__(workers)
        self.backend = backend
        self.label = f"nbpar {backend}"
        self.key = f"nbpar-{backend}"
        self.pipeline: Any = None

    def applies(self, wl: Workload) -> str | None:
        if self.backend == "thread" and not wl.thread:
            return "pure-Python CPU steps hold the GIL: threads run them one at a time"
        return None

    def setup(self, wl: Workload) -> None:
        import nbpar

        super().setup(wl)
        namespace: dict[str, Any] = {name: func(name) for name in wl.functions}
        if wl.items is not None:
            namespace["items"] = list(wl.items)
        self.pipeline = nbpar.Pipeline(namespace=namespace)
        for step in wl.nbpar_steps():
            self.pipeline.add_step(**step)

    def reset(self) -> None:
        self.pipeline.shutdown()  # its thread pool (thread) or the shared process pool
        stop_nbpar_pool()

    def run(self, cold: bool) -> Any:
        result = self.pipeline.run(workers=self.workers, backend=self.backend, force=True)
        check_nbpar(result, self.label)
        self.record = result
        return self.pipeline.namespace["total"]

    def teardown(self) -> None:
        self.pipeline.shutdown()
        self.pipeline.namespace.clear()
        self.pipeline = None
        super().teardown()


@dataclass
class FirstRun:
    """The magics' first %parrun right after `%load_ext nbpar` (NbparMagics.first_after_load)."""

    wall: float  # of that first run
    delay: float  # seconds from its start (RunResult.start) to its first step's start in a worker
    delay_next: float  # the same in the run right after it (workers up)
    warm: bool  # its workers all existed before the %parrun began: the warm-up's

    @property
    def waiting(self) -> float:
        """The first run's wait for its workers: its delay beyond the next run's."""
        return max(0.0, self.delay - self.delay_next)

    @staticmethod
    def delay_of(result: Any) -> float:
        starts = [a for a, _, _ in step_spans(result)]
        return min(starts) - result.start if starts else 0.0

    def line(self, where: str) -> str:
        return (
            f"magics first run after %load_ext ({where}): {self.waiting:.3f} s waiting for workers "
            f"(pool warm: {'yes' if self.warm else 'NO'}; its first step started {self.delay:.3f} s into the run, "
            f"the next run's {self.delay_next:.3f} s; wall {fmt(self.wall)} s)"
        )


KERNEL_AHEAD = 200  # cells sent to the kernel ahead of their replies
KERNEL_REPORT = """\
_r = nbpar.last_run()
%parrun --no-widget --force --workers {workers}
_r2 = nbpar.last_run()
def _units(r):
    return [u for rec in r.steps.values() for u in (rec.slices or [rec])]
def _starts(r):
    return [u.start for u in _units(r) if u.start is not None]
def _pids(r):
    return {{int(u.worker[4:]) for u in _units(r) if u.worker and u.worker.startswith("pid ")}}
with open({path!r}, "w") as _f:
    json.dump([_wall, min(_starts(_r)) - _r.start, min(_starts(_r2)) - _r2.start,
               bool(_pids(_r)) and _pids(_r) <= _before, _r.ok and _r2.ok], _f)
"""


def first_run_in_kernel(wl: Workload, workers: int, timeout: float) -> FirstRun | None:
    """The magics' first %parrun right after `%load_ext nbpar` in a new
    Jupyter kernel (ipykernel, this interpreter), its cells sent at once as
    Run All sends them; None without jupyter_client and ipykernel."""
    if missing_module("jupyter_client") or missing_module("ipykernel"):
        return None
    import json
    import queue
    import tempfile

    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    with tempfile.TemporaryDirectory(prefix="nbpar-bench-kernel-") as specs:
        os.makedirs(os.path.join(specs, "bench"))
        with open(os.path.join(specs, "bench", "kernel.json"), "w", encoding="utf-8") as f:
            argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
            json.dump({"argv": argv, "display_name": "bench", "language": "python"}, f)
        km = KernelManager(  # its sockets: files in `specs` (TCP would warn that it is not encrypted)
            kernel_name="bench",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[specs]),
            transport="ipc",
            ip=os.path.join(specs, "ipc"),
        )
        km.start_kernel()  # (PYTHONPATH: this folder's and nbpar's, set by main)
        kc = km.blocking_client()
        try:
            kc.start_channels()
            kc.wait_for_ready(timeout=60)
            cells = ["import json, time, psutil", "%load_ext nbpar", f"from work import {', '.join(wl.functions)}"]
            if wl.items is not None:
                cells.append(f"items = {list(wl.items)!r}")
            for step in wl.nbpar_steps():
                options = f" --over {step['over']} --slices {step['slices']}" if "over" in step else ""
                cells.append(f"%%step {step['name']}{options}\n{step['source']}\n")
            cells.append(
                "_before = {p.pid for p in psutil.Process().children(recursive=True)}\n_t0 = time.perf_counter()\n"
                f"%parrun --no-widget --force --workers {workers}\n_wall = time.perf_counter() - _t0"
            )
            path = os.path.join(specs, "first-run.json")
            cells.append("import nbpar\n" + KERNEL_REPORT.format(workers=workers, path=path))
            deadline = time.monotonic() + timeout

            def replied() -> None:
                """The next cell's reply (the shell channel's, which drops none)."""
                try:
                    reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise RuntimeError(f"the kernel did not run its {len(cells)} cells in {timeout:.0f} s") from None
                if reply["content"].get("status") == "error":
                    raise RuntimeError(f"a cell failed in the kernel: {reply['content'].get('evalue')}")

            # As Run All: every cell sent without waiting for the one before,
            # the replies read meanwhile (with 10,000 cells sent before any
            # reply was read, the kernel stalled).
            waiting = 0
            for cell in cells:
                kc.execute(cell)
                waiting += 1
                if waiting > KERNEL_AHEAD:
                    replied()
                    waiting -= 1
            for _ in range(waiting):
                replied()
            with open(path, encoding="utf-8") as f:
                wall, delay, delay_next, warm, ok = json.load(f)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=False)
    if not ok:
        raise RuntimeError("not every step ran in the kernel")
    return FirstRun(wall, delay, delay_next, warm)


class NbparMagics(Tool):
    label, key = "nbpar magics", "nbpar-magics"

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.shell: Any = None
        self.loaded = False
        self.written: list[str] = []
        self.first: FirstRun | None = None
        self.first_in_kernel: FirstRun | None = None
        self.first_failed = ""  # why they could not be measured

    def cell(self, text: str) -> str:
        """Run a cell in the shell; its printed output; raise if it failed."""
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            result = self.shell.run_cell(text)
        if not result.success:
            raise RuntimeError(f"cell failed: {text.splitlines()[0]!r}:\n{buf.getvalue()[-3000:]}")
        return buf.getvalue()

    def setup(self, wl: Workload) -> None:
        super().setup(wl)
        if self.shell is None:
            from IPython.core.interactiveshell import InteractiveShell
            from traitlets.config import Config

            config = Config()
            config.HistoryManager.enabled = False
            self.shell = InteractiveShell.instance(config=config)
        if self.loaded:  # a fresh pipeline for each workload
            self.cell("%unload_ext nbpar")
        self.cell("%load_ext nbpar")
        self.loaded = True
        self.cell(f"from work import {', '.join(wl.functions)}")
        if wl.items is not None:
            self.shell.push({"items": list(wl.items)})
        for step in wl.nbpar_steps():
            options = f" --over {step['over']} --slices {step['slices']}" if "over" in step else ""
            self.cell(f"%%step {step['name']}{options}\n{step['source']}\n")
        self.written = [t.name for t in wl.tasks] + ["results", "items"]

    def first_after_load(self, timeout: float) -> None:
        """A fresh nbpar (`%unload_ext` stops every pool), `%load_ext nbpar`
        (whose warm-up starts the pool), the cells, and at once `%parrun`:
        did that first run find its workers up? Then the next run, for
        comparison. Untimed in the tables; sets `self.first`, and
        `self.first_in_kernel`: the same in a new Jupyter kernel."""
        import psutil

        import nbpar

        assert self.wl is not None
        self.first = self.first_in_kernel = None
        self.first_failed = ""
        self.setup(self.wl)  # (unloads the extension, loads it again, runs the cells)
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        t0 = time.perf_counter()
        self.cell(f"%parrun --no-widget --force --workers {self.workers}")
        wall = time.perf_counter() - t0
        first = nbpar.last_run()
        check_nbpar(first, self.label)
        self.cell(f"%parrun --no-widget --force --workers {self.workers}")
        pids = {int(w[4:]) for _, _, w in step_spans(first) if w.startswith("pid ")}
        warm = bool(pids) and pids <= before
        self.first = FirstRun(wall, FirstRun.delay_of(first), FirstRun.delay_of(nbpar.last_run()), warm)
        self.first_in_kernel = first_run_in_kernel(self.wl, self.workers, timeout)

    def reset(self) -> None:
        stop_nbpar_pool()

    def run(self, cold: bool) -> Any:
        import nbpar

        self.cell(f"%parrun --no-widget --force --workers {self.workers}")
        self.record = nbpar.last_run()
        check_nbpar(self.record, self.label)
        return self.shell.user_ns["total"]

    def teardown(self) -> None:
        for name in self.written:
            self.shell.user_ns.pop(name, None)
        super().teardown()

    def close(self) -> None:
        if self.loaded:
            self.cell("%unload_ext nbpar")
            self.loaded = False


class Kedro(Tool):
    keeps_pool = False

    def __init__(self, workers: int, parallel: bool) -> None:
        super().__init__(workers)
        self.parallel = parallel
        self.label = "kedro ParallelRunner" if parallel else "kedro ThreadRunner"
        self.key = "kedro-parallel" if parallel else "kedro-thread"
        self.pipeline: Any = None
        self.constants: dict[str, Any] = {}

    def missing(self) -> str | None:
        return missing_module("kedro")

    def setup(self, wl: Workload) -> None:
        from kedro.pipeline import Pipeline, node

        super().setup(wl)
        nodes, self.constants = [], {}
        for t in wl.tasks:
            inputs = []
            for i, a in enumerate(t.args):
                if isinstance(a, Ref):
                    inputs.append(a.name)
                else:
                    self.constants[f"{t.name}__{i}"] = a
                    inputs.append(f"{t.name}__{i}")
            nodes.append(node(func(t.func), inputs or None, t.name, name=t.name))
        self.pipeline = Pipeline(nodes)

    def run(self, cold: bool) -> Any:
        from kedro.io import DataCatalog, MemoryDataset, SharedMemoryDataCatalog
        from kedro.runner import ParallelRunner, ThreadRunner

        datasets = {k: MemoryDataset(v) for k, v in self.constants.items()}
        if self.parallel:
            runner: Any = ParallelRunner(max_workers=self.workers)  # starts its Manager process
            value = runner.run(self.pipeline, SharedMemoryDataCatalog(datasets))["total"].load()
            del runner  # stops the Manager (ParallelRunner.__del__)
            return value
        return ThreadRunner(max_workers=self.workers).run(self.pipeline, DataCatalog(datasets))["total"].load()


class KedroMultinode(Tool):
    """kedro-partitioned's step parallelism on the ParallelRunner: the fan-out
    workload's items as a partitioned input, with its default n_slices."""

    label, key, keeps_pool = "kedro multinode", "kedro-multinode", False

    def missing(self) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        if missing_module("kedro"):
            return missing_module("kedro")
        try:
            installed = version("kedro-partitioned")
        except PackageNotFoundError:
            return (
                "kedro-partitioned is not installed (it pins kedro<0.20; beside kedro 1.x: pip install --no-deps "
                "kedro-partitioned kedro-datasets lazy_loader 'universal-pathlib<1' pathlib_abc)"
            )
        try:
            from kedro_partitioned.pipeline import multinode  # noqa: F401
        except Exception as e:
            return f"kedro-partitioned {installed} does not import: {type(e).__name__}: {e}"
        return None

    def applies(self, wl: Workload) -> str | None:
        return None if wl.items is not None else "fan-out workloads only"

    def setup(self, wl: Workload) -> None:
        import functools

        from kedro.pipeline import Pipeline, node
        from kedro_partitioned.pipeline import multinode

        super().setup(wl)
        assert wl.items is not None
        n_slices = int(os.environ.get("MAX_NODES", 1)) * int(os.environ.get("MAX_WORKERS", os.cpu_count() or 1))
        self.label = f"kedro multinode (n_slices={n_slices})"
        fanned = multinode(
            func=work.crunch, partitioned_input="parts", partitioned_output="out", name="crunch", n_slices=n_slices
        )
        joined = node(work.join_slices, [f"out-slice-{i}" for i in range(n_slices)], "total", name="total")
        self.pipeline = fanned + Pipeline([joined])
        # What a PartitionedDataset loads: partition name -> a function returning the partition.
        self.parts = {f"part-{k:02d}": functools.partial(work.identity, item) for k, item in enumerate(wl.items)}

    def run(self, cold: bool) -> Any:
        from kedro.io import MemoryDataset, SharedMemoryDataCatalog
        from kedro.runner import ParallelRunner

        runner = ParallelRunner(max_workers=self.workers)
        value = runner.run(self.pipeline, SharedMemoryDataCatalog({"parts": MemoryDataset(self.parts)}))
        value = value["total"].load()
        del runner
        return value


def delayed_graph(wl: Workload) -> Any:
    from dask import delayed

    made: dict[str, Any] = {}
    for t in wl.tasks:
        made[t.name] = delayed(func(t.func))(*[made[a.name] if isinstance(a, Ref) else a for a in t.args])
    return made["total"]


class DaskProcesses(Tool):
    label, key, keeps_pool = "dask processes", "dask-processes", False

    def missing(self) -> str | None:
        return missing_module("dask")

    def prepare(self) -> None:
        assert self.wl is not None
        self.graph = delayed_graph(self.wl)

    def run(self, cold: bool) -> Any:
        import dask

        # dask's defaults: a fresh (spawn) process pool for every compute, 6 ready tasks per submission
        return dask.compute(self.graph, scheduler="processes", num_workers=self.workers)[0]


class DaskDistributed(Tool):
    label, key = "dask distributed", "dask-distributed"

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.client: Any = None
        self.cluster: Any = None

    def missing(self) -> str | None:
        return missing_module("dask") or missing_module("distributed")

    def prepare(self) -> None:
        assert self.wl is not None
        self.graph = delayed_graph(self.wl)  # new keys: nothing of the previous run is reused

    def run(self, cold: bool) -> Any:
        import logging

        from distributed import Client, LocalCluster

        if cold:
            self.cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        return self.client.compute(self.graph, sync=True)

    def after(self) -> None:
        if self.client is not None:
            self.client.close()
            self.cluster.close()
            self.client = self.cluster = None


class Joblib(Tool):
    label, key = "joblib", "joblib"

    def missing(self) -> str | None:
        return missing_module("joblib")

    def setup(self, wl: Workload) -> None:
        super().setup(wl)
        self.waves = wl.waves()
        single = sum(1 for w in self.waves if len(w) == 1)
        self.note = f"{single} of {len(self.waves)} waves are one task, run in the parent" if single > 1 else ""

    def reset(self) -> None:
        from joblib.externals.loky import reusable_executor

        executor = reusable_executor._executor
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=True)

    def run(self, cold: bool) -> Any:
        from joblib import Parallel, delayed

        values: dict[str, Any] = {}

        def args(t: Task) -> list[Any]:
            return [values[a.name] if isinstance(a, Ref) else a for a in t.args]

        with Parallel(n_jobs=self.workers) as parallel:
            for wave in self.waves:
                if len(wave) == 1:
                    values[wave[0].name] = func(wave[0].func)(*args(wave[0]))
                else:
                    done = parallel(delayed(func(t.func))(*args(t)) for t in wave)
                    values.update(zip((t.name for t in wave), done, strict=True))
        return values["total"]


def missing_module(name: str) -> str | None:
    import importlib.util

    if importlib.util.find_spec(name) is None:
        return f"{name} is not installed (pip install -e '.[bench]')"
    return None


def make_tools(workers: int) -> list[Tool]:
    return [
        Sequential(workers),
        NbparPipeline(workers, "process"),
        NbparMagics(workers),
        NbparPipeline(workers, "thread"),
        Kedro(workers, parallel=True),
        Kedro(workers, parallel=False),
        KedroMultinode(workers),
        DaskProcesses(workers),
        DaskDistributed(workers),
        Joblib(workers),
    ]


NBPAR = ("nbpar-process", "nbpar-magics", "nbpar-thread")


# -- measuring ---------------------------------------------------------------------------


class CpuMeter:
    """How much CPU other processes used while a run went on (Linux only).

    /proc/stat gives the whole machine's busy time; this process, its live
    descendants (/proc/PID/stat) and its reaped children (os.times) give ours.
    The difference is CPU taken by something else, which slows the parallel
    tools down and makes the numbers noisy."""

    def __init__(self) -> None:
        self.ok = os.path.exists("/proc/stat")
        self.cpus = os.cpu_count() or 1
        self.tick = os.sysconf("SC_CLK_TCK") if self.ok else 100

    def _machine(self) -> tuple[float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq) / self.tick, steal / self.tick

    def _ours(self) -> float:
        children: dict[int, list[int]] = {}
        cpu: dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(entry)
            children.setdefault(int(rest[1]), []).append(pid)
            cpu[pid] = (int(rest[11]) + int(rest[12])) / self.tick
        total, stack = 0.0, list(children.get(os.getpid(), []))
        while stack:
            pid = stack.pop()
            total += cpu.get(pid, 0.0)
            stack.extend(children.get(pid, []))
        t = os.times()
        return total + t.user + t.system + t.children_user + t.children_system

    def snapshot(self) -> tuple[float, float, float] | None:
        if not self.ok:
            return None
        busy, steal = self._machine()
        return busy, steal, self._ours()

    def foreign(self, before: Any, after: Any) -> tuple[float, float] | None:
        """(CPU seconds used by other processes, seconds stolen by the hypervisor)."""
        if before is None or after is None:
            return None
        busy, steal, ours = (a - b for a, b in zip(after, before, strict=True))
        return max(busy - ours, 0.0), steal

    def wait_quiet(self, limit: float, share: float = 0.25, sample: float = 0.1) -> float:
        """Wait, up to `limit` seconds, until other processes use less than
        `share` of one CPU over `sample` seconds; return the time waited."""
        t0 = time.perf_counter()
        while True:
            before = self.snapshot()
            time.sleep(sample)
            other = self.foreign(before, self.snapshot())
            waited = time.perf_counter() - t0
            if other is None or sum(other) < share * sample or waited >= limit:
                return waited

    def disturbed(self, before: Any, after: Any, wall: float) -> bool:
        other = self.foreign(before, after)
        # /proc counts in clock ticks (10 ms): allow two of them
        return other is not None and sum(other) > 0.1 * wall * self.cpus + 0.02


class RssSampler:
    """The peak resident memory of this process and all its descendants,
    sampled every 20 ms by a thread (psutil). RSS counts pages shared between
    processes (fork's copy-on-write, shared memory) once per process."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tree(self) -> int:
        total = 0
        for p in [self.me, *self.me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                pass
        return total

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.tree())

    def __enter__(self) -> RssSampler:
        self.base = self.tree()
        self.peak = self.base
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="bench-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, self.tree())


@dataclass
class Runs:
    """One tool's runs on one workload at one temperature."""

    times: list[float] = field(default_factory=list)
    disturbed: list[bool] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)  # bytes above the tree's RSS before the run
    records: list[Any] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # with each record: this thread's CPU seconds in the run

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    def listing(self) -> str:
        return " ".join(f"{t:.3f}" + ("*" if d else "") for t, d in zip(self.times, self.disturbed, strict=True))


@dataclass
class Outcome:
    """One tool on one workload."""

    tool: Tool
    cold: Runs = field(default_factory=Runs)
    warm: Runs = field(default_factory=Runs)
    skipped: str | None = None  # why it did not run (at all or any more)
    error: str | None = None
    wrong: list[str] = field(default_factory=list)
    rounds: int = 0
    max_rounds: int = 0
    note: str = ""
    first: FirstRun | None = None  # the magics: their first run right after %load_ext (an IPython shell here)
    first_in_kernel: FirstRun | None = None  # ... and in a new Jupyter kernel (Run All)
    first_failed: str = ""  # why they could not be measured

    def runs(self, temp: str) -> Runs:
        # A tool that keeps no pool runs once a round: those runs count as cold and warm.
        return self.cold if temp == "cold" or not self.tool.keeps_pool else self.warm


@dataclass
class Context:
    workers: int
    repeats: int
    cap: float
    meter: CpuMeter
    history: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=dict)  # (family, tool) -> sizes
    foreign: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # workload -> other CPU, steal, wall
    quiet_wait: float = 0.0  # at most this long before a tool's runs, wait for other processes to calm down
    quiet_budget: float = 0.0  # ... and this long in all
    waited: float = 0.0


def timed(tool: Tool, cold: bool, ctx: Context, runs: Runs, memory: bool) -> Any:
    tool.prepare()
    sampler = RssSampler() if memory else None
    before = ctx.meter.snapshot()
    with sampler if sampler is not None else contextlib.nullcontext():
        cpu = time.thread_time()  # (nbpar's loop runs in this thread: see Breakdown)
        t0 = time.perf_counter()
        value = tool.run(cold)
        wall = time.perf_counter() - t0
        cpu = time.thread_time() - cpu
    runs.times.append(wall)
    runs.disturbed.append(ctx.meter.disturbed(before, ctx.meter.snapshot(), wall))
    if sampler is not None:
        runs.peaks.append(sampler.peak - sampler.base)
    if tool.record is not None:
        runs.records.append(tool.record)
        runs.cpu.append(cpu)
        tool.record = None
    return value


def predicted(ctx: Context, wl: Workload, tool: Tool) -> float | None:
    """A tool's cold time on this size, from its times on smaller sizes of the
    same family (power law through the last two, at least linear)."""
    seen = sorted(ctx.history.get((wl.family, tool.key), []))
    if not seen:
        return None
    n = len(wl.tasks)
    (n1, t1), *rest = seen[-2:]
    exponent = 1.0
    if rest:
        n2, t2 = rest[0]
        if n2 > n1 and t1 > 0 and t2 > 0:
            exponent = max(1.0, math.log(t2 / t1) / math.log(n2 / n1))
        n1, t1 = n2, t2
    return t1 * (n / n1) ** exponent


def measure(wl: Workload, tools: list[Tool], ctx: Context) -> list[Outcome]:
    outcomes = [Outcome(tool) for tool in tools]
    rounds = min(ctx.repeats, wl.rounds or ctx.repeats)
    seq = outcomes[0]
    expected: Any = None
    for o in outcomes:
        why = o.tool.applies(wl)
        guess = predicted(ctx, wl, o.tool)
        if why is not None:
            o.skipped = why
        elif guess is not None and guess > ctx.cap and o.tool.key != "sequential" and o.tool.key not in NBPAR:
            o.skipped = f"predicted {guess:.0f} s from its smaller sizes, over the {ctx.cap:.0f} s cap"
    live = [o for o in outcomes if o.skipped is None]
    before = ctx.meter.snapshot()
    started = time.perf_counter()
    for o in live:
        try:
            o.tool.setup(wl)
        except Exception as e:
            o.error = f"setup: {type(e).__name__}: {e}"
    for o in live:
        o.max_rounds = rounds
        if o.tool.key == "kedro-thread" and not wl.thread and rounds > 1:
            o.max_rounds = 1
            o.note = "pure-Python CPU steps hold the GIL, so it runs them one at a time: one round"
    nbpar_process = next((o for o in live if o.tool.key == "nbpar-process"), None)
    for r in range(rounds):
        shift = r * -(-len(live) // max(rounds, 1))
        order = [seq] + [o for o in live[shift:] + live[:shift] if o is not seq]
        for o in order:
            if o.skipped is not None or o.error is not None or o.rounds >= o.max_rounds:
                continue
            try:
                o.tool.reset()
                if ctx.quiet_wait > 0 and ctx.waited < ctx.quiet_budget:
                    limit = min(ctx.quiet_wait, ctx.quiet_budget - ctx.waited)
                    ctx.waited += ctx.meter.wait_quiet(limit)
                value = timed(o.tool, True, ctx, o.cold, wl.memory)
                check(o, value, expected, "cold")
                if o.tool.keeps_pool and o.cold.times[-1] <= ctx.cap:
                    value = timed(o.tool, False, ctx, o.warm, wl.memory)
                    check(o, value, expected, "warm")
            except Exception as e:
                import traceback

                o.error = f"{type(e).__name__}: {e}"
                traceback.print_exc(file=sys.stderr)
            finally:
                try:
                    o.tool.after()
                except Exception as e:
                    o.error = o.error or f"closing: {type(e).__name__}: {e}"
            o.rounds += 1
            if o is seq and expected is None:
                expected = value if o.error is None else None
                if expected is None:
                    raise RuntimeError(f"{wl.name}: the sequential run failed: {o.error}")
            if o is seq or o.tool.key in NBPAR or not o.cold.times or o.rounds > 1:
                continue
            first = o.cold.times[0]
            nbpar_cold = nbpar_process.cold.times[0] if nbpar_process and nbpar_process.cold.times else math.inf
            if first > ctx.cap:
                o.skipped = f"its cold run took {first:.0f} s, over the {ctx.cap:.0f} s cap: one run, no warm run"
            elif rounds > 1 and (first > ctx.cap / 4 or (first > SLOW and first > 2 * nbpar_cold)):
                o.max_rounds = 1
                o.note = f"its cold run took {first:.1f} s: one round"
        print(f"    round {r + 1} of {rounds} done", file=sys.stderr, flush=True)
    for o in live:
        if isinstance(o.tool, NbparMagics) and o.error is None and o.warm.times:
            try:
                o.tool.first_after_load(timeout=2 * ctx.cap + 0.01 * len(wl.tasks))
            except Exception as e:  # (said in its line; the magics' times stand)
                o.tool.first_failed = f"{type(e).__name__}: {e}"
            o.first, o.first_in_kernel, o.first_failed = o.tool.first, o.tool.first_in_kernel, o.tool.first_failed
    other = ctx.meter.foreign(before, ctx.meter.snapshot())
    if other is not None:
        ctx.foreign[wl.name] = (other[0], other[1], time.perf_counter() - started)
    for o in outcomes:
        if o.note == "" and o.tool.note:
            o.note = o.tool.note
        if o.error is None and o.cold.times:
            ctx.history.setdefault((wl.family, o.tool.key), []).append((len(wl.tasks), o.cold.times[0]))
        try:
            if o in live:
                o.tool.teardown()
        except Exception as e:
            o.error = o.error or f"teardown: {type(e).__name__}: {e}"
    return outcomes


def check(o: Outcome, value: Any, expected: Any, temp: str) -> None:
    if expected is not None and not same(value, expected):
        o.wrong.append(f"{temp}: {value!r} instead of {expected!r}")


# -- reporting ----------------------------------------------------------------------------


def fmt(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t:.3f}" if t >= 0.1 else f"{t:.4f}"


def busy_share(result: Any, workers: int) -> float:
    """How busy the workers were over the run: step (or slice) time / (wall x workers)."""
    busy = 0.0
    for rec in result.steps.values():
        if rec.slices:
            busy += sum(s.end - s.start for s in rec.slices if s.start is not None and s.end is not None)
        elif rec.start is not None and rec.end is not None:
            busy += rec.end - rec.start
    return busy / (result.wall * workers) if result.wall else 0.0


def step_spans(result: Any) -> list[tuple[float, float, str]]:
    """(start, end, worker) of every step, or of every slice of a fanned-out one."""
    spans = []
    for rec in result.steps.values():
        for unit in rec.slices or [rec]:
            if unit.start is not None and unit.end is not None:
                spans.append((unit.start, unit.end, unit.worker or "?"))
    return spans


def union(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Intervals merged into disjoint ones, in order."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def overlap(xs: list[tuple[float, float]], ys: list[tuple[float, float]]) -> float:
    """The length of the intersection of two lists of disjoint, ordered intervals."""
    total, i, j = 0.0, 0, 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        total += max(0.0, b - a)
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return total


@dataclass
class Breakdown:
    """Where one nbpar run's wall time went; the parts sum to `wall`.

    The run loop runs in the thread that calls `Pipeline.run` (or runs the
    %parrun cell): the bench's. RunResult.waits says when it waited for its
    workers; the rest of the wall time it was busy. So, on the timeline of
    the run, each instant is one of:

    * kernel: the calling thread is not waiting for workers: planning,
      opening steps, pickling their inputs (submit), settling outcomes,
      writing outputs, merging, the text display, IPython's cell (magics).
      Split into its CPU time (time.thread_time of that thread over the run)
      and the rest, `kernel_off` (off CPU: preempted by other processes,
      waiting for the GIL that another thread of the kernel holds -- loky's,
      the channel's, the thread backend's workers -- or in a system call).
    * worker: the loop waits and at least one worker runs a step of the run
      (between the step's, or slice's, start and end as its worker took
      them: StepRecord/SliceRecord), i.e. the kernel waits on step code.
    * transport: the loop waits and no step runs anywhere: tasks and outcomes
      on their way (loky's queues and pipes, unpickling in the worker before
      a step and pickling after it, the outcome's unpickling in loky's thread
      in the kernel), a worker's own bookkeeping between the steps of a batch.

    `busy`: each worker's total step time (its share of the work, which may
    overlap the kernel part)."""

    wall: float
    kernel_cpu: float
    kernel_off: float
    worker: float
    transport: float
    busy: dict[str, float]

    @classmethod
    def of(cls, result: Any, wall: float, cpu: float) -> Breakdown:
        w = list(result.waits)
        waits = [(w[i], w[i + 1]) for i in range(0, len(w) - 1, 2)]
        waited = min(wall, sum(b - a for a, b in waits))
        spans = step_spans(result)
        worker = min(waited, overlap(waits, union((a, b) for a, b, _ in spans)))
        busy: dict[str, float] = {}
        for a, b, name in spans:
            busy[name] = busy.get(name, 0.0) + (b - a)
        kernel = wall - waited
        return cls(wall, min(cpu, kernel), max(0.0, kernel - cpu), worker, waited - worker, busy)

    def line(self, label: str) -> str:
        def part(name: str, t: float) -> str:
            return f"{name} {fmt(t)} s ({t / self.wall:.0%})" if self.wall else f"{name} {fmt(t)} s"

        parts = [
            part("worker", self.worker),
            part("transport", self.transport),
            part("kernel CPU", self.kernel_cpu),
            part("kernel off CPU", self.kernel_off),
        ]
        busy = " + ".join(fmt(t) for _, t in sorted(self.busy.items()))
        return f"{label} {fmt(self.wall)} s: {', '.join(parts)}; step time per worker {busy} s"


@dataclass
class Summary:
    wl: Workload
    outcomes: list[Outcome]
    ideal: float
    work: float
    path: float
    seq: float

    def by_key(self) -> dict[str, Outcome]:
        return {o.tool.key: o for o in self.outcomes}

    def median(self, key: str, temp: str) -> float | None:
        o = self.by_key().get(key)
        if o is None or o.skipped and not o.cold.times or o.error:
            return None
        return o.runs(temp).median

    def best_peer(self, temp: str) -> tuple[str, float] | None:
        peers = [
            (o.tool.label, o.runs(temp).median)
            for o in self.outcomes
            if o.tool.peer and o.tool.key not in NBPAR and not o.error and o.runs(temp).median is not None
        ]
        return min(peers, key=lambda p: p[1]) if peers else None


def summarize(wl: Workload, outcomes: list[Outcome], workers: int) -> Summary:
    seq = outcomes[0].tool
    assert isinstance(seq, Sequential)
    per_step = {t.name: min(r[t.name] for r in seq.per_step) for t in wl.tasks}
    ideal, total, path = wl.ideal(per_step, workers)
    seq_median = outcomes[0].cold.median
    assert seq_median is not None
    return Summary(wl, outcomes, ideal, total, path, seq_median)


def report_workload(s: Summary, workers: int, foreign: tuple[float, float, float] | None) -> None:
    wl = s.wl
    print(f"\n== {wl.name}: {wl.title} ({len(wl.tasks)} steps)")
    if foreign is not None:
        print(
            f"   meanwhile other processes used {foreign[0]:.1f} CPU-s and the hypervisor stole {foreign[1]:.1f} s "
            f"(of {foreign[2]:.0f} s x {os.cpu_count()} CPUs)"
        )
    print(
        f"   sequential {fmt(s.seq)} s; from each step's fastest time: work {fmt(s.work)} s, "
        f"critical path {fmt(s.path)} s, ideal on {workers} workers {fmt(s.ideal)} s"
    )
    width = max(len(o.tool.label) for o in s.outcomes) + 2
    print(f"   {'tool':<{width}} {'cold (s)':>9}  {'runs':<26} {'warm (s)':>9}  runs")
    for o in s.outcomes:
        name = o.tool.label
        if o.skipped is not None and not o.cold.times:
            print(f"   {name:<{width}} skipped: {o.skipped}")
            continue
        if o.error is not None:
            print(f"   {name:<{width}} FAILED: {o.error.splitlines()[0][:200]}")
            continue
        cold = f"{fmt(o.cold.median):>9}  {o.cold.listing():<26}"
        if o.tool.key == "sequential":
            warm = ""
        elif o.tool.keeps_pool:
            warm = f"{fmt(o.warm.median):>9}  {o.warm.listing()}"
        else:
            warm = f"{'=':>9}  (keeps no pool: every run is cold)"
        note = "".join(f"  [{n}]" for n in (o.skipped, o.note) if n)
        note += ("  WRONG: " + "; ".join(o.wrong)) if o.wrong else ""
        print(f"   {name:<{width}} {cold} {warm}{note}")
    for temp in ("cold", "warm"):
        best = s.best_peer(temp)
        parts = []
        for key in NBPAR:
            t = s.median(key, temp)
            if t is None:
                continue
            o = s.by_key()[key]
            line = f"{o.tool.label} {fmt(t)} s: {s.ideal and t / s.ideal:.2f}x the ideal"
            if best is not None:
                ratio = best[1] / t
                line += f", best peer {best[0]} {fmt(best[1])} s = {ratio:.2f}x " + (
                    "(nbpar ahead)" if ratio >= 1 else "(PEER FASTER)"
                )
            if wl.overhead:
                line += f", {(t - s.seq) / len(wl.tasks) * 1000:.3f} ms/step over sequential"
            if wl.memory:
                peaks = o.runs(temp).peaks
                if peaks:
                    peak = statistics.median(peaks)
                    line += f", peak RSS +{peak / 1e6:.0f} MB ({peak / wl.size_bytes:.1f} arrays)"
            records = o.runs(temp).records
            if records and not wl.overhead:
                line += f", workers {statistics.median(busy_share(r, workers) for r in records):.0%} busy"
            parts.append(line)
        for line in parts:
            print(f"   {temp}: {line}")
    for line in where_time_goes(s):
        print(f"   {line}")
    if wl.memory:
        for temp in ("cold", "warm"):
            cells = []
            for o in s.outcomes:
                peaks = o.runs(temp).peaks
                if peaks and (temp == "cold" or o.tool.keeps_pool):
                    cells.append(f"{o.tool.label} +{statistics.median(peaks) / 1e6:.0f} MB")
            print(f"   peak RSS of the process tree above its size before the run, {temp}: " + ", ".join(cells))


def where_time_goes(s: Summary) -> list[str]:
    """A Breakdown of each nbpar variant's median warm run, and the magics'
    first run after %load_ext."""
    lines = []
    for key in NBPAR:
        o = s.by_key().get(key)
        if o is None or o.error or not o.warm.records or len(o.warm.records) != len(o.warm.times):
            continue
        runs = o.warm
        middle = sorted(range(len(runs.times)), key=runs.times.__getitem__)[(len(runs.times) - 1) // 2]
        split = Breakdown.of(runs.records[middle], runs.times[middle], runs.cpu[middle])
        lines.append(split.line(o.tool.label + " warm"))
        if o.first is not None:
            lines.append(o.first.line("IPython shell in this process"))
        if o.first_in_kernel is not None:
            lines.append(o.first_in_kernel.line("new Jupyter kernel, Run All"))
        if o.first_failed:
            lines.append(f"magics first run after %load_ext: NOT MEASURED: {o.first_failed.splitlines()[0][:200]}")
    return lines


COLUMNS = [
    ("nbpar-process", "nbpar"),
    ("nbpar-magics", "magics"),
    ("nbpar-thread", "nbpar thread"),
    ("kedro-parallel", "kedro PR"),
    ("kedro-thread", "kedro TR"),
    ("kedro-multinode", "kedro multinode"),
    ("dask-processes", "dask proc."),
    ("dask-distributed", "dask distr."),
    ("joblib", "joblib"),
]


def table(summaries: list[Summary], temp: str) -> list[str]:
    """A Markdown table of the medians at one temperature, one row per workload."""
    keys = [(k, h) for k, h in COLUMNS if any(s.median(k, temp) is not None for s in summaries)]
    head = ["workload", "sequential", "ideal", *(h for _, h in keys), "best peer / nbpar", "nbpar / ideal"]
    rows = []
    for s in summaries:
        nb = s.median("nbpar-process", temp)
        best = s.best_peer(temp)
        row = [s.wl.name, fmt(s.seq), fmt(s.ideal)]
        for k, _ in keys:
            o = s.by_key().get(k)
            t = s.median(k, temp)
            cell = fmt(t)
            if o is not None and o.wrong:
                cell += " WRONG"
            elif o is not None and o.error:
                cell = "failed"
            elif o is not None and t is None and o.skipped:
                cell = "skipped"
            row.append(cell)
        row.append(f"{best[1] / nb:.2f}" if nb and best else "-")
        row.append(f"{nb / s.ideal:.2f}" if nb and s.ideal else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


FIRST_SLACK = 0.005  # s: a first run "waits for no pool start" if its first step is this close to the next run's


def targets(summaries: list[Summary]) -> list[str]:
    """The issue's targets, each met or missed by how much (nbpar process, and the magics)."""
    by = {s.wl.name: s for s in summaries}
    out: list[str] = []

    def verdict(ok: bool, text: str) -> None:
        out.append(("  met    " if ok else "  MISSED ") + text)

    for name in ("cpu", "slices"):
        s = by.get(name)
        if s is None:
            continue
        t = s.median("nbpar-process", "warm")
        if t is not None:
            verdict(t / s.ideal <= 1.10, f"{name}: warm nbpar within 1.10x of the ideal: {t / s.ideal:.2f}x")
    for s in summaries:
        if s.wl.family == "tiny" or s.wl.name == "chain":
            for key, limit in (("nbpar-process", 1.0), ("nbpar-magics", 1.0), ("nbpar-thread", 0.2)):
                t = s.median(key, "warm")
                if t is None:
                    continue
                per = (t - s.seq) / len(s.wl.tasks) * 1000
                verdict(per < limit, f"{s.wl.name}: warm {key} under {limit:g} ms/step: {per:.3f} ms")
    for s in summaries:
        o = s.by_key().get("nbpar-magics")
        if o is None:
            continue
        if o.first_failed:
            verdict(False, f"{s.wl.name}: a %parrun right after %load_ext: not measured: {o.first_failed[:200]}")
        for first, where in ((o.first, "IPython shell"), (o.first_in_kernel, "Jupyter kernel, Run All")):
            if first is not None:
                verdict(
                    first.warm and first.waiting <= FIRST_SLACK,
                    f"{s.wl.name}: a %parrun right after %load_ext waits for no pool start ({where}): "
                    f"{first.waiting:.3f} s waiting for workers (pool warm: {'yes' if first.warm else 'no'})",
                )
    s = by.get("array")
    if s is not None:
        t = s.median("nbpar-process", "warm")
        if t is not None:
            verdict(t <= 3 * s.seq, f"array: warm nbpar within 3x of sequential: {t / s.seq:.2f}x")
    for s in summaries:
        for temp in ("cold", "warm"):
            t = s.median("nbpar-process", temp)
            best = s.best_peer(temp)
            if t is None or best is None:
                continue
            verdict(
                best[1] >= t,
                f"{s.wl.name}, {temp}: nbpar ahead of every peer: best peer {best[0]} {fmt(best[1])} s, "
                f"nbpar {fmt(t)} s ({best[1] / t:.2f}x)",
            )
    return out


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("nbpar", "loky", "cloudpickle", "ipython", "joblib", "dask", "distributed", "kedro"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def nbpar_source() -> str:
    """Which nbpar was measured: the git commit of its checkout, and whether
    nbpar/ had uncommitted changes (read-only git commands)."""
    import subprocess

    try:
        import nbpar

        root = os.path.dirname(os.path.dirname(os.path.abspath(nbpar.__file__)))
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(  # GIT_OPTIONAL_LOCKS=0: do not even refresh the index
            ["git", "status", "--porcelain", "--", "nbpar"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        ).stdout.strip()
    except Exception as e:  # nbpar does not import, or no git
        return f"unknown ({type(e).__name__})"
    if not head:
        return root
    return f"git {head}" + (" + uncommitted changes in nbpar/" if dirty else "")


def ceiling(workers: int, loops: int) -> float:
    """How much more work `workers` bare processes spinning at once do than
    one process in the same time, on this machine now (best of 2 tries): the
    speed-up no tool can beat here (vCPUs that share a physical core give
    less than `workers`)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    best = 0.0
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(work.double, range(workers)))  # started
        for _ in range(2):
            alone = work.timed_spin(loops)
            t0 = time.perf_counter()
            list(pool.map(work.timed_spin, [loops] * workers))
            best = max(best, alone * workers / (time.perf_counter() - t0))
    return best


def calibrate() -> float:
    """spin loops per second on one core now (median of 5 tries of ~0.1 s: this
    VM's speed drifts, and the fastest try made ~1 s steps last 1.5 s once)."""
    loops = 600_000
    return loops / statistics.median(work.timed_spin(loops) for _ in range(5))


# -- main ---------------------------------------------------------------------------------

LOGGING_YAML = """\
version: 1
disable_existing_loggers: false
handlers: {console: {class: logging.StreamHandler, level: WARNING}}
root: {handlers: [console], level: WARNING}
"""


def quiet(scratch: str) -> None:
    """Kedro logs every node at INFO level: keep WARNING and up. It reads its
    logging configuration when kedro.framework.project is imported."""
    import logging

    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if "KEDRO_LOGGING_CONFIG" not in os.environ:
        path = os.path.join(scratch, "logging.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(LOGGING_YAML)
        os.environ["KEDRO_LOGGING_CONFIG"] = path
    with contextlib.suppress(ImportError):
        import kedro.framework.project  # noqa: F401
    for name in ("kedro", "kedro_partitioned", "py.warnings", "distributed", "nbpar"):
        logging.getLogger(name).setLevel(logging.WARNING)


REGISTERED = 500  # %%step cells the registration measurement runs


def registration(rounds: int) -> tuple[float, float]:
    """Median seconds to run REGISTERED `%%step` cells in a real IPython
    shell (nbpar loaded; each round new names), and the same cells' bodies
    as plain cells: IPython's own share. Not a race: no peer has cells."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)

    def cell(text: str) -> None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if not shell.run_cell(text).success:
                raise RuntimeError(f"cell failed: {text.splitlines()[0]!r}")

    cell("%load_ext nbpar")
    for thread in threading.enumerate():  # the pool %load_ext starts: its CPU is not the cells'
        if thread.name == "nbpar-warm-up":
            thread.join(60)
    steps, plain = [], []
    try:
        for r in range(rounds):
            start = time.perf_counter()
            for i in range(REGISTERED):
                cell(f"%%step reg{r}_{i}\nreg{r}_{i} = {i} * 2\n")
            steps.append(time.perf_counter() - start)
            start = time.perf_counter()
            for i in range(REGISTERED):
                cell(f"plain{r}_{i} = {i} * 2\n")
            plain.append(time.perf_counter() - start)
    finally:
        cell("%unload_ext nbpar")
        for name in [n for n in shell.user_ns if n.startswith(("reg", "plain"))]:
            del shell.user_ns[name]
    return statistics.median(steps), statistics.median(plain)


def selected(name: str, wanted: list[str] | None) -> bool:
    """`--only tiny` selects tiny-100, tiny-1000, ...; `--tools kedro` every kedro-* tool."""
    return not wanted or any(name == w or name.startswith(w + "-") for w in wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and one round (~1-2 min)")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="WORKLOAD",
        help="cpu, tiny (or tiny-1000, ...), array, frames, slices, chain, wide-narrow, registration",
    )
    parser.add_argument(
        "--tools",
        nargs="+",
        metavar="TOOL",
        help="nbpar (or nbpar-process, nbpar-magics, nbpar-thread), kedro (kedro-parallel, kedro-thread, "
        "kedro-multinode), dask (dask-processes, dask-distributed), joblib; sequential always runs",
    )
    parser.add_argument("--workers", type=int, default=None, help="workers of every tool (default: loky.cpu_count())")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 3, 1 with --quick)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=3.0,
        help="before each tool's cold run, wait up to this long (s) for other processes to leave the CPUs "
        "(at most 25 times that in all; 0: never wait)",
    )
    parser.add_argument("--cap", type=float, default=None, help="skip a tool on a workload past this (s; 60, quick 10)")
    args = parser.parse_args(argv)

    os.environ["PYTHONPATH"] = HERE + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    import tempfile

    scratch = tempfile.TemporaryDirectory(prefix="nbpar-bench-")
    quiet(scratch.name)
    import loky

    import nbpar  # noqa: F401  (imports before any timing, for every tool)

    for module in (
        "kedro.runner",
        "kedro.io",
        "dask",
        "dask.multiprocessing",
        "distributed",
        "joblib",
        "psutil",
        "pandas",
    ):
        with contextlib.suppress(ImportError):
            __import__(module)

    workers = args.workers or loky.cpu_count()
    repeats = args.repeats or (1 if args.quick else 3)
    cap = args.cap or (10.0 if args.quick else 60.0)
    started = time.perf_counter()
    load_before = os.getloadavg()
    rate = calibrate()
    size = SIZES["quick" if args.quick else "full"]
    chosen = [wl for wl in workloads(size, rate) if selected(wl.name, args.only)]
    register = selected("registration", args.only)
    if not chosen and not register:
        parser.error(f"no workload matches --only {' '.join(args.only or [])}")

    now = datetime.datetime.now().astimezone()
    print(f"nbpar benchmark, {now:%Y-%m-%d %H:%M %Z}, {'quick' if args.quick else 'full'} sizes")
    print(
        f"machine: {platform.platform()}; os.cpu_count()={os.cpu_count()}, "
        f"usable={len(os.sched_getaffinity(0))}, loky.cpu_count()={loky.cpu_count()}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + f" (nbpar from {nbpar_source()})")
    print(
        f"workers={workers}, median of {repeats} round(s) (tiny-10000: 1), cap {cap:.0f} s per cold run; "
        f"calibration: {rate / 1e6:.2f} M spin loops/s on one core"
    )
    print(
        f"machine ceiling: {workers} processes spinning at once did {ceiling(workers, int(rate / 2)):.2f}x the work "
        "of one in the same time (best of 2 tries of 0.5 s): the best speed-up any tool can show here"
    )

    tools = []
    for tool in make_tools(workers):
        if tool.key != "sequential" and not selected(tool.key, args.tools):
            continue
        why = tool.missing()
        if why is not None:
            print(f"note: {tool.label} skipped: {why}")
            continue
        tools.append(tool)
    sys.stdout.flush()

    ctx = Context(workers, repeats, cap, CpuMeter(), quiet_wait=args.quiet_wait, quiet_budget=25 * args.quiet_wait)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops every pool
    summaries: list[Summary] = []
    try:
        for wl in chosen:
            print(f"  {wl.name} ...", file=sys.stderr, flush=True)
            outcomes = measure(wl, tools, ctx)
            summary = summarize(wl, outcomes, workers)
            summaries.append(summary)
            report_workload(summary, workers, ctx.foreign.get(wl.name))
            sys.stdout.flush()
    finally:
        for tool in tools:
            with contextlib.suppress(Exception):
                tool.after()  # a dask cluster still up
                if isinstance(tool, NbparMagics):
                    tool.close()
                if isinstance(tool, Joblib):
                    tool.reset()
        stop_nbpar_pool()
        scratch.cleanup()

    registered = None
    if register:
        print("  registration ...", file=sys.stderr, flush=True)
        registered = registration(repeats)
        print(
            f"\n== registration: {REGISTERED} %%step cells run in a real IPython shell, median of {repeats}: "
            f"{registered[0]:.3f} s ({registered[0] / REGISTERED * 1000:.2f} ms a cell); the same cells without "
            f"%%step: {registered[1]:.3f} s"
        )
    if summaries:
        for temp in ("cold", "warm"):
            print(f"\nMedian wall time in seconds, {temp}; best peer / nbpar > 1: nbpar (process) is faster")
            print()
            print("\n".join(table(summaries, temp)))
    print("\nTargets (nbpar process unless named):")
    if summaries:
        print("\n".join(targets(summaries)))
    if registered is not None:
        ok = registered[0] < 1.0
        verdict = "  met    " if ok else "  MISSED "
        print(verdict + f"registering {REGISTERED} %%step cells under 1 s: {registered[0]:.3f} s")

    failed = [
        f"{s.wl.name}/{o.tool.label}: " + ("; ".join(o.wrong) if o.wrong else str(o.error))
        for s in summaries
        for o in s.outcomes
        if o.wrong or o.error
    ]
    if failed:
        print("\nWRONG OR FAILED:\n  " + "\n  ".join(failed))
    disturbed = sum(sum(r.disturbed) for s in summaries for o in s.outcomes for r in (o.cold, o.warm))
    timed_runs = sum(len(r.times) for s in summaries for o in s.outcomes for r in (o.cold, o.warm))
    load_after = os.getloadavg()
    print(
        f"\n{disturbed} of {timed_runs} timed runs were disturbed by other processes (marked *); waited "
        f"{ctx.waited:.0f} s in all for them to calm down; load average "
        f"before {' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in load_after)}; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
