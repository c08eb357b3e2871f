"""Differential test: a generated notebook of random steps, run with
`%parrun` on each backend, leaves the namespace that running its step cells
one after another, top to bottom, leaves. Steps redefine names (a read sees
the version of the nearest writer above it), a step may read a name and
write it again (`df = df.dropna()`), and steps change a list of the
notebook's in place (each change is a version)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nbpar
from nbpar.magics import NbparMagics

from .conftest import run_cells

PRELUDE = "SEED = 7\nL = [0]\ndef mix(a, b):\n    return (a * 31 + b) % 1_000_003\n"

# Bodies a step can have; {out} is its output, {a} and {b} names it reads.
TEMPLATES = [
    "{out} = mix({a}, {b})",
    "{out}, _spare = mix({a}, 1), {b}",
    "{out} = 0\nfor _k in range(50):\n    {out} = mix({out}, {a} + _k)",
    "{out} = sum(mix(x, {b}) for x in range(30)) + {a}",
    "def _f(v):\n    return mix(v, {b})\n{out} = _f({a})",
    "{out} = [{a}, {b}]\n{out}.append(mix(*{out}))\n{out} = {out}[-1]",
    "{out} = {{'k': {a}}}\n{out}['k'] += {b}\n{out} = {out}['k']",
    "for i in range(3):\n    {out} = mix({a}, i + {b})",  # `i`: a scratch name many steps bind
]
# Bodies that read the name they write again: only once a step above wrote it.
REWRITES = ["{out} = mix({out}, {a})", "{out} += {a}"]
# Bodies that change the notebook's list `L` in place: each writes a version of it.
IN_PLACE = ["L.append(mix({a}, {b}))\n{out} = len(L) + L[-1]", "L[0] = mix(L[0], {a})\n{out} = L[0]"]
NAMES = [f"v{i}" for i in range(4)]  # few names: steps redefine them


@dataclass
class Notebook:
    bodies: dict[str, str]  # step name -> body, in the order the cells appear


@st.composite
def notebooks(draw: st.DrawFn, reads: tuple[str, ...] = ("SEED",), in_place: bool = False) -> Notebook:
    n = draw(st.integers(2, 7))
    made: list[str] = list(reads)
    bodies: dict[str, str] = {}
    for i in range(n):
        a = draw(st.sampled_from(made))
        b = draw(st.sampled_from(made))
        out = draw(st.sampled_from(NAMES))
        templates = TEMPLATES + (REWRITES if out in made else []) + (IN_PLACE if in_place else [])
        template = draw(st.sampled_from(templates))
        if "def _f" in template and b == out:
            b = "SEED"  # a function's free name the cell binds later is not an input: see the README
        if "['k'] += {b}" in template and b == out:
            b = "SEED"  # (`v0['k'] += v0` adds the dict to an int: a TypeError top to bottom too)
        bodies[f"s{i}"] = template.format(out=out, a=a, b=b)
        if out not in made:
            made.append(out)
    return Notebook(bodies)


def user_names(ns: dict) -> dict:
    return {k: v for k, v in ns.items() if (k.startswith("v") and k[1:].isdigit()) or k in ("i", "L")}


def sequential(shell, notebook: Notebook, passes: int = 1) -> dict:
    """Run the step bodies as plain cells, top to bottom (`passes` times)."""
    shell.reset(new_session=False)
    run_cells(shell, PRELUDE, *list(notebook.bodies.values()) * passes)
    return user_names(shell.user_ns)


def parallel(shell, notebook: Notebook, backend: str) -> dict:
    shell.reset(new_session=False)
    shell.register_magics(NbparMagics(shell))
    run_cells(shell, PRELUDE, *(f"%%step {n}\n{body}" for n, body in notebook.bodies.items()))
    run_cells(shell, f"%parrun --backend {backend} --workers 2")
    if backend == "auto":  # the first run measured every step on a process; now tiny ones go to threads
        # (--force runs every step again on what the first run left: the cells run top to bottom twice)
        run_cells(shell, "%parrun --backend auto --workers 2 --force")
        run = nbpar.last_run()
        assert run is not None
        assert "thread" in {r.backend for r in run.steps.values()}
    return user_names(shell.user_ns)


@pytest.mark.parametrize("backend", ["process", "thread", "inline", "auto"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(notebook=notebooks(in_place=True))
def test_parrun_equals_sequential(shell, backend, notebook):
    expected = sequential(shell, notebook, passes=2 if backend == "auto" else 1)
    assert expected
    assert parallel(shell, notebook, backend) == expected


# Notebook values steps read, changed in an ordinary cell between two runs
# (issue 11, item 5): in place, rebound to an equal value, or not at all.
INPUTS = "import numpy as np\nW = [1, 2, 3]\nD = {'k': 4}\nA = np.arange(3)\n"
READS = ["SEED", "sum(W)", "D['k']", "int(A.sum())"]
CHANGES = ["W.append(5)", "W[0] = 10", "D['k'] = 99", "A[0] = 40", "W = [1, 2, 3]", "SEED = 7", "pass"]


@st.composite
def changed_notebooks(draw: st.DrawFn) -> tuple[Notebook, list[str]]:
    notebook = draw(notebooks(tuple(READS)))
    changes = draw(st.lists(st.sampled_from(CHANGES), min_size=1, max_size=3))
    return notebook, changes


@pytest.mark.parametrize("backend", ["process", "thread", "inline"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=changed_notebooks())
def test_a_second_parrun_after_changes_in_place_equals_sequential(shell, backend, case):
    notebook, changes = case
    shell.reset(new_session=False)
    run_cells(shell, PRELUDE, INPUTS, *changes, *notebook.bodies.values())
    expected = user_names(shell.user_ns)
    shell.reset(new_session=False)
    shell.register_magics(NbparMagics(shell))
    run_cells(shell, PRELUDE, INPUTS, *(f"%%step {n}\n{body}" for n, body in notebook.bodies.items()))
    run_cells(shell, f"%parrun --backend {backend} --workers 2", *changes, f"%parrun --backend {backend} --workers 2")
    assert user_names(shell.user_ns) == expected
