"""Crash isolation: when a worker dies, which unit is to blame. A decision
only: the run loop (scheduler.py) hands over the flights the crash failed
and what it knows of them, and acts on the verdict.

On a backend with `shared_fate` (a process pool), a dead worker fails every
unit in flight with `WorkerCrash`, the innocent with the culprit: the
cohort is every flight on that backend; elsewhere, the crashed flight alone.
Of each task, only the last unit its worker took (reported its start) can
be the culprit: a worker runs a task's units one after another, so those it
took before had finished. Then:

- a unit whose worker the kernel killed (past its timeout) is the culprit,
  and the others are innocent;
- else, when only one task had a unit taken, the last unit it took is the
  culprit; when nothing was taken and the cohort is one unit, that unit;
- else, the first unit of every task that had a unit taken (a chain is
  suspected as a whole: its later units need the earlier ones' outputs),
  or, when no worker said it took anything, every chain's first unit, is a
  *suspect*: run again one at a time, alone on its backend (the loop holds
  the other units of shared-fate backends meanwhile; others go on): a
  suspect that crashes alone is the culprit;
- every other unit is innocent: run again as before.

The units of a batch, or of a fused chain of small steps, do not report
their start (packing.py), so a crash says nothing of which one it was:
their steps are *unbatched*, run again one unit per task, so that the
next crash names its unit.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

Key = tuple[str, "int | None"]  # (step, slice index or None for a whole step)

CULPRIT = "culprit"  # failed by the crash
SUSPECT = "suspect"  # run again alone
INNOCENT = "innocent"  # run again as before


def isolate(
    cohort: Sequence[tuple[list[Key], bool]],
    started: Container[Key],
    killed: Container[Key],
    fused: Container[str],
) -> tuple[list[tuple[Key, str]], set[str]]:
    """The verdict on every unit of `cohort` (each flight the crash failed:
    its units in task order, and whether it is a batch), in order, and the
    steps to run unbatched from now on. `started`: the units whose start
    was reported; `killed`: those whose worker the kernel killed; `fused`:
    the steps that went fused behind the step they wait for."""
    keys = [key for flight, _ in cohort for key in flight]
    unbatch = {name for flight, batch in cohort if batch or any(n in fused for n, _ in flight) for name, _ in flight}
    taken = [(flight, took) for flight, batch in cohort if not batch and (took := [k for k in flight if k in started])]
    culprits = {key for key in keys if key in killed}
    if not culprits and len(taken) == 1:
        culprits.add(taken[0][1][-1])
    elif not culprits and not taken and len(cohort) == 1 and len(keys) == 1:
        culprits.add(keys[0])
    suspects: set[Key] = set()
    if not culprits:
        suspects.update(flight[0] for flight, _ in taken)
        if not taken:  # no worker said it took anything: every chain is suspect
            suspects.update(flight[0] for flight, batch in cohort if not batch)
    return [(key, CULPRIT if key in culprits else SUSPECT if key in suspects else INNOCENT) for key in keys], unbatch
