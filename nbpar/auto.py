"""`--backend auto`: each step on a thread or a process, from what was measured of it.

Decisions only (no I/O, no clock): the pipeline passes what it knows of a
step (its last run on a process: how long it took and the share of that
time it held the GIL, `gil.py`), and gets back where the step runs and a
sentence saying why, which the run's text display prints and the step's
record keeps (`StepRecord.placed`). In order:

1. A step with a timeout runs on a process: only a process can be stopped
   (a thread past its timeout is abandoned and runs on).
2. A step never measured (new, or its code changed since) runs on a
   process, which measures it.
3. A step that took less than `SHORT` runs on a thread: sending it to a
   process costs more than it could gain.
4. A step that held the GIL less than `THREAD_BELOW` of its time (NumPy,
   pandas, I/O, sleeps) runs on a thread: its inputs are not copied and its
   C code overlaps with the others'.
5. Any other (Python code, which holds the GIL) runs on a process.

The pipeline then moves a process step whose notebook input cannot be
pickled to a thread (saying so), where `--backend process` refuses the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from .options import BackendName

THREAD_BELOW = 0.5  # a step that held the GIL less than this share of its time runs on a thread
SHORT = 0.002  # seconds: a step shorter than this runs on a thread


@dataclass(frozen=True, slots=True)
class Measure:
    """What a step's last run on a process showed: its code then, its time, the GIL's share of it."""

    source: str
    seconds: float
    gil: float | None  # None: too short to tell (gil.SHORTEST)


def choose(source: str, measure: Measure | None, timeout: float | None) -> tuple[BackendName, str]:
    """Where a step with code `source` and `timeout` runs, and why (see the module docstring)."""
    if timeout is not None:
        return "process", f"it has a timeout ({timeout:g}s), and only a process can be stopped"
    if measure is None or measure.source != source:
        changed = "not measured yet" if measure is None else "its code changed since it was measured"
        return "process", f"{changed}: a process measures it"
    if measure.seconds < SHORT:
        return "thread", f"it took {_ms(measure.seconds)}: sending it to a process costs more than it gains"
    if measure.gil is None:
        return "process", "too short to tell how much it holds the GIL"
    share = f"it held the GIL {measure.gil:.0%} of its {measure.seconds:.2g}s"
    if measure.gil < THREAD_BELOW:
        return "thread", f"{share} (C code that lets go of it overlaps on threads)"
    return "process", f"{share} (Python code runs in parallel only in processes)"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2g} ms"
