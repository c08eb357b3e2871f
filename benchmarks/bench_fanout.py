"""Step parallelism: one step fanned out over slices of its input, nbpar vs the usual ways.

    .venv/bin/python benchmarks/bench_fanout.py [--workers N] [--quick] [--repeats R] [--only WORKLOAD]

Four workloads, each run by every tool on the same input, written the way
that tool is normally used (nbpar: `Pipeline.add_step(..., over=VAR)`, what
`%%step NAME --over VAR` registers, on the process backend):

* slices:   16 items of ~0.25 s of pure-Python CPU each; nbpar
            `--over items --slices 16`. Ideal wall on W workers: 16 x 0.25 / W.
* chain:    features -> scores per image: `feats` (400,000 floats per image,
            ~3.6 MB pickled: a list of floats, or a NumPy array with
            --chain-data array) is computed over `images`, then `scores` over
            `feats`. nbpar chains the second step onto the first's slices (one
            worker runs slice i of both, back to back; no barrier, `feats` is
            not sent back to a worker). Also timed: nbpar with the chain broken
            (the second step given `slices=16`, so it waits for every feature,
            merges and re-splits them), joblib and concurrent.futures with two
            maps (a barrier between them), and dask.delayed with one
            featurize -> score chain per image (no barrier).
* uneven:   16 items, the 6th 8x as costly as the others (~0.08 s each,
            ~0.6 s for the big one): load balancing. The big item is 8/23 of
            the work, so on 2 workers the ideal is still half the sequential
            time, reached only if the other worker takes the small items
            as the big one runs (no static split of the items).
* overhead: 1,000 trivial items (x * 2), nbpar `--slice-size 1`: 1,000 slices,
            so the wall time is the per-slice cost. Also `nbpar.pmap` with its
            default (4 slices per worker) and dask.bag with partition_size=1.

Tools: plain sequential Python (the baseline), joblib (loky backend, default
batching), dask on the "processes" scheduler twice (with its defaults, which
start a fresh spawn pool for every compute and batch 6 ready tasks per
submission; then with a warm pool and chunksize=1), concurrent.futures
ProcessPoolExecutor (warm, `map`), `nbpar.pmap` and nbpar's Pipeline.

Every tool first runs the workload once on a tiny input (untimed: it starts
its pool and imports what the workers need), then the best of R timed runs
is kept (R=3; R=1 and smaller work with --quick). Rounds interleave the
tools, and a run during which other processes took a noticeable share of the
CPUs is marked disturbed (*) and not picked when a clean run exists (the
house rules of bench_core.py). Ratios are `tool time / nbpar process time`:
above 1 means nbpar is faster.

Only the standard library is imported at module level: worker processes
started with "spawn" (dask's default pool) re-import this file.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import CpuMeter, Pools, Timing, finish, nbpar_source, print_runs, table  # noqa: E402

# -- the work: module-level functions, so every tool can pickle them ---------


def spin(seed: int, loops: int) -> int:
    """`loops` steps of a linear congruential generator: pure-Python CPU, deterministic."""
    x = seed
    for _ in range(loops):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def work(item: tuple[int, int]) -> int:
    seed, loops = item
    return spin(seed, loops)


def featurize(image: tuple[int, int, int, str]) -> Any:
    """An 'image' -> its features: some pure-Python CPU, then `size` floats,
    as a list (kind "list") or a float64 NumPy array (kind "array")."""
    import numpy as np

    seed, loops, size, kind = image
    spin(seed, loops)
    values = np.random.default_rng(seed).random(size)
    return values.tolist() if kind == "list" else values


def score(feats: Any) -> float:
    """Features -> one number: their sum and a pure-Python pass over every 16th value."""
    values = feats if isinstance(feats, list) else feats.tolist()
    total = sum(values)
    for v in values[::16]:
        total += v * v
    return round(total, 6)


def double(x: int) -> int:
    return x * 2


def noop() -> None:
    return None


def timed_spin(loops: int) -> float:
    t0 = time.perf_counter()
    spin(1, loops)
    return time.perf_counter() - t0


# -- sizes ----------------------------------------------------------------------

UNIT = 1_600_000  # spin loops of one ~0.25 s work item (5.5-7 M loops/s on the 2-core VM this was written on)
SIZES = {
    # slices: loops per item; chain: loops per image and floats per image's features;
    # uneven: loops of a small item (the big one is 8x); tiny: items of `overhead`
    "full": {
        "slice_loops": UNIT,
        "chain_loops": 700_000,
        "chain_size": 400_000,
        "uneven_loops": 480_000,
        "tiny": 1000,
    },
    "quick": {
        "slice_loops": 500_000,
        "chain_loops": 300_000,
        "chain_size": 400_000,
        "uneven_loops": 150_000,
        "tiny": 1000,
    },
}
SLICES = 16
HEAVY_AT, HEAVY = 5, 8  # uneven: the 6th item costs 8 small ones


@dataclass
class Sizes:
    slice_loops: int
    chain_loops: int
    chain_size: int
    uneven_loops: int
    tiny: int
    chain_kind: str = "list"  # features as a "list" of floats or a NumPy "array"


# -- timing -----------------------------------------------------------------------


Runner = tuple[str, Callable[[Any], Any]]  # (tool, run(input) -> result or (result, RunResult))


def measure(runners: list[Runner], data: Any, tiny: Any, repeats: int, meter: CpuMeter) -> list[Timing]:
    """Warm every tool up on `tiny`, then time `repeats` rounds on `data`,
    each round running every tool once, each round starting at another tool
    (see bench_core.measure)."""
    timings = [Timing(tool) for tool, _ in runners]
    for tool, run in runners:
        if tool != "sequential":
            run(tiny)
    for r in range(repeats):
        # Each round starts at a different tool: on a VM whose CPU speed
        # drifts with sustained load, a fixed order would always hand the
        # same tool the same (say, the most throttled) place in the round.
        shift = r * -(-len(runners) // repeats)
        order = list(range(len(runners)))
        order = order[shift % len(order) :] + order[: shift % len(order)]
        for i in order:
            timings[i].time(functools.partial(runners[i][1], data), meter)
    print_runs(timings, 30)
    return timings


# -- the tools ----------------------------------------------------------------------


class Tools(Pools):
    """The tools, run on this script's workloads."""

    def dask_compute(self, *objs: Any, warm: bool) -> Any:
        import dask

        if warm:  # a pool made once, one task per submission: dask at its best here
            out = dask.compute(*objs, scheduler="processes", num_workers=self.workers, pool=self.dask_pool, chunksize=1)
        else:  # as documented: a fresh spawn pool per compute, default chunksize (6)
            out = dask.compute(*objs, scheduler="processes", num_workers=self.workers)
        return out[0] if len(objs) == 1 else out

    def nbpar(self, namespace: dict[str, Any], steps: list[dict[str, Any]], var: str, out: str) -> Callable[[Any], Any]:
        """A pipeline made once; each run puts the input in `var` and re-runs every step."""
        import nbpar

        p = nbpar.Pipeline(namespace=dict(namespace))
        for step in steps:
            p.add_step(**step)
        self.pipelines.append(p)

        def run(data: Any) -> Any:
            p.namespace[var] = data
            result = p.run(workers=self.workers, backend="process", force=True)
            if not all(r.status == "done" for r in result.steps.values()):
                raise RuntimeError(f"nbpar: not every step ran: {result!r}")
            return p.namespace[out], result

        return run


def map_runners(
    tools: Tools, func: Callable[[Any], Any], bag_partitions: Callable[[Any], dict[str, int]]
) -> list[Runner]:
    """sequential, joblib, dask.bag (twice), concurrent.futures and pmap, for `[func(x) for x in items]`."""
    import dask.bag as db
    from joblib import delayed as jdelayed

    import nbpar

    w = tools.workers

    def bag(items: Any) -> Any:
        return db.from_sequence(items, **bag_partitions(items)).map(func)

    return [
        ("sequential", lambda items: [func(x) for x in items]),
        ("joblib (loky)", lambda items: tools.joblib(jdelayed(func)(x) for x in items)),
        ("dask.bag (defaults)", lambda items: tools.dask_compute(bag(items), warm=False)),
        ("dask.bag (warm, chunksize=1)", lambda items: tools.dask_compute(bag(items), warm=True)),
        ("concurrent.futures", lambda items: list(tools.cf_pool.map(func, items))),
        ("nbpar.pmap", lambda items: nbpar.pmap(func, items, workers=w)),
    ]


# -- the workloads --------------------------------------------------------------------


def slices(tools: Tools, sz: Sizes, repeats: int) -> list[Timing]:
    items = [(k + 1, sz.slice_loops) for k in range(SLICES)]
    tiny = [(k + 1, 1000) for k in range(SLICES)]
    runners = map_runners(tools, work, lambda items: {"npartitions": len(items)})
    step = {"name": "work", "source": "results = [work(x) for x in items]", "over": "items", "slices": SLICES}
    runners.append(("nbpar process", tools.nbpar({"work": work}, [step], "items", "results")))
    return measure(runners, items, tiny, repeats, tools.meter)


def uneven(tools: Tools, sz: Sizes, repeats: int) -> list[Timing]:
    def make(loops: int) -> list[tuple[int, int]]:
        return [(k + 1, loops * (HEAVY if k == HEAVY_AT else 1)) for k in range(SLICES)]

    runners = map_runners(tools, work, lambda items: {"npartitions": len(items)})
    step = {"name": "work", "source": "results = [work(x) for x in items]", "over": "items", "slices": SLICES}
    runners.append(("nbpar process", tools.nbpar({"work": work}, [step], "items", "results")))
    return measure(runners, make(sz.uneven_loops), make(1000), repeats, tools.meter)


def overhead(tools: Tools, sz: Sizes, repeats: int) -> list[Timing]:
    items = list(range(sz.tiny))
    runners = map_runners(tools, double, lambda items: {"partition_size": 1})
    step = {"name": "work", "source": "results = [double(x) for x in items]", "over": "items", "slice_size": 1}
    runners.append(("nbpar process", tools.nbpar({"double": double}, [step], "items", "results")))
    return measure(runners, items, items[:20], repeats, tools.meter)


def chain(tools: Tools, sz: Sizes, repeats: int) -> list[Timing]:
    from dask import delayed
    from joblib import delayed as jdelayed

    import nbpar

    kind = sz.chain_kind
    images = [(k + 1, sz.chain_loops, sz.chain_size, kind) for k in range(SLICES)]
    tiny = [(k + 1, 1000, 1000, kind) for k in range(SLICES)]
    w = tools.workers

    def sequential(images: Any) -> Any:
        feats = [featurize(img) for img in images]
        return [score(f) for f in feats]

    def joblib_run(images: Any) -> Any:
        feats = tools.joblib(jdelayed(featurize)(img) for img in images)  # barrier: all features first
        return tools.joblib(jdelayed(score)(f) for f in feats)

    def dask_graph(images: Any) -> Any:
        feats = [delayed(featurize)(img) for img in images]
        return feats, [delayed(score)(f) for f in feats]  # each score waits for its own image only

    def dask_run(images: Any, warm: bool) -> Any:
        _, scores = tools.dask_compute(*dask_graph(images), warm=warm)
        return list(scores)

    def cf_run(images: Any) -> Any:
        feats = list(tools.cf_pool.map(featurize, images))
        return list(tools.cf_pool.map(score, feats))

    def pmap_run(images: Any) -> Any:
        feats = nbpar.pmap(featurize, images, workers=w)
        return nbpar.pmap(score, feats, workers=w)

    ns = {"featurize": featurize, "score": score}
    a = {"name": "features", "source": "feats = [featurize(img) for img in images]", "over": "images", "slices": SLICES}
    b = {"name": "scores", "source": "scores = [score(f) for f in feats]", "over": "feats"}
    chained = tools.nbpar(ns, [a, b], "images", "scores")
    broken = tools.nbpar(ns, [a, {**b, "slices": SLICES}], "images", "scores")
    runners: list[Runner] = [
        ("sequential", sequential),
        ("joblib (loky)", joblib_run),
        ("dask.delayed (defaults)", lambda images: dask_run(images, warm=False)),
        ("dask.delayed (warm, chunksize=1)", lambda images: dask_run(images, warm=True)),
        ("concurrent.futures", cf_run),
        ("nbpar.pmap", pmap_run),
        ("nbpar process, chain broken", broken),
        ("nbpar process", chained),
    ]
    return measure(runners, images, tiny, repeats, tools.meter)


WORKLOADS: dict[str, Callable[[Tools, Sizes, int], list[Timing]]] = {
    "slices": slices,
    "chain": chain,
    "uneven": uneven,
    "overhead": overhead,
}
TOOL_ORDER = [
    "sequential",
    "joblib (loky)",
    "dask (defaults)",
    "dask (warm, chunksize=1)",
    "concurrent.futures",
    "nbpar.pmap",
    "nbpar process, chain broken",
    "nbpar process",
]
PARALLEL_ALTERNATIVES = ["joblib (loky)", "dask (defaults)", "dask (warm, chunksize=1)", "concurrent.futures"]


def row_name(tool: str) -> str:
    """dask.bag / dask.delayed share the table's dask rows."""
    for kind in ("dask.bag ", "dask.delayed "):
        if tool.startswith(kind):
            return "dask " + tool[len(kind) :]
    return tool


# -- reporting --------------------------------------------------------------------


def ceiling(tools: Tools, loops: int) -> str:
    """How much faster two plain processes spinning at once finish a pair of
    items than one process doing them in turn, on this machine now: the best
    speed-up any tool can show here (a shared VM gives less than 2)."""
    best = 0.0
    for _ in range(2):
        alone = timed_spin(loops) + timed_spin(loops)
        t0 = time.perf_counter()
        list(tools.cf_pool.map(timed_spin, [loops] * tools.workers))
        pair = time.perf_counter() - t0
        best = max(best, alone / 2 * tools.workers / pair)
    return (
        f"machine ceiling: {tools.workers} bare processes spinning at once did {best:.2f}x the work of one "
        f"in the same time (best of 2 tries of {loops:,} loops)"
    )


PACKAGES = ("nbpar", "joblib", "dask", "loky", "cloudpickle", "numpy")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def slice_report(result: Any, step: str, workers: int) -> str:
    """Which workers ran the slices of `step`, and how busy they were."""
    rec = result.steps[step]
    used: dict[str, int] = {}
    for s in rec.slices:
        used[s.worker] = used.get(s.worker, 0) + 1
    busy = sum(s.end - s.start for s in rec.slices)
    per = ", ".join(f"{w}: {n} slices" for w, n in sorted(used.items()))
    return (
        f"{len(rec.slices)} slices on {len(used)} of {workers} workers ({per}); slices busy {busy:.3f} s "
        f"over {result.wall:.3f} s of wall = {busy / (result.wall * workers):.0%} of {workers} workers"
    )


def chain_report(result: Any) -> str:
    """Did scores' slices start before the last features slice ended (no barrier)?"""
    feats, scores = result.steps["features"].slices, result.steps["scores"].slices
    last_feat = max(s.end for s in feats)
    early = sum(1 for s in scores if s.start < last_feat)
    same = sum(1 for f, s in zip(feats, scores, strict=True) if f.worker == s.worker)
    return (
        f"{early} of {len(scores)} scores slices started before the last features slice ended; "
        f"{same} of {len(scores)} ran on the worker that made their features"
    )


def verdict(name: str, timings: list[Timing], sz: Sizes) -> str:
    by = {row_name(t.tool): t.best for t in timings}
    nb, seq = by["nbpar process"], by["sequential"]
    alts = {k: by[k] for k in PARALLEL_ALTERNATIVES if k in by}
    best_tool = min(alts, key=alts.__getitem__)
    best = alts[best_tool]
    if name == "overhead":
        vs_seq = f"sequential takes {seq * 1000:.2f} ms"
    else:
        vs_seq = f"{seq / nb:.2f}x faster than sequential" if seq >= nb else f"{nb / seq:.2f}x SLOWER than sequential"
    if nb <= best:
        vs_alt = f"fastest of the parallel tools ({best / nb:.2f}x ahead of {best_tool}, {best:.3f} s)"
    else:
        vs_alt = f"{nb / best:.2f}x slower than the fastest alternative, {best_tool} ({best:.3f} s)"
    line = f"{name}: nbpar process {nb:.3f} s, {vs_seq}; {vs_alt}."
    if name == "chain" and "nbpar process, chain broken" in by:
        broken = by["nbpar process, chain broken"]
        med = {t.tool: t.median for t in timings}
        saved = med["nbpar process, chain broken"] - med["nbpar process"]
        line += (
            f" Against the broken chain, the chain saves {broken - nb:.3f} s ({broken / nb:.2f}x) by best run, "
            f"{saved:.3f} s by median."
        )
    if name == "overhead":
        line += f" About {(nb - seq) / sz.tiny * 1000:.2f} ms of nbpar (process) overhead per slice."
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: loky.cpu_count())")
    parser.add_argument("--quick", action="store_true", help="less work per item and one timed run (~40 s)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per tool (default 3, 1 with --quick)")
    parser.add_argument("--only", choices=list(WORKLOADS), action="append", help="run only this workload (repeatable)")
    parser.add_argument(
        "--chain-data", choices=["list", "array"], default="list", help="chain: features as a list or a NumPy array"
    )
    args = parser.parse_args(argv)

    import loky

    workers = args.workers or loky.cpu_count()
    repeats = args.repeats or (1 if args.quick else 3)
    sz = Sizes(**SIZES["quick" if args.quick else "full"], chain_kind=args.chain_data)
    started = time.perf_counter()
    load_before = os.getloadavg()

    now = datetime.datetime.now().astimezone()
    print(f"nbpar fan-out benchmark, {now:%Y-%m-%d %H:%M %Z}, {'quick' if args.quick else 'full'} sizes")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}; "
        f"os.cpu_count()={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}, loky.cpu_count()={loky.cpu_count()}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + f" (nbpar from {nbpar_source()})")
    print(
        f"workers={workers}, best of {repeats} timed run(s) after a warm-up on a tiny input; {SLICES} slices; "
        f"slices {sz.slice_loops:,} loops/item, chain {sz.chain_loops:,} loops + {sz.chain_size:,} floats "
        f"per image as a {sz.chain_kind} (~{sz.chain_size * 9 / 1e6:.1f} MB pickled), "
        f"uneven {sz.uneven_loops:,} loops (x{HEAVY} for item {HEAVY_AT}), "
        f"overhead {sz.tiny} items"
    )
    print()

    tools = Tools(workers)
    meter = tools.meter
    print(ceiling(tools, sz.slice_loops), flush=True)
    print()
    results: dict[str, list[Timing]] = {}
    try:
        for name, workload in WORKLOADS.items():
            if args.only and name not in args.only:
                continue
            print(f"  {name}:", flush=True)
            before, t0 = meter.snapshot(), time.perf_counter()
            timings = workload(tools, sz, repeats)
            other = meter.foreign(before, meter.snapshot())
            if other is not None:
                print(
                    f"    meanwhile other processes used {other[0]:.1f} CPU-s, the hypervisor stole "
                    f"{other[1]:.1f} s (of {time.perf_counter() - t0:.0f} s x {os.cpu_count()} CPUs)",
                    flush=True,
                )
            expected = timings[0].value
            for t in timings:
                t.wrong = list(t.value) != list(expected)
            results[name] = timings
    finally:
        tools.close()

    print()
    print(f"Wall time in seconds (best of {repeats}); ratio = tool / nbpar process (>1: nbpar faster)")
    print("(dask rows: dask.bag for slices, uneven and overhead; dask.delayed for chain)")
    print()
    print("\n".join(table(results, TOOL_ORDER, row_name, digits=3)))
    print()
    for name, timings in results.items():
        print(verdict(name, timings, sz))
    print()
    for name, timings in results.items():
        by = {t.tool: t for t in timings}
        best = by["nbpar process"].best_run
        step = "features" if name == "chain" else "work"
        print(f"nbpar process, {name}: {slice_report(best, step, workers)}")
        if name == "chain":
            print(f"  scores: {slice_report(best, 'scores', workers)}")
            print(f"  chained: {chain_report(best)}")
            broken = by["nbpar process, chain broken"].best_run
            print(f"  chain broken: {chain_report(broken)}")
    return finish(results, load_before, started)


if __name__ == "__main__":
    sys.exit(main())
