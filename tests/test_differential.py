"""Differential test: a generated notebook of random steps, run with
`%parrun` on each backend, leaves the namespace that running its step cells
one after another leaves."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbpar.magics import NbparMagics

from .conftest import run_cells

PRELUDE = "SEED = 7\ndef mix(a, b):\n    return (a * 31 + b) % 1_000_003\n"

# Bodies a step can have; {out} is its output, {a} and {b} names it reads.
TEMPLATES = [
    "{out} = mix({a}, {b})",
    "{out}, _spare = mix({a}, 1), {b}",
    "{out} = 0\nfor _k in range(50):\n    {out} = mix({out}, {a} + _k)",
    "{out} = sum(mix(x, {b}) for x in range(30)) + {a}",
    "def _f(v):\n    return mix(v, {b})\n{out} = _f({a})",
    "{out} = [{a}, {b}]\n{out}.append(mix(*{out}))\n{out} = {out}[-1]",
    "{out} = {{'k': {a}}}\n{out}['k'] += {b}\n{out} = {out}['k']",
]


@dataclass
class Notebook:
    bodies: dict[str, str]  # step name -> body, in the order the cells appear
    needs: dict[str, set[str]]  # step name -> the steps whose outputs it reads


@st.composite
def notebooks(draw: st.DrawFn) -> Notebook:
    n = draw(st.integers(2, 7))
    made: list[str] = ["SEED"]
    bodies: dict[str, str] = {}
    needs: dict[str, set[str]] = {}
    for i in range(n):
        a = draw(st.sampled_from(made))
        b = draw(st.sampled_from(made))
        template = draw(st.sampled_from(TEMPLATES))
        bodies[f"s{i}"] = template.format(out=f"v{i}", a=a, b=b)
        needs[f"s{i}"] = {f"s{v[1:]}" for v in (a, b) if v != "SEED"}
        made.append(f"v{i}")
    order = draw(st.permutations(list(bodies)))  # cells need not be in dependency order
    return Notebook({name: bodies[name] for name in order}, needs)


def user_names(ns: dict) -> dict:
    return {k: v for k, v in ns.items() if k.startswith("v") and k[1:].isdigit()}


def sequential(shell, notebook: Notebook) -> dict:
    """Run the step bodies as plain cells, in an order their reads allow."""
    shell.reset(new_session=False)
    run_cells(shell, PRELUDE)
    for name in graphlib.TopologicalSorter(notebook.needs).static_order():
        run_cells(shell, notebook.bodies[name])
    return user_names(shell.user_ns)


def parallel(shell, notebook: Notebook, backend: str) -> dict:
    shell.reset(new_session=False)
    shell.register_magics(NbparMagics(shell))
    run_cells(shell, PRELUDE, *(f"%%step {n}\n{body}" for n, body in notebook.bodies.items()))
    run_cells(shell, f"%parrun --backend {backend} --workers 2")
    return user_names(shell.user_ns)


@pytest.mark.parametrize("backend", ["process", "thread", "inline"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(notebook=notebooks())
def test_parrun_equals_sequential(shell, backend, notebook):
    expected = sequential(shell, notebook)
    assert len(expected) == len(notebook.bodies)
    assert parallel(shell, notebook, backend) == expected


# Notebook values steps read, changed in an ordinary cell between two runs
# (issue 11, item 5): in place, rebound to an equal value, or not at all.
INPUTS = "import numpy as np\nW = [1, 2, 3]\nD = {'k': 4}\nA = np.arange(3)\n"
READS = ["SEED", "sum(W)", "D['k']", "int(A.sum())"]
CHANGES = ["W.append(5)", "W[0] = 10", "D['k'] = 99", "A[0] = 40", "W = [1, 2, 3]", "SEED = 7", "pass"]


@st.composite
def changed_notebooks(draw: st.DrawFn) -> tuple[Notebook, list[str]]:
    n = draw(st.integers(2, 5))
    made = list(READS)
    bodies: dict[str, str] = {}
    needs: dict[str, set[str]] = {}
    for i in range(n):
        a, b = draw(st.sampled_from(made)), draw(st.sampled_from(made))
        bodies[f"s{i}"] = draw(st.sampled_from(TEMPLATES)).format(out=f"v{i}", a=a, b=b)
        needs[f"s{i}"] = {f"s{v[1:]}" for v in (a, b) if v.startswith("v")}
        made.append(f"v{i}")
    changes = draw(st.lists(st.sampled_from(CHANGES), min_size=1, max_size=3))
    return Notebook(bodies, needs), changes


@pytest.mark.parametrize("backend", ["process", "thread", "inline"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=changed_notebooks())
def test_a_second_parrun_after_changes_in_place_equals_sequential(shell, backend, case):
    notebook, changes = case
    shell.reset(new_session=False)
    run_cells(shell, PRELUDE, INPUTS, *changes)
    for name in graphlib.TopologicalSorter(notebook.needs).static_order():
        run_cells(shell, notebook.bodies[name])
    expected = user_names(shell.user_ns)
    shell.reset(new_session=False)
    shell.register_magics(NbparMagics(shell))
    run_cells(shell, PRELUDE, INPUTS, *(f"%%step {n}\n{body}" for n, body in notebook.bodies.items()))
    run_cells(shell, f"%parrun --backend {backend} --workers 2", *changes, f"%parrun --backend {backend} --workers 2")
    assert user_names(shell.user_ns) == expected
