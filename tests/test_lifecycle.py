"""No worker process is ever left behind: real kernels, real processes.

Each test drives a real Jupyter kernel (jupyter_client, through the kernel
spec of the `kernel_name` fixture) and its real loky worker processes
through one event -- %parcancel, %unload_ext, a clean kernel shutdown, a
kernel killed hard, the stop button -- and checks:

(a) what the user sees,
(b) the namespace after: finished steps' outputs are there, the steps that
    were running wrote nothing,
(c) the worker processes after (psutil, polled against a deadline): gone
    where they must be, alive and reused where the pool stays warm,
(d) what the next %parrun does.

Long steps sleep in short slices, the seconds they sleep taken from the
notebook's `SLEEP`: set to 30 for the run that is stopped, to 0.1 for the
run after. Each step first writes its worker's pid into a file under
`MARKS`, so the test knows which process runs which step, and when it runs.

Deadlines are generous (a loaded two-core CI machine) and never assert a
wall time tighter than `GONE_WITHIN`; the measured times are printed (-s).
tests/test_notebooks.py::test_interrupting_the_kernel_stops_the_run_and_keeps_the_kernel_usable
covers the stop button's run records and the kernel's use after; the test
here adds the worker processes and what the resumed run runs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from jupyter_client.manager import KernelManager

GONE_WITHIN = 5.0  # seconds for a worker to exit after the event (measured: well under 1.5 s)
CELL_TIMEOUT = 60.0  # seconds a cell may take before the test gives up


# -- processes ---------------------------------------------------------------------


def alive(proc: psutil.Process) -> bool:
    """Whether `proc` still runs (a zombie waiting for its parent to reap it does not)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(procs: list[psutil.Process], timeout: float = GONE_WITHIN) -> list[psutil.Process]:
    """Poll until every process in `procs` has exited, or `timeout`; return those left."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in procs if alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def is_resource_tracker(proc: psutil.Process) -> bool:
    """loky's or multiprocessing's resource tracker (the pool starts one of each in
    the kernel), or nbpar's watchdog (nbpar/folders.py): not workers; they exit when
    the kernel does."""
    try:
        return any("resource_tracker" in part or part.endswith("folders.py") for part in proc.cmdline())
    except psutil.Error:
        return False


# -- a kernel ----------------------------------------------------------------------


@dataclass
class Reply:
    text: str  # what the cell printed, stdout and stderr
    error: str  # the error the cell showed, its traceback lines joined ("" if none)
    ename: str | None  # the error's class name


class Kernel:
    """A real Jupyter kernel running this interpreter, its nbpar on 2 process workers."""

    def __init__(self, kernel_name: str) -> None:
        self.km = KernelManager(kernel_name=kernel_name)
        env = {**os.environ, "NBPAR_WORKERS": "2", "NBPAR_BACKEND": "process"}
        self.km.start_kernel(env=env)
        self.kc = self.km.blocking_client()
        self.seen: list[psutil.Process] = []  # every process of the kernel's a test looked at
        try:
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=CELL_TIMEOUT)
            self.pid = int(self.execute("import os\nprint(os.getpid())").text)
            self.process = psutil.Process(self.pid)
        except BaseException:
            self.close()
            raise

    def send(self, code: str) -> str:
        """Start running a cell; returns its message id (see `collect`)."""
        return self.kc.execute(code)

    def collect(self, msg_id: str, timeout: float = CELL_TIMEOUT) -> Reply:
        """What the cell `msg_id` printed and showed, once it has finished."""
        deadline = time.monotonic() + timeout
        text: list[str] = []
        error: list[str] = []
        ename = None
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                text.append(content["text"])
            elif kind == "error":
                ename = content["ename"]
                error.append("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                break
        while (
            self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))["parent_header"].get("msg_id")
            != msg_id
        ):
            pass
        return Reply("".join(text), "\n".join(error), ename)

    def execute(self, code: str, timeout: float = CELL_TIMEOUT) -> Reply:
        """Run a cell to its end."""
        return self.collect(self.send(code), timeout)

    def ok(self, code: str, timeout: float = CELL_TIMEOUT) -> Reply:
        """Run a cell that must not fail."""
        reply = self.execute(code, timeout)
        assert reply.ename is None, f"cell failed: {code!r}:\n{reply.error}"
        return reply

    def descendants(self) -> list[psutil.Process]:
        """The kernel's child processes, and theirs: workers and loky's resource tracker."""
        try:
            found = self.process.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self.seen.extend(found)
        return [p for p in found if alive(p)]

    def workers(self) -> list[psutil.Process]:
        """The kernel's worker processes."""
        return [p for p in self.descendants() if not is_resource_tracker(p)]

    def close(self) -> None:
        """Shut the kernel down (cleanly: its exit handlers remove its files),
        and kill any process of it a failed test left behind."""
        try:
            self.kc.stop_channels()
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=False)
        finally:
            for proc in self.seen:
                if alive(proc):
                    proc.kill()


@pytest.fixture
def kernel(kernel_name: str) -> Iterator[Kernel]:
    k = Kernel(kernel_name)
    try:
        yield k
    finally:
        k.close()


# -- a notebook --------------------------------------------------------------------

SLOW = """%%step {name}{options}
import os, time
mark("{name}")
for _ in range(int(SLEEP / 0.05)):
    time.sleep(0.05)
{name} = {value}
"""

# The steps mark through a function of an ordinary cell: a step that writes a
# file itself is kept in notebook order with the others that do (and these
# run side by side).
MARK = (
    "def mark(name):\n    import os\n    with open(os.path.join(MARKS, name), 'w') as f:\n"
    "        f.write(str(os.getpid()))"
)

BUSY = """%%step {name}
import os, time
mark("{name}")
_end = time.time() + SLEEP
while time.time() < _end:
    pass
{name} = 1
"""


def set_up(kernel: Kernel, marks: Path) -> None:
    """quick, then slow_a and slow_b side by side on the two workers, tail after slow_a."""
    kernel.ok("%load_ext nbpar")
    kernel.ok(f"SLEEP = 30\nMARKS = {str(marks)!r}\n{MARK}")
    register_steps(kernel)


def register_steps(kernel: Kernel) -> None:
    kernel.ok("%%step quick\nquick = 1")
    kernel.ok(SLOW.format(name="slow_a", options=" --after quick", value="quick + 1"))
    kernel.ok(SLOW.format(name="slow_b", options=" --after quick", value="quick + 2"))
    kernel.ok("%%step tail\ntail = slow_a * 10")


def running(marks: Path, *steps: str, timeout: float = CELL_TIMEOUT) -> dict[str, psutil.Process]:
    """Wait until `steps` run; their worker processes."""
    deadline = time.monotonic() + timeout
    while True:
        pids = {}
        for step in steps:
            mark = marks / step
            text = mark.read_text() if mark.exists() else ""
            if text:
                pids[step] = psutil.Process(int(text))
        if len(pids) == len(steps):
            return pids
        assert time.monotonic() < deadline, f"steps not running after {timeout}s: {set(steps) - set(pids)}"
        time.sleep(0.05)


def names_in(kernel: Kernel, *names: str) -> dict[str, object]:
    """Which of `names` the notebook's namespace holds, with their values."""
    text = kernel.ok(f"import json\nprint(json.dumps({{n: globals()[n] for n in {names!r} if n in globals()}}))").text
    return json.loads(text)  # type: ignore[no-any-return]


def statuses(kernel: Kernel) -> dict[str, list[object]]:
    """The last run's steps: [status, worker pid or None]."""
    text = kernel.ok(
        "import json, nbpar\n"
        "print(json.dumps({n: [s.status, int(s.worker[4:]) if s.worker and s.worker.startswith('pid ') else None]"
        " for n, s in nbpar.last_run().steps.items()}))"
    ).text
    return json.loads(text)  # type: ignore[no-any-return]


def resume(kernel: Kernel) -> dict[str, list[object]]:
    """The next %parrun, with short steps: it must succeed; its records."""
    kernel.ok("SLEEP = 0.1")
    reply = kernel.ok("%parrun --no-widget")
    assert "up to date (quick)" in reply.text  # said before the run starts
    return statuses(kernel)


def check_resumed(kernel: Kernel, after: dict[str, list[object]], old: list[psutil.Process]) -> None:
    """The next run ran only what had not finished, on live workers of a new pool."""
    assert {n: s for n, (s, _) in after.items()} == {
        "quick": "up-to-date",
        "slow_a": "done",
        "slow_b": "done",
        "tail": "done",
    }
    assert names_in(kernel, "quick", "slow_a", "slow_b", "tail") == {"quick": 1, "slow_a": 2, "slow_b": 3, "tail": 20}
    new = {pid for _, pid in after.values() if pid is not None}
    workers = {p.pid for p in kernel.workers()}
    assert new and new <= workers  # the new pool is warm: its workers stay for the next run
    assert not new & {p.pid for p in old}
    assert len(workers) == 2, f"the kernel has {len(workers)} workers, not the 2 of its pool"


# -- the rows ------------------------------------------------------------------------


@pytest.mark.slow
def test_parcancel_stops_the_workers_of_cancelled_steps_and_the_next_run_resumes(kernel: Kernel, tmp_path: Path):
    set_up(kernel, tmp_path)
    reply = kernel.ok("%parrun --background --no-widget")
    assert "running in the background" in reply.text
    workers = running(tmp_path, "slow_a", "slow_b")
    assert set(workers.values()) <= set(kernel.workers())

    start = time.monotonic()
    reply = kernel.ok("%parcancel")
    left = wait_gone(list(workers.values()))
    took = time.monotonic() - start
    print(f"\n%parcancel: workers of the cancelled steps gone {took:.2f}s after the cell was sent")

    assert "nbpar: run cancelled; 3 steps cancelled: slow_a, slow_b, tail" in reply.text  # (a)
    assert names_in(kernel, "quick", "slow_a", "slow_b", "tail") == {"quick": 1}  # (b)
    assert not left, f"workers of cancelled steps still running: {left}"  # (c)
    assert kernel.workers() == []  # the pool went with them: nothing idles on
    check_resumed(kernel, resume(kernel), list(workers.values()))  # (d)
    pool = kernel.workers()
    kernel.ok("%parrun --no-widget --force quick")  # the new pool stays warm: the next run reuses it
    assert statuses(kernel)["quick"][1] in {p.pid for p in pool}
    assert set(kernel.workers()) == set(pool)


@pytest.mark.slow
def test_the_first_parrun_after_load_ext_runs_on_the_workers_the_load_started(kernel: Kernel):
    """`%load_ext nbpar` starts the pool; the first `%parrun` (with the
    notebook's default worker count, then with that count given) runs on
    those very workers and starts no other."""
    kernel.ok("%load_ext nbpar")
    deadline = time.monotonic() + CELL_TIMEOUT
    while len(kernel.workers()) < 2:
        assert time.monotonic() < deadline, f"the load started {len(kernel.workers())} workers, not 2"
        time.sleep(0.05)
    warm = {p.pid for p in kernel.workers()}
    for name in ("a", "b", "c", "d"):
        kernel.ok(f"%%step {name}\nimport os, time\ntime.sleep(0.2)\n{name} = os.getpid()")
    for options in ("", " --workers 2"):
        kernel.ok(f"%parrun --no-widget --force{options}")
        ran = statuses(kernel)
        assert all(status == "done" for status, _ in ran.values()), ran
        used = {pid for _, pid in ran.values()}
        assert used == warm, f"the run used {used}, the load started {warm}"  # both workers, side by side
        assert {p.pid for p in kernel.workers()} == warm  # no other pool


@pytest.mark.slow
def test_unload_ext_cancels_the_background_run_and_stops_every_worker(kernel: Kernel, tmp_path: Path):
    set_up(kernel, tmp_path)
    kernel.ok("%parrun --background --no-widget")
    running(tmp_path, "slow_a", "slow_b")
    workers = kernel.workers()
    assert len(workers) == 2

    start = time.monotonic()
    reply = kernel.ok("%unload_ext nbpar")
    left = wait_gone(workers)
    took = time.monotonic() - start
    print(f"\n%unload_ext: every worker gone {took:.2f}s after the cell was sent")

    assert "nbpar: unloaded; the background run was cancelled: slow_a, slow_b, tail." in reply.text  # (a)
    assert "Steps that finished kept their outputs" in reply.text
    assert names_in(kernel, "quick", "slow_a", "slow_b", "tail") == {"quick": 1}  # (b)
    assert not left, f"workers still running after %unload_ext: {left}"  # (c)
    assert kernel.workers() == []
    gone = kernel.execute("%parrun")  # the magics went with the extension
    assert "UsageError: Line magic function `%parrun` not found" in gone.text

    kernel.ok("%load_ext nbpar")  # (d): a fresh extension; the step cells are run again
    register_steps(kernel)
    kernel.ok("SLEEP = 0.1")
    kernel.ok("%parrun --no-widget")
    after = statuses(kernel)
    assert {n: s for n, (s, _) in after.items()} == dict.fromkeys(("quick", "slow_a", "slow_b", "tail"), "done")
    assert names_in(kernel, "slow_a", "tail") == {"slow_a": 2, "tail": 20}
    new = {pid for _, pid in after.values()}
    pool = kernel.workers()
    assert new <= {p.pid for p in pool} and not new & {p.pid for p in workers}

    # Unloading with the pool idle, and right after a load whose warm-up is starting a pool.
    assert kernel.ok("%unload_ext nbpar\n%load_ext nbpar\n%unload_ext nbpar").text == ""
    assert not wait_gone(pool)
    time.sleep(1.0)  # a warm-up that outlived the unload would have started its workers by now
    assert kernel.workers() == []


@pytest.mark.slow
def test_clean_kernel_shutdown_during_a_background_run_leaves_no_worker(kernel: Kernel, tmp_path: Path):
    set_up(kernel, tmp_path)
    kernel.ok("%parrun --background --no-widget")
    running(tmp_path, "slow_a", "slow_b")
    procs = kernel.descendants()  # the workers and loky's resource tracker
    assert len([p for p in procs if not is_resource_tracker(p)]) == 2

    kernel.km.shutdown_wait_time = 20.0  # jupyter_client signals the process group after 10 s, not 2.5
    start = time.monotonic()
    kernel.kc.stop_channels()
    kernel.km.shutdown_kernel(now=False)
    shut = time.monotonic() - start
    left = wait_gone(procs)
    took = time.monotonic() - start
    print(f"\nclean shutdown: shutdown_kernel took {shut:.2f}s; every child gone after {took:.2f}s")

    assert not alive(kernel.process)
    assert not left, f"processes of the kernel still running after its shutdown: {left}"
    # The kernel exited by itself: jupyter_client did not have to terminate it (after the
    # shutdown request it waits shutdown_wait_time / 2, then SIGTERMs the process group).
    assert shut < kernel.km.shutdown_wait_time / 2, f"the kernel took {shut:.1f}s to shut down"


@pytest.mark.slow
def test_workers_busy_in_a_step_exit_when_the_kernel_is_killed(kernel: Kernel, tmp_path: Path):
    """SIGKILL to the kernel alone (the OOM killer): nothing in the kernel
    runs, the workers must notice by themselves. (`shutdown_kernel(now=True)`
    would signal the whole process group, workers included.)"""
    kernel.ok("%load_ext nbpar")
    kernel.ok(f"SLEEP = 60\nMARKS = {str(tmp_path)!r}\n{MARK}")
    kernel.ok(SLOW.format(name="sleeper", options="", value="1"))
    kernel.ok(BUSY.format(name="spinner"))
    kernel.send("%parrun --no-widget")  # blocking: the kernel is busy in the run
    workers = running(tmp_path, "sleeper", "spinner")
    procs = kernel.descendants()
    assert set(workers.values()) <= set(procs)

    start = time.monotonic()
    os.kill(kernel.pid, signal.SIGKILL)
    left = wait_gone(procs)
    took = time.monotonic() - start
    print(f"\nkernel killed: its workers (one sleeping, one spinning) and all children gone after {took:.2f}s")
    assert not left, f"processes of the killed kernel still running: {left}"


@pytest.mark.slow
def test_a_worker_in_c_code_holding_the_gil_exits_when_the_kernel_is_killed(kernel: Kernel, tmp_path: Path):
    """worker._exit_with_parent is a Python thread: it cannot run while the
    step's C code holds the GIL. The kernel's watchdog (folders.py) kills it."""
    kernel.ok("%load_ext nbpar")
    kernel.ok(f"MARKS = {str(tmp_path)!r}")
    kernel.ok(
        '%%step summer\nimport os\nwith open(os.path.join(MARKS, "summer"), "w") as _f:\n'
        "    _f.write(str(os.getpid()))\nsummer = sum(range(10**12))"  # minutes, in one C call
    )
    kernel.send("%parrun --no-widget")
    worker = running(tmp_path, "summer")["summer"]
    procs = kernel.descendants()
    time.sleep(0.2)  # in the sum by now
    start = time.monotonic()
    os.kill(kernel.pid, signal.SIGKILL)
    left = wait_gone(procs)
    print(f"\nkernel killed: its worker in C code, and all its children, gone after {time.monotonic() - start:.2f}s")
    assert not left, "the worker outlives its killed kernel while its step is in C code"
    assert not alive(worker)


@pytest.mark.slow
def test_stop_button_stops_the_workers_of_interrupted_steps_and_the_next_run_resumes(kernel: Kernel, tmp_path: Path):
    set_up(kernel, tmp_path)
    msg_id = kernel.send("%parrun --no-widget")
    workers = running(tmp_path, "slow_a", "slow_b")

    start = time.monotonic()
    kernel.km.interrupt_kernel()  # SIGINT to the kernel's process group, as the stop button
    reply = kernel.collect(msg_id)
    ended = time.monotonic() - start
    left = wait_gone(list(workers.values()))
    took = time.monotonic() - start
    print(f"\nstop button: cell ended after {ended:.2f}s, workers of the interrupted steps gone after {took:.2f}s")

    assert reply.ename == "RunError"  # (a)
    assert "nbpar: run interrupted" in reply.error and "cancelled: slow_a, slow_b, tail" in reply.error
    assert "Steps that finished wrote their outputs (quick)" in reply.error
    assert names_in(kernel, "quick", "slow_a", "slow_b", "tail") == {"quick": 1}  # (b)
    assert not left, f"workers of interrupted steps still running: {left}"  # (c)
    assert kernel.workers() == []
    check_resumed(kernel, resume(kernel), list(workers.values()))  # (d)
