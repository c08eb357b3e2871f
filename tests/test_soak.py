"""Soak: 200 `%parrun` calls on a graph of 20 steps, with random faults.

Each run injects faults into a few steps (an exception, a flaky exception
that a retry fixes, `os._exit`, SIGKILL, a step past its timeout, one that
ignores the timeout's alarm), sometimes presses the stop button, sometimes
edits a cell or forces a rerun, on a random backend. At the end, with the
faults gone, one more `%parrun` must leave the namespace equal to running
the cells one after another, with no worker process left behind and memory
that stayed bounded. Prints its numbers (run with -s to see them).
"""

from __future__ import annotations

import _thread
import json
import random
import threading
import time

import psutil
import pytest

import nbpar
from nbpar import RunError

from .conftest import run_cell, run_cells
from .test_faults import worker_pids

RUNS = 200
STEPS = 20

INJECT = '''
def inject(step):
    """Do to `step` what the soak test's fault file says."""
    import json, os, signal, time
    with open(FAULTS) as f:
        plan = json.load(f)
    kind = plan["faults"].get(step)
    if kind == "raise":
        raise RuntimeError(f"injected into {step}")
    if kind == "flaky":
        mark = os.path.join(os.path.dirname(FAULTS), f"{plan['run']}-{step}")
        if not os.path.exists(mark):
            open(mark, "w").close()
            raise RuntimeError(f"flaky {step}")
    if kind == "exit":
        os._exit(1)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        for _ in range(200):
            time.sleep(0.05)
    if kind == "deaf":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3)
'''

KINDS = {  # fault kinds each backend can take (threads cannot be stopped: no hangs there)
    "process": ["raise", "flaky", "exit", "kill", "hang", "deaf"],
    "thread": ["raise", "flaky"],
    "inline": ["raise", "flaky", "hang"],
}


def cells(rng: random.Random) -> dict[str, str]:
    """20 steps, each reading two earlier ones (the first four read nothing)."""
    sources = {}
    for k in range(STEPS):
        if k < 4:
            expr = f"{k + 1}"
        else:
            a, b = rng.sample(range(k), 2)
            expr = f"(v{a} * 31 + v{b} + {k}) % 1000003"
        sources[f"s{k}"] = f"inject('s{k}')\nv{k} = {expr}"
    return sources


@pytest.mark.slow
def test_soak(shell, tmp_path, capsys):
    rng = random.Random(20261122)
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"run": -1, "faults": {}}))
    shell.user_ns["FAULTS"] = str(faults)
    run_cells(shell, INJECT)
    sources = cells(rng)
    for name, body in sources.items():
        run_cells(shell, f"%%step {name}\n{body}")
    pipeline = shell.magics_manager.registry["NbparMagics"].pipeline
    me = psutil.Process()
    seen: set[int] = set()
    counts: dict[str, int] = {}  # faults injected
    statuses: dict[str, int] = {}  # steps' end states over all runs
    rss: list[int] = []
    started = time.monotonic()

    for run in range(RUNS):
        backend = rng.choices(["process", "thread", "inline"], [7, 2, 1])[0]
        chosen = {f"s{k}": rng.choice(KINDS[backend]) for k in rng.sample(range(STEPS), rng.choice([0, 0, 1, 2, 3]))}
        faults.write_text(json.dumps({"run": run, "faults": chosen}))
        for kind in chosen.values():
            counts[kind] = counts.get(kind, 0) + 1
        edited = set(chosen) | {f"s{k}" for k in rng.sample(range(STEPS), rng.choice([0, 1, 2]))}
        for name in edited:  # the user edits cells (so the faulty ones run)
            sources[name] = sources[name].split("  #")[0] + f"  # edit {run}"
            run_cells(shell, f"%%step {name}\n{sources[name]}")
        options = f"--backend {backend} --workers 2 --no-widget --timeout 0.5"
        options += " --retries 1" if rng.random() < 0.3 else ""
        options += " --force" if rng.random() < 0.05 else ""
        timer = None
        if rng.random() < 0.05:
            timer = threading.Timer(rng.uniform(0.02, 0.3), _thread.interrupt_main)
            timer.start()
            counts["interrupt"] = counts.get("interrupt", 0) + 1
        try:
            result = run_cell(shell, f"%parrun {options}")
            if timer is not None:
                timer.cancel()
                timer.join()
            time.sleep(0)  # an interrupt that came after the run surfaces here
        except KeyboardInterrupt:
            pass
        else:
            error = result.error_in_exec
            assert error is None or isinstance(error, RunError), f"run {run}: {error!r}"
        last = nbpar.last_run()
        assert last is not None and last.end is not None
        for record in last.steps.values():
            statuses[record.status] = statuses.get(record.status, 0) + 1
        seen |= {int(r.worker.split()[1]) for r in last.steps.values() if r.worker and r.worker.startswith("pid ")}
        pipeline.graph.validate()
        if run % 20 == 19:
            rss.append(me.memory_info().rss)
    capsys.readouterr()

    faults.write_text(json.dumps({"run": RUNS, "faults": {}}))
    run_cells(shell, "%parrun --workers 2 --no-widget")
    assert nbpar.last_run().ok
    expected: dict[str, object] = {"inject": shell.user_ns["inject"], "FAULTS": str(faults)}
    for body in sources.values():
        exec(body, expected)
    for k in range(STEPS):
        assert shell.user_ns[f"v{k}"] == expected[f"v{k}"], f"v{k}"

    alive = worker_pids()
    assert len(alive) <= 2, f"more workers than the pool's 2: {alive}"
    deadline = time.monotonic() + 5
    while (seen - alive) & worker_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    leaked = [p.pid for p in me.children(recursive=True) if p.pid in seen - alive and p.is_running()]
    leaked = [pid for pid in leaked if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not leaked, f"worker processes left behind: {leaked}"
    growth = (rss[-1] - rss[0]) / 2**20
    print(
        f"\nsoak: {RUNS} runs in {time.monotonic() - started:.1f}s; faults {counts}; step states {statuses}; "
        f"{len(seen)} worker processes used, {len(alive)} alive at the end; "
        f"kernel RSS {rss[0] / 2**20:.0f} MiB after 20 runs, {rss[-1] / 2**20:.0f} MiB after {RUNS} ({growth:+.1f} MiB)"
    )
    assert growth < 64, f"the kernel grew by {growth:.0f} MiB over {RUNS} runs"
