"""Compare nbpar with other ways of running the same small task graphs.

    .venv/bin/python benchmarks/bench_core.py [--workers N] [--quick] [--repeats R] [--only WORKLOAD]

Three workloads, each run by every tool on the same graph, expressed the way
that tool is normally used:

* diamond:  load -> (evens, odds) -> total. `rows` is a list of a few million
            ints; evens and odds are ~0.6 s of pure-Python CPU each, so they
            can only overlap in separate processes. The list has to travel
            between processes, so this also measures data transfer.
* wide:     8 independent prime counts of ~0.5 s each, then a join that sums
            them. Pure load balancing: ideal wall time is 8 x 0.5 s / workers.
* overhead: 200 tiny independent steps (x_i = i * 2) and a join. The work is
            nothing, so the wall time is the per-task scheduling cost.

Tools: plain sequential Python (the baseline), joblib (loky backend),
dask.delayed on the "processes" scheduler twice (with its defaults and
num_workers, which start a fresh pool for every compute and batch 6 ready tasks
per submission; then with a warm pool and chunksize=1, dask at its best here),
concurrent.futures.ProcessPoolExecutor (warm), and nbpar's process, thread
(and, for the overhead workload, inline) backends.

Every tool gets one untimed warm-up run of the workload (which starts its
pool), then R rounds (R=3, R=1 with --quick) each time every tool once, and
the best run is kept. Runs during which other processes (or the hypervisor)
took a noticeable share of the CPUs are marked and not kept when a clean run
exists (see `CpuMeter`). Ratios are `tool time / nbpar process time`: above 1
means nbpar is faster. Exit status 1 if a tool's result differs from the
sequential one.

Only the standard library is imported at module level: dask's worker
processes are started with "spawn" and re-import this file, and should not
pay for importing nbpar and joblib.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

# -- the work: module-level functions, so every tool can pickle them ---------


def make_rows(n: int) -> list[int]:
    return list(range(n))


def digit_sum(rows: list[int], parity: int) -> int:
    """Sum of the decimal digits of the elements of `rows` with this parity."""
    total = 0
    for x in rows:
        if x % 2 == parity:
            while x:
                total += x % 10
                x //= 10
    return total


def add(a: int, b: int) -> int:
    return a + b


def count_primes(limit: int) -> int:
    """Primes below `limit`, by trial division (deliberately slow)."""
    count = 0
    for n in range(2, limit):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            count += 1
    return count


def total_of(values: list[int]) -> int:
    return sum(values)


def double(i: int) -> int:
    return i * 2


def noop() -> None:
    return None


# -- sizes ----------------------------------------------------------------------

SIZES = {
    # rows: length of the diamond's list; primes: limit of the first wide
    # step (step k counts below primes + 1000 k); tiny: steps of `overhead`.
    "full": {"rows": 2_000_000, "primes": 200_000, "tiny": 200},
    "quick": {"rows": 600_000, "primes": 60_000, "tiny": 200},
}
WIDE = 8


@dataclass
class Sizes:
    rows: int
    primes: int
    tiny: int

    @property
    def limits(self) -> list[int]:
        return [self.primes + 1000 * k for k in range(WIDE)]


# -- timing -----------------------------------------------------------------------


@dataclass
class Timing:
    tool: str
    times: list[float] = field(default_factory=list)
    value: Any = None
    wrong: bool = False
    runs: list[Any] = field(default_factory=list)  # nbpar RunResults of the timed runs
    disturbed: list[bool] = field(default_factory=list)  # other processes took CPU during the run

    @property
    def best_index(self) -> int:
        """The fastest run that nothing else disturbed (the fastest run if all were)."""
        clean = [i for i, d in enumerate(self.disturbed) if not d] or list(range(len(self.times)))
        return min(clean, key=self.times.__getitem__)

    @property
    def best(self) -> float:
        return self.times[self.best_index]

    @property
    def noisy(self) -> bool:
        return all(self.disturbed)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best_run(self) -> Any:
        """The RunResult of the run reported as the best (nbpar rows)."""
        return self.runs[self.best_index] if self.runs else None

    def time(self, run: Callable[[], Any], meter: CpuMeter) -> None:
        """Time one run, note whether other processes disturbed it, keep its
        result (and its RunResult when `run` returns (result, RunResult))."""
        before = meter.snapshot()
        t0 = time.perf_counter()
        out = run()
        wall = time.perf_counter() - t0
        self.times.append(wall)
        other = meter.foreign(before, meter.snapshot())
        # /proc counts in clock ticks (10 ms): allow two of them
        self.disturbed.append(other is not None and sum(other) > 0.1 * wall * meter.cpus + 0.02)
        if isinstance(out, tuple) and len(out) == 2 and hasattr(out[1], "steps"):
            out, record = out
            self.runs.append(record)
        self.value = out


def print_runs(timings: list[Timing], width: int) -> None:
    for t in timings:
        runs = ", ".join(f"{x:.3f}" + ("*" if d else "") for x, d in zip(t.times, t.disturbed, strict=True))
        print(f"    {t.tool:<{width}} best {t.best:7.3f} s   runs: {runs}", flush=True)


Runner = tuple[str, Callable[[], Any], bool]  # (tool, run, needs a warm-up)


def measure(runners: list[Runner], repeats: int, meter: CpuMeter) -> list[Timing]:
    """Warm every tool up (one untimed run each, which starts its pool), then
    time `repeats` rounds, each running every tool once. Interleaving the
    tools means a burst of background load hurts them all alike rather than
    whichever tool happened to be running, and a run during which other
    processes took a noticeable share of the CPUs is marked disturbed and
    not picked as the best if a clean run exists. `run` returns the
    workload's result, or (result, RunResult) for nbpar."""
    timings = [Timing(tool) for tool, _, _ in runners]
    for _, run, warm_up in runners:
        if warm_up:
            run()
    for _ in range(repeats):
        for timing, (_, run, _) in zip(timings, runners, strict=True):
            timing.time(run, meter)
    print_runs(timings, 24)
    return timings


# -- the tools, workload by workload ----------------------------------------------


class Pools:
    """The warm pools of every tool and the nbpar pipelines, made once for the
    whole benchmark (bench_fanout.py's tools build on it too)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.meter = CpuMeter()
        # Created first, before any other pool starts threads: on Linux this
        # is a fork-context pool, and forking a threaded process is unsafe.
        self.cf_pool = ProcessPoolExecutor(workers)
        for f in [self.cf_pool.submit(noop) for _ in range(workers)]:
            f.result()

        import dask.multiprocessing
        import joblib

        self.joblib = joblib.Parallel(n_jobs=workers, backend="loky")
        # The pool dask would make itself (spawn context), but made once.
        self.dask_pool = ProcessPoolExecutor(workers, mp_context=dask.multiprocessing.get_context())
        for f in [self.dask_pool.submit(noop) for _ in range(workers)]:
            f.result()
        self.pipelines: list[Any] = []

    def close(self) -> None:
        for p in self.pipelines:
            p.shutdown()
        self.cf_pool.shutdown()
        self.dask_pool.shutdown()


class Tools(Pools):
    """The tools, run on this script's workloads."""

    # dask: the same graph, run two ways
    def dask_compute(self, obj: Any, warm: bool) -> Any:
        import dask

        if warm:
            # A pool made once, and one task per submission: dask's default
            # chunksize for processes (6) batches ready tasks together, so
            # the diamond's evens and odds would go to ONE worker, one after
            # the other, and wide's 8 steps would split 6 + 2.
            return dask.compute(obj, scheduler="processes", num_workers=self.workers, pool=self.dask_pool, chunksize=1)[
                0
            ]
        # As documented: a fresh (spawn) pool for this compute, default chunksize.
        return dask.compute(obj, scheduler="processes", num_workers=self.workers)[0]

    # nbpar: one pipeline per (workload, backend), kept for the timed runs
    def pipeline(self, namespace: dict[str, Any], steps: list[tuple[str, str]]) -> Any:
        import nbpar

        p = nbpar.Pipeline(namespace=dict(namespace))
        for name, source in steps:
            p.add_step(name, source)
        self.pipelines.append(p)
        return p

    def nbpar_runner(self, namespace: dict[str, Any], steps: list[tuple[str, str]], backend: str) -> Callable[[], Any]:
        p = self.pipeline(namespace, steps)
        first = [True]

        def run() -> Any:
            # The warm-up is the pipeline's first run; timed runs re-run
            # every step with force=True (they would be up to date otherwise).
            result = p.run(workers=self.workers, backend=backend, force=not first[0])
            first[0] = False
            if not all(r.status == "done" for r in result.steps.values()):
                raise RuntimeError(f"nbpar {backend}: not every step ran: {result!r}")
            return p.namespace["total"], result

        return run


def diamond(tools: Tools, sz: Sizes, repeats: int) -> list[Timing]:
    from dask import delayed
    from joblib import delayed as jdelayed

    n = sz.rows

    def sequential() -> int:
        rows = make_rows(n)
        return add(digit_sum(rows, 0), digit_sum(rows, 1))

    def joblib_run() -> int:
        rows = make_rows(n)  # load first, here; then the two in parallel
        evens, odds = tools.joblib(jdelayed(digit_sum)(rows, p) for p in (0, 1))
        return add(evens, odds)

    def dask_graph() -> Any:
        rows = delayed(make_rows)(n)
        return delayed(add)(delayed(digit_sum)(rows, 0), delayed(digit_sum)(rows, 1))

    def cf_run() -> int:
        pool = tools.cf_pool
        rows = pool.submit(make_rows, n).result()
        evens, odds = pool.submit(digit_sum, rows, 0), pool.submit(digit_sum, rows, 1)
        return add(evens.result(), odds.result())

    ns = {"make_rows": make_rows, "digit_sum": digit_sum, "n": n}
    steps = [
        ("load", "rows = make_rows(n)"),
        ("evens", "evens = digit_sum(rows, 0)"),
        ("odds", "odds = digit_sum(rows, 1)"),
        ("total", "total = evens + odds"),
    ]
    return measure(
        [
            ("sequential", sequential, False),
            ("joblib (loky)", joblib_run, True),
            ("dask (defaults)", lambda: tools.dask_compute(dask_graph(), warm=False), True),
            ("dask (warm, chunksize=1)", lambda: tools.dask_compute(dask_graph(), warm=True), True),
            ("concurrent.futures", cf_run, True),
            ("nbpar thread", tools.nbpar_runner(ns, steps, "thread"), True),
            ("nbpar process", tools.nbpar_runner(ns, steps, "process"), True),
        ],
        repeats,
        tools.meter,
    )


def wide(tools: Tools, sz: Sizes, repeats: int) -> list[Timing]:
    from dask import delayed
    from joblib import delayed as jdelayed

    limits = sz.limits

    def sequential() -> int:
        return total_of([count_primes(lim) for lim in limits])

    def joblib_run() -> int:
        return total_of(tools.joblib(jdelayed(count_primes)(lim) for lim in limits))

    def dask_graph() -> Any:
        return delayed(total_of)([delayed(count_primes)(lim) for lim in limits])

    def cf_run() -> int:
        futures = [tools.cf_pool.submit(count_primes, lim) for lim in limits]
        return total_of([f.result() for f in futures])

    ns = {"count_primes": count_primes}
    steps = [(f"part{k}", f"part_{k} = count_primes({lim})") for k, lim in enumerate(limits)]
    steps.append(("total", "total = sum([" + ", ".join(f"part_{k}" for k in range(len(limits))) + "])"))
    return measure(
        [
            ("sequential", sequential, False),
            ("joblib (loky)", joblib_run, True),
            ("dask (defaults)", lambda: tools.dask_compute(dask_graph(), warm=False), True),
            ("dask (warm, chunksize=1)", lambda: tools.dask_compute(dask_graph(), warm=True), True),
            ("concurrent.futures", cf_run, True),
            ("nbpar thread", tools.nbpar_runner(ns, steps, "thread"), True),
            ("nbpar process", tools.nbpar_runner(ns, steps, "process"), True),
        ],
        repeats,
        tools.meter,
    )


def overhead(tools: Tools, sz: Sizes, repeats: int) -> list[Timing]:
    from dask import delayed
    from joblib import delayed as jdelayed

    idx = range(sz.tiny)

    def sequential() -> int:
        return total_of([double(i) for i in idx])

    def joblib_run() -> int:
        return total_of(tools.joblib(jdelayed(double)(i) for i in idx))

    def dask_graph() -> Any:
        return delayed(total_of)([delayed(double)(i) for i in idx])

    def cf_run() -> int:
        futures = [tools.cf_pool.submit(double, i) for i in idx]
        return total_of([f.result() for f in futures])

    steps = [(f"x{i}", f"x_{i} = {i} * 2") for i in idx]
    steps.append(("total", "total = sum([" + ", ".join(f"x_{i}" for i in idx) + "])"))
    return measure(
        [
            ("sequential", sequential, False),
            ("joblib (loky)", joblib_run, True),
            ("dask (defaults)", lambda: tools.dask_compute(dask_graph(), warm=False), True),
            ("dask (warm, chunksize=1)", lambda: tools.dask_compute(dask_graph(), warm=True), True),
            ("concurrent.futures", cf_run, True),
            ("nbpar inline", tools.nbpar_runner({}, steps, "inline"), True),
            ("nbpar thread", tools.nbpar_runner({}, steps, "thread"), True),
            ("nbpar process", tools.nbpar_runner({}, steps, "process"), True),
        ],
        repeats,
        tools.meter,
    )


WORKLOADS: dict[str, Callable[[Tools, Sizes, int], list[Timing]]] = {
    "diamond": diamond,
    "wide": wide,
    "overhead": overhead,
}
TOOL_ORDER = [
    "sequential",
    "joblib (loky)",
    "dask (defaults)",
    "dask (warm, chunksize=1)",
    "concurrent.futures",
    "nbpar inline",
    "nbpar thread",
    "nbpar process",
]
PARALLEL_ALTERNATIVES = ["joblib (loky)", "dask (defaults)", "dask (warm, chunksize=1)", "concurrent.futures"]


# -- reporting --------------------------------------------------------------------


class CpuMeter:
    """How much CPU other processes used while a workload ran (Linux only).

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


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("nbpar", "joblib", "dask", "loky", "cloudpickle"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def overlap_report(timing: Timing) -> list[str]:
    """For nbpar on the diamond: did evens and odds run at the same time?"""
    lines = []
    for i, result in enumerate(timing.runs, 1):
        e, o = result.steps["evens"], result.steps["odds"]
        both = min(e.end, o.end) - max(e.start, o.start)
        shorter = min(e.end - e.start, o.end - o.start)
        verdict = "YES" if both > 0 else "NO"
        lines.append(
            f"run {i}: evens and odds overlapped: {verdict} "
            f"({max(both, 0):.3f} s of {shorter:.3f} s; evens on {e.worker}, odds on {o.worker})"
        )
    return lines


def timeline(result: Any) -> list[str]:
    """Each step's start and end relative to the run's start."""
    t0 = result.start
    return [
        f"{name:<6} {r.start - t0:6.3f} -> {r.end - t0:6.3f} s  ({r.end - r.start:.3f} s on {r.worker})"
        for name, r in result.steps.items()
    ]


def table(
    results: dict[str, list[Timing]],
    order: list[str] = TOOL_ORDER,
    name_of: Callable[[str], str] = lambda tool: tool,
    digits: int = 4,
) -> list[str]:
    """A Markdown table: a row per tool in `order`, per workload its best time
    and its ratio to nbpar process (used by every benchmark script)."""
    cols = list(results)
    width = max(len(tool) for tool in order)
    cell_width = max(13, *(len(c) + 4 for c in cols))
    head = f"| {'tool':<{width}} |" + "".join(f" {c + ' (s)':>{cell_width}} | {'ratio':>6} |" for c in cols)
    rule = "|" + "-" * (width + 2) + "|" + "".join("-" * (cell_width + 2) + "|" + "-" * 8 + "|" for _ in cols)
    lines = [head, rule]
    by_tool = {c: {name_of(t.tool): t for t in results[c]} for c in cols}
    for tool in order:
        if not any(tool in by_tool[c] for c in cols):
            continue
        row = f"| {tool:<{width}} |"
        for c in cols:
            t = by_tool[c].get(tool)
            ref = by_tool[c]["nbpar process"].best
            if t is None:
                row += f" {'-':>{cell_width}} | {'-':>6} |"
            else:
                cell = f"{t.best:.{digits}f}" + ("*" if t.noisy else "")
                row += f" {cell:>{cell_width}} | {t.best / ref:>6.2f} |" + (" WRONG" if t.wrong else "")
        lines.append(row)
    return lines


def finish(results: dict[str, list[Timing]], load_before: tuple[float, float, float], started: float) -> int:
    """Print wrong results, the load, the disturbed runs and the total time;
    the exit status: 1 if a tool computed a wrong result."""
    wrong = [f"{n}/{t.tool}" for n, ts in results.items() for t in ts if t.wrong]
    if wrong:
        print("\nWRONG RESULTS (differ from sequential): " + ", ".join(wrong))
    load_after = os.getloadavg()
    print(
        f"\nload average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)}"
    )
    disturbed = sum(sum(t.disturbed) for ts in results.values() for t in ts)
    timed = sum(len(t.times) for ts in results.values() for t in ts)
    print(
        f"{disturbed} of {timed} timed runs were disturbed by other processes (marked * in the run lists; "
        "the best is taken from undisturbed runs when there is one)."
    )
    noisy = [f"{n}/{t.tool}" for n, ts in results.items() for t in ts if t.noisy]
    if noisy:
        print(
            "WARNING: every run of these was disturbed, so their times (marked * in the table) are "
            f"pessimistic: {', '.join(noisy)}. Run again on a quieter machine, or with more --repeats."
        )
    print(f"total benchmark time: {time.perf_counter() - started:.0f} s")
    return 1 if wrong else 0


def verdict(name: str, timings: list[Timing], workers: int, tiny: int) -> str:
    by = {t.tool: t.best for t in timings}
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
    if name == "overhead":
        per = (nb - seq) / (tiny + 1) * 1000
        line += f" About {per:.2f} ms of nbpar (process) overhead per step."
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes/threads (default: loky.cpu_count())"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes and one timed run (~30 s)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per tool (default 3, 1 with --quick)")
    parser.add_argument("--only", choices=list(WORKLOADS), action="append", help="run only this workload (repeatable)")
    args = parser.parse_args(argv)

    import loky

    workers = args.workers or loky.cpu_count()
    repeats = args.repeats or (1 if args.quick else 3)
    sz = Sizes(**SIZES["quick" if args.quick else "full"])
    started = time.perf_counter()
    load_before = os.getloadavg()

    now = datetime.datetime.now().astimezone()
    print(f"nbpar benchmark, {now:%Y-%m-%d %H:%M %Z}, {'quick' if args.quick else 'full'} sizes")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}; "
        f"os.cpu_count()={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}, loky.cpu_count()={loky.cpu_count()}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + f" (nbpar from {nbpar_source()})")
    print(
        f"workers={workers}, best of {repeats} timed run(s) after one warm-up; "
        f"diamond rows={sz.rows:,}, wide {WIDE} x count_primes(~{sz.primes:,}), overhead {sz.tiny} steps"
    )
    print()

    tools = Tools(workers)
    meter = tools.meter
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
                wall = time.perf_counter() - t0
                print(
                    f"    meanwhile other processes used {other[0]:.1f} CPU-s, the hypervisor stole "
                    f"{other[1]:.1f} s (of {wall:.0f} s x {os.cpu_count()} CPUs)",
                    flush=True,
                )
            expected = timings[0].value
            for t in timings:
                t.wrong = t.value != expected
            results[name] = timings
    finally:
        tools.close()

    print()
    print(f"Wall time in seconds (best of {repeats}); ratio = tool / nbpar process (>1: nbpar faster)")
    print()
    print("\n".join(table(results)))
    print()
    for name, timings in results.items():
        print(verdict(name, timings, workers, sz.tiny))
    if "diamond" in results:
        nb = {t.tool: t for t in results["diamond"]}
        print()
        print("nbpar process, diamond:")
        for line in overlap_report(nb["nbpar process"]):
            print("  " + line)
        best = nb["nbpar process"].best_run
        print("  timeline of the best run:")
        for line in timeline(best):
            print("    " + line)
    if "wide" in results:
        best = {t.tool: t for t in results["wide"]}["nbpar process"].best_run
        busy = sum(r.end - r.start for r in best.steps.values())
        print()
        print(
            f"nbpar process, wide: steps busy {busy:.3f} s in total over {best.wall:.3f} s of wall on "
            f"{workers} workers ({busy / (best.wall * workers):.0%} utilisation); "
            f"workers used: {', '.join(sorted({r.worker for r in best.steps.values()}))}"
        )
    if "overhead" in results:
        print()
        for t in results["overhead"]:
            if t.runs:
                wall = statistics.median(r.wall for r in t.runs)
                print(f"{t.tool}, overhead: {wall / (sz.tiny + 1) * 1000:.2f} ms per step (RunResult.wall / steps)")
    return finish(results, load_before, started)


if __name__ == "__main__":
    sys.exit(main())
