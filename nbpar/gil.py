"""How much of a step's time it held the GIL, measured in a worker process.

A worker process runs one step at a time in its main thread. While a step
runs, a sampler thread sleeps `PERIOD` again and again; each time it wakes it
needs the GIL back. If the step runs Python code, the sampler waits until
the interpreter's switch interval makes the step let go (5 ms by default);
if the step is in C code that released the GIL (NumPy, pandas, I/O, a
sleep), it gets it at once. So over the step's wall time ``W`` the sampler
completes ``n`` sleeps, and ``1 - n * PERIOD / W`` is the share of the time
the GIL was held: near 0 for code that would overlap on threads, near 1 for
pure Python, which only processes run in parallel. A loaded machine (the
sampler waiting for a CPU, not the GIL) reads higher: the figure is a
guide for `--backend auto` (auto.py), not an exact measure.

Costs: the sampler is armed once for a worker's whole call (`armed()`,
around every task it runs) and sleeps otherwise; a step only reads the
sampler's count and the clock as it starts and ends (`start`/`stop`: no
lock, no event; a batch of 10,000 tiny steps pays next to nothing). While
armed, one wake a millisecond, and in Python code one switch of the GIL
every switch interval. A sleep that spans a step's start or end counts for
the step it ends in: steps shorter than `SHORTEST` get no figure (too few
samples to make that one count little).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

PERIOD = 0.001  # seconds the sampler sleeps between its wakes
SHORTEST = 0.01  # a step shorter than this gets no figure


class GilMeter:
    """Inside `armed()`: `start()` before a step, `stop()` after it: the
    share of the time between them that the GIL was held by others than
    the sampler."""

    def __init__(self) -> None:
        self._armed = threading.Event()
        self._sleeps = 0  # the sampler's wakes, while armed
        self._at = (0, 0.0)  # the count and the clock at start()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._sample, name="nbpar-gil-meter", daemon=True)
            self._thread.start()
        self._armed.set()
        try:
            yield
        finally:
            self._armed.clear()

    def start(self) -> None:
        self._at = (self._sleeps, time.perf_counter())

    def stop(self) -> float | None:
        """The share (0 to 1) of the time since `start` the GIL was held, or
        None for a step too short to tell (or outside `armed()`)."""
        sleeps, began = self._at
        wall = time.perf_counter() - began
        if wall < SHORTEST or not self._armed.is_set():
            return None
        return min(1.0, max(0.0, 1.0 - (self._sleeps - sleeps) * PERIOD / wall))

    def _sample(self) -> None:
        while True:
            self._armed.wait()
            time.sleep(PERIOD)
            self._sleeps += 1  # (only this thread writes it)


meter = GilMeter()  # the worker process's (one step at a time runs in its main thread)
