"""The graph, pure: edges, selection, order and the errors that name steps."""

from __future__ import annotations

import pytest

from nbpar.analysis import analyze
from nbpar.graph import Graph, GraphError, Step, topological_order


def step(name: str, source: str, after: tuple[str, ...] = ()) -> Step:
    names = analyze(source)
    return Step(name, source, names.reads, names.writes, after, imports=names.imports)


def graph(*steps: Step) -> Graph:
    g = Graph()
    for s in steps:
        g.add(s)
    return g


def test_edges_come_from_reads_and_after():
    #   a --x--> b --y--> c       d (after a)
    g = graph(step("a", "x = 1"), step("b", "y = x"), step("c", "z = y + x"), step("d", "w = 0", after=("a",)))
    assert g.dependencies() == {"a": set(), "b": {"a"}, "c": {"a", "b"}, "d": {"a"}}


def test_a_step_reading_its_own_write_does_not_depend_on_itself():
    g = graph(step("a", "x = 1"), step("b", "y = 0\ny += x"))
    assert g.dependencies()["b"] == {"a"}


def test_select_takes_targets_and_their_ancestors_in_order():
    g = graph(step("a", "x = 1"), step("other", "o = 1"), step("b", "y = x"), step("c", "z = y"))
    assert g.select(["b"]) == ["a", "b"]
    assert g.select() == ["a", "other", "b", "c"]


def test_order_follows_registration_among_ready_steps():
    g = graph(step("late", "y = x"), step("early", "x = 1"), step("free", "f = 1"))
    assert topological_order(g.steps) == ["early", "free", "late"]


def test_replacing_a_step_keeps_its_place_and_updates_edges():
    g = graph(step("a", "x = 1"), step("b", "y = x"))
    g.add(step("b", "y = 2"))
    assert g.dependencies()["b"] == set() and list(g.steps) == ["a", "b"]


def test_the_same_import_in_two_steps_is_allowed():
    g = graph(step("a", "import numpy as np\nx = 1"), step("b", "import numpy as np\ny = 2"), step("c", "z = np"))
    assert g.dependencies()["c"] == {"a", "b"}


def test_different_imports_under_one_name_clash():
    g = graph(step("a", "import numpy as np"))
    with pytest.raises(GraphError, match="step 'b' writes 'np', which step 'a' already writes"):
        g.add(step("b", "import pandas as np"))


def test_an_import_and_an_assignment_clash():
    g = graph(step("a", "import time"))
    with pytest.raises(GraphError, match="'time'"):
        g.add(step("b", "time = 3"))


def test_a_refused_step_leaves_the_graph_as_it_was():
    g = graph(step("a", "x = y"), step("b", "y = 1"))
    before = dict(g.steps)
    with pytest.raises(GraphError, match="cycle"):
        g.add(step("b", "y = x"))
    assert g.steps == before


def test_cycle_through_after_says_so():
    g = graph(step("a", "x = 1"))
    with pytest.raises(GraphError) as info:
        g.add(step("a", "x = y", after=()))  # fine: y unknown, read from the notebook
        g.add(step("b", "y = 1", after=("a",)))
    assert "b  waits for  a  (--after)" in str(info.value)
    assert "a  waits for  b  (reads y)" in str(info.value)


def test_unknown_names():
    g = graph(step("a", "x = 1"))
    with pytest.raises(GraphError, match="no step named 'q', 'r'. Known steps: a"):
        g.select(["q", "a", "r"])
    with pytest.raises(GraphError, match="no step named 'q'"):
        g.remove("q")
