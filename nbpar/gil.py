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

Costs: the sampler sleeps when no step runs; during a step, one wake a
millisecond, and in Python code one switch of the GIL every switch interval.
Steps shorter than `SHORTEST` get no figure (too few samples).
"""

from __future__ import annotations

import threading
import time

PERIOD = 0.001  # seconds the sampler sleeps between its wakes
SHORTEST = 0.005  # a step shorter than this gets no figure


class GilMeter:
    """`start()` before a step, `stop()` after it: the share of the time
    between them that the GIL was held by others than the sampler."""

    def __init__(self) -> None:
        self._armed = threading.Event()
        self._round = 0  # which start() the sampler's count is for
        self._sleeps = 0
        self._began = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._sample, name="nbpar-gil-meter", daemon=True)
            self._thread.start()
        self._round += 1
        self._sleeps = 0
        self._began = time.perf_counter()
        self._armed.set()

    def stop(self) -> float | None:
        """The share (0 to 1) of the time since `start` the GIL was held, or
        None for a step too short to tell."""
        self._armed.clear()
        wall = time.perf_counter() - self._began
        if wall < SHORTEST:
            return None
        return min(1.0, max(0.0, 1.0 - self._sleeps * PERIOD / wall))

    def _sample(self) -> None:
        while True:
            self._armed.wait()
            round_ = self._round
            time.sleep(PERIOD)
            if self._armed.is_set() and self._round == round_:  # (a sleep spanning two steps counts for neither)
                self._sleeps += 1


meter = GilMeter()  # the worker process's (one step at a time runs in its main thread)
