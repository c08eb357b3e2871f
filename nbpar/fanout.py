"""Fan-out and merge in a run: a step run once per slice of one input
(`--over`), and its slices' outputs put back together. partition.py cuts
values and merges them; this module is what the run loop (scheduler.py)
asks about a fanned-out step's slices.

Data flow of a fanned-out step A, and of a step B chained to it (over an
output of A, with the same slicing)::

    A opens   -> split_input(A, value)  -> Fan(A).slices, count;  units (A, i) ready
    B opens   -> Fan(B).count = Fan(A).count;  units (B, i) ready for every i in Fan(A).done
    (A, i) submitted: with the open chained slices after it, chain_after(...)
                      -> [(A, i), (B, i), ...] as one task (one worker; B's input
                      is A's output, handed over in the worker)
    (A, i) done -> Fan(A).done[i] = outcome;  (B, i) ready if B is open
    every slice of A done -> merged(A, Fan(A).done) -> A's outputs, as a whole step's

A `Fan` belongs to the loop: only the loop changes it (see the state table
at the top of scheduler.py). The functions here change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .contract import Outcome
from .graph import Step
from .partition import MERGES, MergeError, Slice, SliceError, listed_note, merge, split

Key = tuple[str, "int | None"]  # (step, slice index or None for a whole step)


@dataclass
class Fan:
    """The slices of a fanned-out step in this run."""

    count: int | None = None  # known when the step (or its chain parent) opens
    slices: dict[int, Slice] = field(default_factory=dict)  # split here (not chained)
    done: dict[int, Outcome] = field(default_factory=dict)  # slice index -> its outcome, once back and ok
    submitted: set[int] = field(default_factory=set)  # slices in flight (or in a chain in flight)


class FanError(Exception):
    """A fan-out or merge that cannot be done: the message is the step's error."""


def split_input(
    step: Step, value: Any, workers: int, function: Callable[[str, str], Callable[..., Any]]
) -> dict[int, Slice]:
    """The slices of `step`'s `--over` input `value`, by index: as many as
    `--slices`, else of `--slice-size`, else one per worker; a --filter is
    the notebook's function `function(name, "--filter")`. Raises FanError
    with the step's error."""
    assert step.over is not None
    try:
        keep = function(step.filter, "--filter") if step.filter else None
        if step.slices is None and step.slice_size is None:
            slices = split(value, name=step.over, slices=workers, keep=keep)
        else:
            slices = split(value, name=step.over, slices=step.slices, slice_size=step.slice_size, keep=keep)
    except SliceError as e:
        raise FanError(f"step '{step.name}': {e}\n") from None
    except Exception as e:  # the --filter function raised
        raise FanError(f"step '{step.name}': --filter {step.filter} raised {type(e).__name__}: {e}\n") from None
    return {s.index: s for s in slices}


def chain_after(key: Key, followers: Mapping[str, list[str]], follows: Callable[[str, int], bool]) -> list[Key]:
    """`key` and, while a step chained to the last one is open and its slice
    of the same index may go with it (`follows(step, index)`: not in flight,
    not done, on the same backend), that slice: one worker runs them all,
    each taking its input from the one before."""
    keys = [key]
    name, index = key
    if index is None or name not in followers:
        return keys
    while True:
        nxt = [f for f in followers.get(name, ()) if follows(f, index)]
        if not nxt:
            return keys
        name = nxt[0]
        keys.append((name, index))


def span(fan: Fan) -> tuple[float, float, str]:
    """When every slice of a fanned-out step is done: when its first slice
    started, its last ended, and its slices' workers (sorted, joined)."""
    done = fan.done.values()
    return min(o.start for o in done), max(o.end for o in done), ", ".join(sorted({o.worker for o in done}))


def merged(
    step: Step, fan: Fan, function: Callable[[str, str], Callable[..., Any]], notes: list[str]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Every slice of `step` is done: merge each output in slice order, and
    give the outputs and the names deleted. `function(name, option)` is the
    notebook's function `name` (a --merge FUNC); what auto merging fell back
    to is added to `notes` (listed_note). Raises FanError with the step's
    error."""
    done = [fan.done[i] for i in range(len(fan.done))]
    outputs: dict[str, Any] = {}
    try:
        for var in step.outputs:
            values = [o.outputs[var] for o in done if var in o.outputs]
            if values:
                how = step.merge_for(var)
                func = how if how in MERGES else function(how, "--merge")
                outputs[var] = merge(var, values, func)
                note = listed_note(var, values, how, outputs[var])
                if note is not None:
                    notes.append(note)
    except (MergeError, SliceError) as e:
        raise FanError(f"step '{step.name}': {e}\n") from None
    except Exception as e:
        raise FanError(f"step '{step.name}': merging its outputs failed: {type(e).__name__}: {e}\n") from None
    return outputs, tuple(sorted({d for o in done for d in o.deleted}))
