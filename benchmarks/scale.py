"""The kernel's bookkeeping per step, from 100 to 100,000 tiny steps.

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py [--sizes 100 1000 10000] [--big]
                                                      [--backends thread process] [--workers N]
                                                      [--no-join] [--profile N --backend B]

For each size N it registers N independent steps `x_i = i * 2` (and, unless
--no-join, a step `total = join_sum(x0, ..., x_{N-1})`) with
`Pipeline.add_step`, then per backend runs them once (cold, untimed) and
once more warm (`force=True`, pool up), and prints, per step:

* reg us:   registration time (add_step) per step, in microseconds;
* run us:   the warm run's wall time per step;
* reg KB:   kernel memory the registered pipeline holds per step (tracemalloc,
            what is still allocated after registering, from an empty cache of
            cell analyses: it holds up to 4,096, so that part stops growing);
* peak KB:  kernel peak memory during a warm run per step, above what was
            allocated before it (tracemalloc, a separate warm run, so
            tracemalloc's own cost is not in the run time).

--big adds N = 100,000 (about a minute on two cores). --profile N runs N
steps warm on --backend under cProfile and prints the top of it by tottime.
Flat columns are the target: the per-step cost should not grow with N.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import work  # noqa: E402  (the tools' shared work functions: join_sum)

import nbpar  # noqa: E402
from nbpar.analysis import analyze  # noqa: E402


def register(n: int, join: bool) -> Any:
    """A Pipeline with `n` tiny independent steps (and their join)."""
    pipeline = nbpar.Pipeline(namespace={"join_sum": work.join_sum})
    for i in range(n):
        pipeline.add_step(f"x{i}", f"x{i} = {i} * 2")
    if join:
        pipeline.add_step("total", "total = join_sum(" + ", ".join(f"x{i}" for i in range(n)) + ")")
    return pipeline


def check(pipeline: Any, n: int, join: bool) -> None:
    ns = pipeline.namespace
    if join and ns["total"] != n * (n - 1):
        raise RuntimeError(f"total is {ns['total']}, not {n * (n - 1)}")
    if ns[f"x{n - 1}"] != (n - 1) * 2:
        raise RuntimeError("the last step did not run")


def registration(n: int, join: bool) -> tuple[float, float]:
    """Seconds to register, and bytes the registered pipeline holds (with
    the analyses it cached: each registration starts from an empty cache,
    as a fresh kernel's)."""
    analyze.cache_clear()
    gc.collect()
    start = time.perf_counter()
    register(n, join)
    seconds = time.perf_counter() - start
    analyze.cache_clear()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    pipeline = register(n, join)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del pipeline
    return seconds, held


def run(pipeline: Any, backend: str, workers: int) -> float:
    start = time.perf_counter()
    pipeline.run(workers=workers, backend=backend, force=True)
    return time.perf_counter() - start


def run_peak(pipeline: Any, backend: str, workers: int) -> float:
    """Peak bytes allocated in the kernel during a warm run, above its start."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    pipeline.run(workers=workers, backend=backend, force=True)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak


def measure(sizes: list[int], backends: list[str], workers: int, join: bool) -> None:
    register(10, join)  # (the first registration imports what analysis needs)
    print(f"{'N':>8} {'backend':>8} {'reg us':>8} {'run us':>8} {'reg KB':>8} {'peak KB':>8}  (per step)")
    for n in sizes:
        steps = n + join
        reg_seconds, held = registration(n, join)
        for backend in backends:
            pipeline = register(n, join)
            run(pipeline, backend, workers)  # cold: the pool starts
            seconds = run(pipeline, backend, workers)
            check(pipeline, n, join)
            peak = run_peak(pipeline, backend, workers)
            print(
                f"{n:>8,} {backend:>8} {reg_seconds / steps * 1e6:>8.1f} {seconds / steps * 1e6:>8.1f}"
                f" {held / steps / 1024:>8.2f} {peak / steps / 1024:>8.2f}",
                flush=True,
            )
            pipeline.shutdown()
    total = sizes[-1] + join
    print(f"peak kernel memory of the warm run at N={sizes[-1]:,}: {peak / 2**20:.1f} MB ({total:,} steps)")


def profile(n: int, backend: str, workers: int, join: bool) -> None:
    pipeline = register(n, join)
    run(pipeline, backend, workers)
    profiler = cProfile.Profile()
    profiler.enable()
    run(pipeline, backend, workers)
    profiler.disable()
    check(pipeline, n, join)
    pipeline.shutdown()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument("--big", action="store_true", help="add N = 100,000")
    parser.add_argument("--backends", nargs="+", default=["thread", "process"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-join", action="store_true")
    parser.add_argument("--profile", type=int, metavar="N", help="profile a warm run of N steps instead")
    parser.add_argument("--backend", default="process", help="the backend --profile runs on")
    args = parser.parse_args()
    join = not args.no_join
    if args.profile:
        profile(args.profile, args.backend, args.workers, join)
        return
    sizes = sorted(set(args.sizes + ([100_000] if args.big else [])))
    measure(sizes, args.backends, args.workers, join)


if __name__ == "__main__":
    main()
