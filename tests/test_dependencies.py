"""Dependency contracts: what nbpar relies on in loky, cloudpickle, IPython
and ipykernel beyond their documented API, one test each.

A new release inside the bounds of pyproject.toml that changes one of these
fails here, with a message naming the package, its version and what nbpar
needs, instead of reaching users as a hang, a lost traceback or a wrong
pickle (cloudpickle 3.1.3 renaming every function's file "<dynamic-code>"
was found by users). The versions a run resolved are printed in pytest's
header (conftest.py), so a CI log says which release broke what.

| dependency  | what nbpar relies on                                  | where                      |
| ----------- | ----------------------------------------------------- | -------------------------- |
| loky        | `_flags.kill_workers`, `_processes`, `_executor_manager_thread` of a pool | backends/process.py |
| loky        | manager thread's `_MANAGER_STATE`; call queue's `_thread`, `_reader`, `_ignore_epipe` | process._end |
| loky        | `TerminatedWorkerError`'s text: `EXIT(n)` / `SIGNAME(-n)` | process.explain_exit    |
| loky        | `backend.resource_tracker._resource_tracker._stop`     | extension.py (kernel exit) |
| loky        | names its semaphores `/loky-PID-RANDOM` (PID: the pool's process) | folders.py (the watchdog) |
| cloudpickle | `Pickler.reducer_override` sees code objects, classes, functions | sharing._Pickler  |
| IPython     | a cell's source in linecache (mtime None), `magics_manager.registry` | sharing, extension |
| IPython     | `shell.compile.flags` keeps a cell's `__future__` imports | magics (steps compile with them) |
| IPython     | `%time x` becomes `get_ipython().run_line_magic('time', 'x')` | analysis (code-running magics) |
| IPython     | `display` lives in `IPython.core.display*`              | worker.is_ipython_display  |
| ipykernel   | sets `shell.exit_now` on a shutdown request; cells in linecache | extension, sharing |
"""

from __future__ import annotations

import linecache
import multiprocessing.resource_tracker
import os
import pickle
import threading
import time
from importlib.metadata import version
from pathlib import Path

import loky
import nbformat
import pytest
from loky.backend import resource_tracker
from loky.process_executor import TerminatedWorkerError
from nbclient import NotebookClient

from nbpar import sharing
from nbpar.backends.process import explain_exit
from nbpar.magics import NbparMagics
from nbpar.worker import is_ipython_display

from .conftest import run_cell


def changed(package: str, what: str) -> str:
    """The failure message of a broken contract."""
    return (
        f"{package} {version(package)} changed {what}, which nbpar relies on: adapt nbpar (see "
        f"tests/test_dependencies.py) or bound {package} below this version in pyproject.toml."
    )


# -- loky -------------------------------------------------------------------------


def test_loky_pool_internals():
    pool = loky.ProcessPoolExecutor(max_workers=1)
    try:
        pid = pool.submit(os.getpid).result()
        flags = getattr(pool, "_flags", None)
        assert hasattr(flags, "kill_workers"), changed("loky", "ProcessPoolExecutor._flags.kill_workers")
        processes = getattr(pool, "_processes", None)
        assert isinstance(processes, dict) and pid in processes, changed("loky", "ProcessPoolExecutor._processes")
        thread = getattr(pool, "_executor_manager_thread", None)
        assert isinstance(thread, threading.Thread) and thread.is_alive(), changed(
            "loky", "ProcessPoolExecutor._executor_manager_thread"
        )
    finally:
        pool.shutdown(wait=True, kill_workers=True)


def test_loky_pool_threads_hold_what_nbpar_frees():
    """What `process._end` waits for and drops after a pool stopped, so that
    no semaphore of it outlives `stop_pool()`."""
    from nbpar.backends.process import _MANAGER_STATE

    pool = loky.ProcessPoolExecutor(max_workers=1)
    try:
        pool.submit(int).result()
        thread, queue = pool._executor_manager_thread, pool._call_queue
        for name in _MANAGER_STATE:
            assert name in vars(thread), changed("loky", f"_ExecutorManagerThread.{name}")
        assert isinstance(getattr(queue, "_thread", None), threading.Thread), changed(
            "loky", "the call queue's _thread"
        )
        assert callable(getattr(getattr(queue, "_reader", None), "close", None)), changed(
            "loky", "the call queue's _reader"
        )
        assert getattr(queue, "_ignore_epipe", False) is True, changed("loky", "the call queue's _ignore_epipe")
    finally:
        pool.shutdown(wait=True, kill_workers=True)


@pytest.mark.parametrize("end, explained", [("exit", "it exited with code 3"), ("kill", "(SIGKILL)")])
def test_loky_says_how_a_worker_ended(end, explained):
    def die() -> None:
        if end == "exit":
            os._exit(3)
        os.kill(os.getpid(), 9)

    pool = loky.ProcessPoolExecutor(max_workers=1)
    try:
        with pytest.raises(TerminatedWorkerError) as info:
            pool.submit(die).result()
    finally:
        pool.shutdown(wait=True, kill_workers=True)
    assert explained in explain_exit(str(info.value)), changed("loky", f"TerminatedWorkerError's text: {info.value}")


def test_resource_trackers_can_be_stopped():
    for module, package in ((resource_tracker, "loky"), (multiprocessing.resource_tracker, None)):
        stop = getattr(getattr(module, "_resource_tracker", None), "_stop", None)
        what = f"{module.__name__}._resource_tracker._stop"
        assert callable(stop), changed(package, what) if package else f"this Python changed {what}"


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="named semaphores are files in /dev/shm on Linux")
def test_loky_names_its_semaphores_after_the_process():
    before = set(os.listdir("/dev/shm"))
    pool = loky.ProcessPoolExecutor(max_workers=1)
    try:
        pool.submit(int).result()
        made = set(os.listdir("/dev/shm")) - before
    finally:
        pool.shutdown(wait=True, kill_workers=True)
    assert [n for n in made if n.startswith(f"sem.loky-{os.getpid()}-")], changed(
        "loky", f"the names of its semaphores ({sorted(made)}), which nbpar's watchdog unlinks after a kill"
    )


# -- cloudpickle ------------------------------------------------------------------


def test_pickled_functions_keep_their_file_line_and_source():
    """What sharing._Pickler adds to cloudpickle: a function defined in a cell
    crosses with its filename and the cell's lines (which the receiver's
    linecache lacks); a cached one as the function it wraps."""
    filename = "<ipython-input-7-contract>"
    source = "import functools\n\n@functools.cache\ndef lookup(v):\n    return v['nope']\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)
    payload = sharing.dumps(namespace["lookup"])
    del linecache.cache[filename]
    again = pickle.loads(payload)
    code = again.__wrapped__.__code__
    assert (code.co_filename, code.co_firstlineno) == (filename, 3), changed("cloudpickle", "how code is pickled")
    assert linecache.getline(filename, 5) == "    return v['nope']\n", changed("cloudpickle", "how code is pickled")
    assert again.cache_parameters() == {"maxsize": None, "typed": False}


# -- IPython ----------------------------------------------------------------------


def test_ipython_keeps_cell_source_in_linecache(shell):
    run_cell(shell, "def f():\n    return 1")
    filename = shell.user_ns["f"].__code__.co_filename
    entry = linecache.cache.get(filename)
    assert entry is not None and len(entry) == 4 and entry[1] is None, changed(
        "ipython", "how a cell's source is kept in linecache"
    )
    assert entry[2] == ["def f():\n", "    return 1\n"], changed("ipython", "how a cell's source is kept in linecache")


def test_ipython_magics_registry(shell):
    registry = getattr(shell.magics_manager, "registry", None)
    assert isinstance(registry, dict) and isinstance(registry.get("NbparMagics"), NbparMagics), changed(
        "ipython", "MagicsManager.registry"
    )
    step = shell.magics_manager.magics["cell"].get("step")
    assert getattr(step, "__self__", None) is registry["NbparMagics"], changed("ipython", "MagicsManager.magics")


def test_ipython_compiler_keeps_future_flags(shell):
    import __future__

    run_cell(shell, "from __future__ import annotations")
    assert shell.compile.flags & __future__.annotations.compiler_flag, changed(
        "ipython", "InteractiveShell.compile.flags (the notebook's __future__ imports)"
    )


def test_ipython_turns_code_running_magics_into_calls(shell):
    assert "get_ipython().run_line_magic('time', 'y = 2')" in shell.transform_cell("%time y = 2\n"), changed(
        "ipython", "how transform_cell writes a line magic"
    )
    assert "get_ipython().run_cell_magic('time', '', 'y = 2\\n')" in shell.transform_cell("%%time\ny = 2\n"), changed(
        "ipython", "how transform_cell writes a cell magic"
    )


def test_ipython_display_is_recognised(shell):
    from IPython.display import display

    assert is_ipython_display(display) and is_ipython_display(shell.user_ns.get("display", display)), changed(
        "ipython", f"where display lives ({display.__module__})"
    )


# -- ipykernel (a real kernel) ----------------------------------------------------


@pytest.mark.slow
def test_ipykernel_sets_exit_now_on_shutdown(kernel_name: str, tmp_path: Path):
    """extension.py stops the workers when `exit_now` turns True, before
    ipykernel looks for the kernel's children (else the kernel is killed)."""
    from jupyter_client.manager import start_new_kernel

    seen = tmp_path / "exit_now"
    manager, client = start_new_kernel(kernel_name=kernel_name)
    try:
        client.execute_interactive(
            f"get_ipython().observe(lambda change: open({str(seen)!r}, 'w').write(str(change['new'])), "
            "names='exit_now')",
            timeout=60,
        )
        manager.shutdown_kernel(now=False)
    finally:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
    deadline = time.monotonic() + 10
    while not seen.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen.exists() and seen.read_text() == "True", changed("ipykernel", "setting shell.exit_now on shutdown")


@pytest.mark.slow
def test_traceback_into_a_kernel_cell_function_shows_its_source(kernel_name: str, tmp_path: Path):
    """End to end in a real kernel, whose cells have ipykernel's filenames
    (/tmp/ipykernel_<pid>/<hash>.py, in the kernel's linecache only): an error
    in a helper defined in an ordinary cell shows the cell's file, line and
    code, through %parrun and nbpar.pmap."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbpar\nimport nbpar"),
        nbformat.v4.new_code_cell("def lookup(v):\n    return v['nope']"),
        nbformat.v4.new_code_cell("%%step s\nr = lookup({})"),
        nbformat.v4.new_code_cell("%parrun --workers 1 --no-widget"),
        nbformat.v4.new_code_cell("nbpar.pmap(lookup, [{}], workers=1)"),
        nbformat.v4.new_code_cell("print(lookup.__code__.co_filename)"),
    ]
    NotebookClient(nb, kernel_name=kernel_name, timeout=120, allow_errors=True).execute()
    cell_file = "".join(o.get("text", "") for o in nb.cells[5].outputs).strip()
    assert cell_file.endswith(".py") and "ipykernel" in cell_file, cell_file
    for cell in (nb.cells[3], nb.cells[4]):
        error = next(o for o in cell.outputs if o.output_type == "error")
        text = "\n".join(error.traceback)
        assert f"File \"{cell_file}\", line 2, in lookup\n    return v['nope']" in text, text
