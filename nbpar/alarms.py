"""Step timeouts where a signal can deliver them, and the sections they must not cut.

Data flow of one step's timeout::

    worker.execute(task)
      with deadline(task.timeout):       a main thread only (a worker process,
        arm SIGALRM after `timeout`       or an inline run in the kernel's main
        exec the step's code              thread); elsewhere the kernel's
                                          scheduler enforces the timeout
          SIGALRM -> alarm():
            outside a held section -> raise StepTimeout in the step's frame
            inside one (hold_alarm ... release_alarm: nbpar's own work,
              such as sending the step's output, capture.py)
                                   -> kept; raised by release_alarm
      disarm; a timer armed before (pytest-timeout's, say) is resumed

StepTimeout is a BaseException, so that the step's own `except Exception`
does not swallow it; worker.execute turns it into the step's error. The
state of a held section is the thread's own (a thread-local): only the
thread the alarm interrupts holds it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StepTimeout(BaseException):
    """Raised inside a step that ran past its timeout. A BaseException, so
    that the step's own `except Exception` does not swallow it."""


_LONGEST_ALARM = 1e8  # seconds (three years); a longer timeout (inf) is no limit, and overflows setitimer

# per thread: `busy`, inside a held section; `stop`, the StepTimeout an alarm kept meanwhile
_local = threading.local()


@contextmanager
def deadline(timeout: float | None) -> Iterator[None]:
    """Raise StepTimeout in the block when `timeout` seconds have passed:
    SIGALRM, which only a main thread can receive (a worker process, or an
    inline run in the kernel's main thread). Elsewhere (or without a
    timeout) the block runs unbounded: the kernel's scheduler enforces the
    timeout. A timer armed before (pytest-timeout's, say) is resumed after."""
    if (
        timeout is None
        or not timeout < _LONGEST_ALARM
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    stop = StepTimeout(f"timeout of {timeout:g}s")

    def alarm(signum: int, frame: Any) -> None:
        if getattr(_local, "busy", False):
            _local.stop = stop  # nbpar is in a held section: stop when it is done (release_alarm)
        else:
            raise stop

    previous = signal.signal(signal.SIGALRM, alarm)
    outer, interval = signal.setitimer(signal.ITIMER_REAL, timeout)
    armed = time.monotonic()
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
            _local.stop = None
            if outer:
                signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - armed), 0.001), interval)


# A step's timeout must not cut nbpar's own work short: a message to the
# kernel stopped halfway would garble the channel. While a thread holds the
# alarm (`busy`), its alarm only sets `stop`, raised when it releases it.
# A pair of calls rather than a context manager: it wraps every line a step
# prints, and a generator-based one costs several times as much.


def hold_alarm() -> bool:
    """Start a section the alarm must not interrupt; whether this thread
    was in one already (pass it to `release_alarm`)."""
    was_busy = getattr(_local, "busy", False)
    _local.busy = True
    return was_busy


def release_alarm(was_busy: bool) -> None:
    """End the section `hold_alarm` started; leaving the outermost one
    raises the StepTimeout an alarm kept meanwhile."""
    _local.busy = was_busy
    stop = getattr(_local, "stop", None)
    if stop is not None and not was_busy:
        _local.stop = None
        raise stop
