"""Loading and unloading the IPython extension, and the kernel's exit.

`%load_ext nbpar` registers the magics and watches the shell's `exit_now`;
`%unload_ext nbpar` and the kernel's shutdown cancel a run in flight and
stop every worker process, so none is left behind. So does the exit of
the interpreter (a script, a terminal IPython): see `_at_interpreter_exit`.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backends.process import stop_pool

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .magics import NbparMagics


def load(ip: InteractiveShell) -> None:
    from .magics import NbparMagics

    global _exit_hooked
    if not _exit_hooked:  # once a process (before the magics start the pool)
        _register_thread_exit(_at_interpreter_exit)
        _exit_hooked = True
    ip.register_magics(NbparMagics(ip))
    _unobserve_exit(ip)  # once, if loaded again
    ip.observe(_on_exit_now, names="exit_now")


_exit_hooked = False
# threading's own exit hooks run as the interpreter exits, before it joins
# the threads and before `atexit` (loky stops its pools in one of them).
_register_thread_exit: Callable[[Callable[[], None]], None] = threading._register_atexit  # type: ignore[attr-defined]


def _at_interpreter_exit() -> None:
    """The interpreter exits (a script or a terminal IPython that ends right
    after `%load_ext nbpar`, or a kernel after its shutdown): stop the pool
    (its workers may still be starting: once threading's exit hooks have
    begun, loky cannot finish starting a pool, whose workers would wait for
    start-up data that never comes). Runs once, in the main thread."""
    stop_pool()


def unload(ip: InteractiveShell) -> None:
    """Undo `load_ipython_extension`: cancel a background run, stop every
    worker process (the shared pool, whoever started it), drop the magics."""
    from .magics import NbparMagics

    _unobserve_exit(ip)
    magics = ip.magics_manager.registry.pop(NbparMagics.__name__, None)
    if not isinstance(magics, NbparMagics):
        stop_pool()
        return
    for table in ip.magics_manager.magics.values():
        for name in list(table):
            if getattr(table[name], "__self__", None) is magics:
                del table[name]
    cancelled = _stop_run(magics, wait=10.0)
    magics.pipeline.shutdown()
    stop_pool()
    if cancelled is not None:
        magics._print_new_text()  # what the run's display wrote since the last %parstatus
        print(
            f"nbpar: unloaded; the background run was cancelled: {', '.join(cancelled) or 'no step'}. "
            "Steps that finished kept their outputs."
        )


def _stop_run(magics: NbparMagics, wait: float) -> list[str] | None:
    """Cancel the run going on, if any, and wait up to `wait` seconds for its
    loop to stop it (it looks every 0.1 s; a blocking run, cancelled from
    another thread, too); the steps cancelled."""
    run = magics.pipeline.active
    if run is None:
        return None
    run.cancel()
    try:
        run.wait(wait, check=False)
    except TimeoutError:
        pass  # (the steps still running are not among the cancelled)
    return run.result.by_status("cancelled")


def _on_exit_now(change: Any) -> None:
    """The kernel is shutting down (a shutdown or restart request, `exit()`).

    ipykernel then SIGTERMs the kernel's children, again and again, until
    none is left (SIGKILL only after 14 s), and jupyter_client SIGTERMs the
    whole process group if the kernel has not exited after shutdown_wait_time
    / 2 (2.5 s). Left alone, a background run replaces the workers killed
    under it, and loky's and multiprocessing's resource trackers ignore
    SIGTERM: the kernel does not exit by itself, it is terminated. So: stop
    the run, kill the workers, and close the trackers' pipes (they clean up
    and exit, as they would a moment later when the kernel's process ends).
    Runs in the thread that sets `exit_now` (the control thread for a
    shutdown request), before ipykernel looks for children; never raises.
    """
    if not change["new"]:
        return
    try:
        from .magics import NbparMagics

        magics = change["owner"].magics_manager.registry.get(NbparMagics.__name__)
        if isinstance(magics, NbparMagics):
            _stop_run(magics, wait=2.0)
        stop_pool()
        _stop_resource_trackers()
    except Exception as e:  # the kernel must shut down all the same
        print(f"nbpar: stopping the workers at shutdown failed: {type(e).__name__}: {e}", file=sys.__stderr__)


def _stop_resource_trackers() -> None:
    """Stop loky's and multiprocessing's resource-tracker processes, if running
    (`_stop` closes the tracker's pipe and reaps it). Only as the kernel exits:
    a stopped tracker unlinks what is still registered (say, the user's
    SharedMemory), which the kernel's exit would do anyway.

    A stopped pool's queues can sit in a reference cycle, their semaphores
    still registered: collected after the tracker stopped, they made it warn
    of "leaked semlock objects" and a tracker started anew print a
    `KeyError` for each (seen in 1 of 3 shutdowns). So the garbage is
    collected first."""
    import multiprocessing.resource_tracker

    from loky.backend import resource_tracker

    gc.collect()
    for module in (resource_tracker, multiprocessing.resource_tracker):
        stop = getattr(getattr(module, "_resource_tracker", None), "_stop", None)
        if stop is not None:
            try:
                stop()
            except Exception:
                pass


def _unobserve_exit(ip: InteractiveShell) -> None:
    try:
        ip.unobserve(_on_exit_now, names="exit_now")
    except ValueError:
        pass  # not observed
