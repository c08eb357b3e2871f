"""nbpar vs Kedro's runners on the pipelines Kedro users write.

    .venv/bin/python benchmarks/bench_kedro.py [--workers N] [--quick] [--repeats R] [--only WORKLOAD]

Needs `kedro` (pip install -e '.[bench]'). The `multinode` workload also
needs `kedro-partitioned`, which pins kedro<0.20: `pip install
kedro-partitioned` would downgrade kedro 1.x to 0.19 (and pandas). To try it
beside kedro 1.x, install it without its pins:

    .venv/bin/pip install --no-deps kedro-partitioned kedro-datasets lazy_loader "universal-pathlib<1" pathlib_abc

When it does not import, the workload is skipped with the reason printed.

Each pipeline is built natively in Kedro (functions wrapped in `node`s, a
`Pipeline`, a `DataCatalog` of `MemoryDataset`s, `runner.run(pipeline,
catalog)`: no project, no session, no hooks) and as nbpar steps
(`Pipeline.add_step`, what `%%step` registers):

* diamond:   load -> (evens, odds) -> total; `rows` is a list of ~2M ints,
             evens and odds ~0.6 s of pure-Python CPU each (as bench_core.py).
* wide:      8 independent prime counts of ~0.5 s each, then a join.
* multinode: kedro-partitioned's step parallelism: `multinode(func,
             partitioned_input, ...)` over 16 partitions of ~0.25 s of CPU
             each (a folder of 16 JSON files, loaded lazily in the workers),
             with n_slices=16 and with its default n_slices (the CPU count),
             plus a join node merging the slices' dicts; nbpar: one step
             `--over parts --slices 16` over `nbpar.partitions(folder)`.
* empty:     the wide pipeline (9 nodes) with count_primes(~10): no work, so
             the wall time is what a run costs besides the work.

Kedro runners, measured as users get them:

* SequentialRunner: one process. MemoryDataset deep-copies a list on every
  save and load (its default copy_mode for non-NumPy/pandas data).
* ParallelRunner(max_workers=N): a new `ParallelRunner` per run (which starts a
  multiprocessing Manager process holding the shared MemoryDatasets) with a
  `SharedMemoryDataCatalog`; every run also starts a fresh
  ProcessPoolExecutor (Kedro does that inside `run`), so no Kedro run is
  ever warm. Also timed, except on multinode, with one runner reused for
  every run (the Manager started once; the pool is still new per run).

nbpar: the process backend, warm (its pool is started by a warm-up run on a
tiny input, as in a notebook after the first %parrun). Kedro's own INFO
logging (a few lines per node) is turned off (WARNING, through
KEDRO_LOGGING_CONFIG) to keep the output readable; telemetry is disabled
through its environment variables. Kedro's pools start with its default
context (fork on Linux; KEDRO_MP_CONTEXT changes it).

Best of R timed runs (R=3, 1 with --quick) after an untimed warm-up on a tiny
input; rounds interleave the tools, each round starting at another tool;
runs disturbed by other processes are marked * (see bench_core.py). Ratios are `tool time / nbpar process time`:
above 1 means nbpar is faster.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
LOGGING_YAML = """\
version: 1
disable_existing_loggers: false
handlers: {console: {class: logging.StreamHandler, level: WARNING}}
root: {handlers: [console], level: WARNING}
"""
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import add, count_primes, digit_sum, finish, make_rows, table  # noqa: E402
from bench_fanout import CpuMeter, Timing, measure, nbpar_source, spin  # noqa: E402
from bench_fanout import versions as package_versions  # noqa: E402

# -- the work: module-level functions (Kedro pickles nodes by reference) ------


def evens_of(rows: list[int]) -> int:
    return digit_sum(rows, 0)


def odds_of(rows: list[int]) -> int:
    return digit_sum(rows, 1)


def sum_all(*values: int) -> int:
    return sum(values)


def crunch(part: dict[str, int]) -> int:
    """One partition's work: ~0.25 s of pure-Python CPU."""
    return spin(part["seed"], part["loops"])


def load_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def join_slices(*slices: dict[str, int]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for s in slices:
        merged.update(s)
    return merged


# -- sizes ----------------------------------------------------------------------

SIZES = {
    "full": {"rows": 2_000_000, "primes": 200_000, "loops": 1_600_000},
    "quick": {"rows": 600_000, "primes": 60_000, "loops": 500_000},
}
WIDE = 8
PARTS = 16


@dataclass
class Sizes:
    rows: int
    primes: int
    loops: int


# -- the tools ----------------------------------------------------------------------


def quiet_kedro(scratch: str) -> None:
    """Kedro logs every node at INFO level (with rich): keep WARNING and up only.
    It reads its logging configuration when kedro.framework.project is imported."""
    import logging

    if "KEDRO_LOGGING_CONFIG" not in os.environ:
        path = os.path.join(scratch, "logging.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(LOGGING_YAML)
        os.environ["KEDRO_LOGGING_CONFIG"] = path
    import kedro.framework.project  # noqa: F401

    for name in ("kedro", "kedro_partitioned", "py.warnings"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Kedro:
    """Runs a Kedro pipeline whose inputs are MemoryDatasets."""

    def __init__(self, workers: int) -> None:
        from kedro.runner import ParallelRunner

        self.workers = workers
        self.reused = ParallelRunner(max_workers=workers)

    def sequential(self, pipeline: Any, inputs: Callable[[Any], dict[str, Any]], out: str) -> Callable[[Any], Any]:
        from kedro.io import DataCatalog, MemoryDataset
        from kedro.runner import SequentialRunner

        def run(data: Any) -> Any:
            catalog = DataCatalog({k: MemoryDataset(v) for k, v in inputs(data).items()})
            return SequentialRunner().run(pipeline, catalog)[out].load()

        return run

    def parallel(
        self, pipeline: Any, inputs: Callable[[Any], dict[str, Any]], out: str, reuse: bool
    ) -> Callable[[Any], Any]:
        from kedro.io import MemoryDataset, SharedMemoryDataCatalog
        from kedro.runner import ParallelRunner

        def run(data: Any) -> Any:
            catalog = SharedMemoryDataCatalog({k: MemoryDataset(v) for k, v in inputs(data).items()})
            runner = self.reused if reuse else ParallelRunner(max_workers=self.workers)
            value = runner.run(pipeline, catalog)[out].load()  # before the runner's Manager stops
            del runner  # a new runner's Manager process is shut down here (ParallelRunner.__del__)
            return value

        return run

    def close(self) -> None:
        del self.reused


class Nbpar:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pipelines: list[Any] = []

    def runner(
        self, namespace: dict[str, Any], steps: list[dict[str, Any]], inputs: Callable[[Any], dict[str, Any]], out: str
    ) -> Callable[[Any], Any]:
        import nbpar

        p = nbpar.Pipeline(namespace=dict(namespace))
        for step in steps:
            p.add_step(**step)
        self.pipelines.append(p)

        def run(data: Any) -> Any:
            p.namespace.update(inputs(data))
            result = p.run(workers=self.workers, backend="process", force=True)
            if not all(r.status == "done" for r in result.steps.values()):
                raise RuntimeError(f"nbpar: not every step ran: {result!r}")
            return p.namespace[out], result

        return run

    def close(self) -> None:
        for p in self.pipelines:
            p.shutdown()


# -- the workloads --------------------------------------------------------------------


def diamond(kedro: Kedro, nb: Nbpar, sz: Sizes, repeats: int, meter: CpuMeter) -> list[Timing]:
    from kedro.pipeline import Pipeline, node

    pipeline = Pipeline(
        [
            node(make_rows, "n", "rows", name="load"),
            node(evens_of, "rows", "evens", name="evens"),
            node(odds_of, "rows", "odds", name="odds"),
            node(add, ["evens", "odds"], "total", name="total"),
        ]
    )

    def inputs(n: int) -> dict[str, Any]:
        return {"n": n}

    def sequential(n: int) -> int:
        rows = make_rows(n)
        return add(evens_of(rows), odds_of(rows))

    steps = [
        {"name": "load", "source": "rows = make_rows(n)"},
        {"name": "evens", "source": "evens = evens_of(rows)"},
        {"name": "odds", "source": "odds = odds_of(rows)"},
        {"name": "total", "source": "total = evens + odds"},
    ]
    ns = {"make_rows": make_rows, "evens_of": evens_of, "odds_of": odds_of}
    return measure(
        [
            ("sequential", sequential),
            ("kedro SequentialRunner", kedro.sequential(pipeline, inputs, "total")),
            ("kedro ParallelRunner", kedro.parallel(pipeline, inputs, "total", reuse=False)),
            ("kedro ParallelRunner, reused", kedro.parallel(pipeline, inputs, "total", reuse=True)),
            ("nbpar process", nb.runner(ns, steps, inputs, "total")),
        ],
        sz.rows,
        1000,
        repeats,
        meter,
    )


def wide(kedro: Kedro, nb: Nbpar, sz: Sizes, repeats: int, meter: CpuMeter, primes: int | None = None) -> list[Timing]:
    from kedro.pipeline import Pipeline, node

    pipeline = Pipeline(
        [node(count_primes, f"limit_{k}", f"part_{k}", name=f"part{k}") for k in range(WIDE)]
        + [node(sum_all, [f"part_{k}" for k in range(WIDE)], "total", name="total")]
    )

    def inputs(primes: int) -> dict[str, Any]:
        return {f"limit_{k}": primes + 1000 * k for k in range(WIDE)}

    def sequential(primes: int) -> int:
        return sum_all(*(count_primes(lim) for lim in inputs(primes).values()))

    steps = [{"name": f"part{k}", "source": f"part_{k} = count_primes(limit_{k})"} for k in range(WIDE)]
    steps.append({"name": "total", "source": "total = sum([" + ", ".join(f"part_{k}" for k in range(WIDE)) + "])"})
    return measure(
        [
            ("sequential", sequential),
            ("kedro SequentialRunner", kedro.sequential(pipeline, inputs, "total")),
            ("kedro ParallelRunner", kedro.parallel(pipeline, inputs, "total", reuse=False)),
            ("kedro ParallelRunner, reused", kedro.parallel(pipeline, inputs, "total", reuse=True)),
            ("nbpar process", nb.runner({"count_primes": count_primes}, steps, inputs, "total")),
        ],
        sz.primes if primes is None else primes,
        1000,
        repeats,
        meter,
    )


def empty(kedro: Kedro, nb: Nbpar, sz: Sizes, repeats: int, meter: CpuMeter) -> list[Timing]:
    """The wide pipeline with (almost) no work: what a run costs besides the work."""
    return wide(kedro, nb, sz, repeats, meter, primes=10)


def kedro_partitioned_problem() -> str | None:
    """Why kedro-partitioned cannot be used here, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("kedro-partitioned")
    except PackageNotFoundError:
        return (
            "kedro-partitioned is not installed (it pins kedro<0.20, so `pip install kedro-partitioned` would "
            "downgrade kedro; see this script's docstring for the --no-deps install)"
        )
    try:
        from kedro_partitioned.pipeline import multinode  # noqa: F401
    except Exception as e:
        return (
            f"kedro-partitioned {installed} does not import against kedro {version('kedro')}: {type(e).__name__}: {e}"
        )
    return None


def multinode_workload(kedro: Kedro, nb: Nbpar, sz: Sizes, repeats: int, meter: CpuMeter) -> list[Timing]:
    from kedro.pipeline import Pipeline, node
    from kedro_partitioned.pipeline import multinode

    import nbpar

    def pipeline(n_slices: int) -> Any:
        fanned = multinode(
            func=crunch, partitioned_input="parts", partitioned_output="out", name="crunch", n_slices=n_slices
        )
        join = node(join_slices, [f"out-slice-{i}" for i in range(n_slices)], "merged", name="join")
        return fanned + Pipeline([join])

    folders: dict[int, str] = {}
    scratch = tempfile.TemporaryDirectory(prefix="nbpar-bench-kedro-")

    def folder(loops: int) -> str:
        """A folder of PARTS JSON files {"seed": k, "loops": loops}, made once per size."""
        if loops not in folders:
            path = os.path.join(scratch.name, str(loops))
            os.makedirs(path)
            for k in range(PARTS):
                with open(os.path.join(path, f"part-{k:02d}.json"), "w", encoding="utf-8") as f:
                    json.dump({"seed": k + 1, "loops": loops}, f)
            folders[loops] = path
        return folders[loops]

    def kedro_inputs(loops: int) -> dict[str, Any]:
        # What PartitionedDataset.load gives: partition name -> a function that loads it.
        parts = nbpar.partitions(folder(loops))
        return {"parts": {name: functools.partial(load_json, p.path) for name, p in parts.items()}}

    def nbpar_inputs(loops: int) -> dict[str, Any]:
        return {"parts": nbpar.partitions(folder(loops))}

    def sequential(loops: int) -> dict[str, int]:
        return {name: crunch(load()) for name, load in kedro_inputs(loops)["parts"].items()}

    default = int(os.environ.get("MAX_NODES", 1)) * int(os.environ.get("MAX_WORKERS", os.cpu_count() or 1))
    step = {
        "name": "crunch",
        "source": "merged = {name: crunch(part()) for name, part in parts.items()}",
        "over": "parts",
        "slices": PARTS,
    }
    try:
        return measure(
            [
                ("sequential", sequential),
                ("kedro SequentialRunner", kedro.sequential(pipeline(PARTS), kedro_inputs, "merged")),
                ("kedro ParallelRunner", kedro.parallel(pipeline(PARTS), kedro_inputs, "merged", reuse=False)),
                (
                    f"kedro ParallelRunner, n_slices={default}",
                    kedro.parallel(pipeline(default), kedro_inputs, "merged", reuse=False),
                ),
                ("nbpar process", nb.runner({"crunch": crunch}, [step], nbpar_inputs, "merged")),
            ],
            sz.loops,
            1000,
            repeats,
            meter,
        )
    finally:
        scratch.cleanup()


Workload = Callable[[Kedro, Nbpar, Sizes, int, CpuMeter], list[Timing]]
WORKLOADS: dict[str, Workload] = {"diamond": diamond, "wide": wide, "multinode": multinode_workload, "empty": empty}
TOOL_ORDER = [
    "sequential",
    "kedro SequentialRunner",
    "kedro ParallelRunner",
    "kedro ParallelRunner, reused",
    "kedro ParallelRunner, n_slices=default",
    "nbpar process",
]


def row_name(tool: str) -> str:
    if tool.startswith("kedro ParallelRunner, n_slices="):
        return "kedro ParallelRunner, n_slices=default"
    return tool


# -- reporting --------------------------------------------------------------------


def versions() -> dict[str, str]:
    return package_versions(("nbpar", "kedro", "kedro-partitioned", "loky", "cloudpickle"))


def verdict(name: str, timings: list[Timing]) -> str:
    by = {row_name(t.tool): t.best for t in timings}
    nb, seq = by["nbpar process"], by["sequential"]
    kp = by["kedro ParallelRunner"]
    if name == "empty":
        return (
            f"empty: a run of 9 nodes that do nothing takes nbpar process {nb * 1000:.0f} ms, Kedro's "
            f"ParallelRunner {kp * 1000:.0f} ms ({by['kedro ParallelRunner, reused'] * 1000:.0f} ms with the "
            f"runner reused), SequentialRunner {by['kedro SequentialRunner'] * 1000:.0f} ms."
        )
    vs_seq = f"{seq / nb:.2f}x faster than sequential" if seq >= nb else f"{nb / seq:.2f}x SLOWER than sequential"
    vs_kedro = f"{kp / nb:.2f}x faster than" if kp >= nb else f"{nb / kp:.2f}x SLOWER than"
    return (
        f"{name}: nbpar process {nb:.3f} s, {vs_seq}, {vs_kedro} Kedro's ParallelRunner ({kp:.3f} s, "
        f"{seq / kp:.2f}x sequential)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: loky.cpu_count())")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and one timed run (~40 s)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per tool (default 3, 1 with --quick)")
    parser.add_argument("--only", choices=list(WORKLOADS), action="append", help="run only this workload (repeatable)")
    args = parser.parse_args(argv)

    import loky

    try:
        import kedro  # noqa: F401
    except ImportError:
        print("kedro is not installed: pip install -e '.[bench]' (or pip install kedro)", file=sys.stderr)
        return 2
    scratch = tempfile.TemporaryDirectory(prefix="nbpar-bench-kedro-")
    quiet_kedro(scratch.name)

    workers = args.workers or loky.cpu_count()
    repeats = args.repeats or (1 if args.quick else 3)
    sz = Sizes(**SIZES["quick" if args.quick else "full"])
    started = time.perf_counter()
    load_before = os.getloadavg()

    now = datetime.datetime.now().astimezone()
    print(f"nbpar vs Kedro benchmark, {now:%Y-%m-%d %H:%M %Z}, {'quick' if args.quick else 'full'} sizes")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}; "
        f"os.cpu_count()={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}, loky.cpu_count()={loky.cpu_count()}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + f" (nbpar from {nbpar_source()})")
    import multiprocessing

    print(
        f"workers={workers}, best of {repeats} timed run(s) after a warm-up on a tiny input; "
        f"diamond rows={sz.rows:,}, wide {WIDE} x count_primes(~{sz.primes:,}), "
        f"multinode {PARTS} partitions x {sz.loops:,} loops; Kedro's pools start with "
        f"{os.environ.get('KEDRO_MP_CONTEXT') or multiprocessing.get_start_method()}"
    )
    workloads = dict(WORKLOADS)
    problem = kedro_partitioned_problem()
    if problem is not None:
        workloads.pop("multinode")
        if not args.only or "multinode" in args.only:
            print(f"SKIPPED multinode: {problem}")
    else:
        from importlib.metadata import requires

        pins = [r for r in requires("kedro-partitioned") or [] if r.split(" ")[0] == "kedro"]
        if pins:
            print(
                f"note: kedro-partitioned declares {pins[0]!r}; it runs here beside kedro {versions()['kedro']} "
                "(installed with --no-deps)"
            )
    print()

    meter = CpuMeter()
    kedro_tools, nb = Kedro(workers), Nbpar(workers)
    results: dict[str, list[Timing]] = {}
    try:
        for name, workload in workloads.items():
            if args.only and name not in args.only:
                continue
            print(f"  {name}:", flush=True)
            before, t0 = meter.snapshot(), time.perf_counter()
            timings = workload(kedro_tools, nb, sz, repeats, meter)
            other = meter.foreign(before, meter.snapshot())
            if other is not None:
                print(
                    f"    meanwhile other processes used {other[0]:.1f} CPU-s, the hypervisor stole "
                    f"{other[1]:.1f} s (of {time.perf_counter() - t0:.0f} s x {os.cpu_count()} CPUs)",
                    flush=True,
                )
            expected = timings[0].value
            for t in timings:
                t.wrong = t.value != expected
            results[name] = timings
    finally:
        nb.close()
        kedro_tools.close()
        scratch.cleanup()

    if not results:
        return 0
    print()
    print(f"Wall time in seconds (best of {repeats}); ratio = tool / nbpar process (>1: nbpar faster)")
    print()
    print("\n".join(table(results, TOOL_ORDER, row_name, digits=3)))
    print()
    for name, timings in results.items():
        print(verdict(name, timings))
    return finish(results, load_before, started)


if __name__ == "__main__":
    sys.exit(main())
