"""Packing: which tasks to submit for the units that are ready. Decisions
only: the run loop (scheduler.py) hands over the ready units and what is
known of how long units take, and gets back the tasks to submit; it changes
its own state from them.

A unit's duration is known from this run or the last (`Estimates`), else
guessed from this run's typical unit, once the first units have said it.
The rules, for the units ready at one moment:

- unknown duration (nothing known, nothing typical yet): a *probe*, one unit
  per task, at most `2 * workers` probes in flight; the others are
  *deferred* until the probes say how long a unit of this run takes (a
  first run of 10,000 tiny steps does not send 10,000 tasks to learn it);
  not on an inline backend, where each unit runs at once anyway;
- small (under SMALL seconds), alone (not the head of a chain of slices)
  and of a step whose batch never crashed: *batched* when more are ready
  than the backend has workers, as joblib batches small tasks; each batch a
  task of about BATCH seconds, with at least two batches per worker (at
  most GUESSED_BATCH units when only the typical unit says they are small),
  smaller and smaller towards the end (each a 2 * workers-th of what is
  left, down to TAIL_BATCH units), so that the last batches end together
  and what the kernel does after the last one comes back is short.
  When no more are ready than workers, each goes alone, with the small
  steps after it *fused* behind it (`fuse`);
- the rest: one task each (with the open chained slices after it).

A batch's units are independent; a fused chain's each wait for the one
before, and one worker runs them back to back with no round trip to the
kernel between them. A batch or fused chain that crashes is run again unit
by unit (crashes.py), its steps `unbatched` for the rest of the run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Container, Mapping
from typing import Any

from .contract import Backend

Key = tuple[str, "int | None"]  # (step, slice index or None for a whole step)

SMALL = 0.005  # seconds: units shorter than this are batched when many are ready
BATCH = 0.05  # seconds of work a batch of small units aims at
GUESSED_BATCH = 64  # units at most in a batch of steps never timed (a wrong guess costs little)
TAIL_BATCH = 32  # units at least in a batch as the batches get smaller towards the end
FUSED_MAX = 200  # small steps at most in one task, each waiting for the one before

# What to do with the keys of a parcel (kind, keys, backend):
ALONE = 0  # one task: a unit and the chained slices after it
PROBE = 1  # one task, one unit of unknown duration
BATCH_OF_SMALL = 2  # one task of independent small units
FUSE = 3  # one task: a small unit, and the small steps `fuse` finds after it

Parcel = tuple[int, list[Key], Any]  # (kind, keys, backend): one task to submit


class Estimates:
    """How long a unit of each step takes, as far as the run knows: from
    this run (`took`, public: the pipeline keeps it for the next run), else
    from the last (`last`), else the typical unit of this run, known once
    `probes` units have come back (the median of them). Only the loop
    changes it, through `learn`."""

    def __init__(self, last: Mapping[str, float], probes: int) -> None:
        self.took: dict[str, float] = {}  # seconds a unit of each step took in this run
        self.last = last  # seconds a unit of each step took last time
        self.typical: float | None = None  # a typical unit's seconds in this run, once known
        self._first: list[float] = []  # the first units' seconds, to learn `typical`
        self._probes = probes

    def estimate(self, name: str) -> float | None:
        """How long a unit of step `name` will take; None if nothing is known yet."""
        known = self.took.get(name, self.last.get(name))
        return known if known is not None else self.typical

    def known(self, name: str) -> bool:
        """Whether a unit of `name` was timed (this run or the last), not guessed."""
        return name in self.took or name in self.last

    def learn(self, name: str, seconds: float) -> None:
        """A unit of `name` took `seconds`."""
        self.took[name] = seconds
        if self.typical is None:
            self._first.append(seconds)
            if len(self._first) >= self._probes:
                self.typical = statistics.median(self._first)


def pack(
    units: list[tuple[list[Key], Backend]], estimates: Estimates, unbatched: Container[str], probes_free: int
) -> tuple[list[Parcel], list[Key]]:
    """The tasks to submit for `units` (each: a ready unit and the chained
    slices after it, and its backend), in order, and the units to defer
    (their duration unknown, and `probes_free` probes already sent)."""
    parcels: list[Parcel] = []
    deferred: list[Key] = []
    small: dict[Backend, list[Key]] = {}
    for keys, backend in units:
        key = keys[0]
        guess = estimates.estimate(key[0])
        if guess is None and not backend.inline:
            if probes_free <= 0:
                deferred.append(key)  # until the first units say how long units take
                continue
            probes_free -= 1
            parcels.append((PROBE, keys, backend))
        elif len(keys) == 1 and guess is not None and guess < SMALL and key[0] not in unbatched:
            small.setdefault(backend, []).append(key)
        else:
            parcels.append((ALONE, keys, backend))
    for backend, keys in small.items():
        parcels.extend(batches(keys, backend, estimates))
    return parcels, deferred


def batches(keys: list[Key], backend: Backend, estimates: Estimates) -> list[Parcel]:
    """The tasks for small units `keys` of one backend: alone (and fused)
    if there are no more than workers, else batches small enough to keep
    every worker busy (at least two per worker)."""
    workers = backend.workers
    if len(keys) <= workers:
        return [(FUSE, [key], backend) for key in keys]
    known: list[Key] = []
    guessed: list[Key] = []  # only this run's typical unit says they are small
    for k in keys:
        (known if estimates.known(k[0]) else guessed).append(k)
    parcels: list[Parcel] = []
    for group, most in ((known, len(keys)), (guessed, GUESSED_BATCH)):
        if not group:
            continue
        each = max(sum(estimates.estimate(k[0]) or 0.0 for k in group) / len(group), 1e-6)
        size = max(1, min(math.ceil(len(group) / (2 * workers)), int(BATCH / each), most))
        start = 0
        while start < len(group):
            left = len(group) - start
            take = min(size, max(TAIL_BATCH, math.ceil(left / (2 * workers))), left)
            if left - take < TAIL_BATCH and left <= size:
                take = left  # (no last batch of a few)
            parcels.append((BATCH_OF_SMALL, group[start : start + take], backend))
            start += take
    return parcels


def fuse(
    key: Key, estimates: Estimates, unbatched: Container[str], next_link: Callable[[str], str | None]
) -> list[Key]:
    """`key` and the small steps after it, each the one step the one before
    alone holds back (`next_link(step)`: the loop's graph says which, if
    one), while each was timed under SMALL, never crashed in a batch, and
    the whole stays under BATCH seconds and FUSED_MAX steps. A slice is
    never fused."""
    keys = [key]
    name, index = key
    total = estimates.estimate(name) or 0.0
    while index is None and len(keys) < FUSED_MAX:
        child = next_link(name)
        if child is None:
            break
        guess = estimates.estimate(child) if estimates.known(child) else None
        if guess is None or guess >= SMALL or child in unbatched or total + guess > BATCH:
            break
        total += guess
        keys.append((child, None))
        name = child
    return keys


def undeferred(deferred: int, estimates: Estimates, probes_free: int) -> int:
    """How many deferred units to submit now: all of them once units of
    this run have said how long they take, else as many as may probe."""
    if estimates.typical is not None:
        return deferred
    return min(max(0, probes_free), deferred)


def reports_start(batch: bool, first: bool, guess: float | None, timeout: float | None) -> bool:
    """Whether a unit's task reports its start: not a small unit (its outcome
    says when it ran), unless it has a timeout (the loop's deadline starts
    there). The later slices of a chain do report it: if their worker dies,
    the last one that started is the culprit. (A batch or fused chain that
    crashes is run again unit by unit instead.) `first`: the task's first
    unit, or a whole step."""
    return timeout is not None or not (batch or (first and (guess or SMALL) < SMALL))
