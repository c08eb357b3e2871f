"""The graph, pure: edges, selection, order and the errors that name steps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbpar.analysis import analyze
from nbpar.graph import (
    Graph,
    GraphError,
    Step,
    check_acyclic,
    check_writers,
    dependencies,
    topological_order,
    writers,
)


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


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*(st.sampled_from(c) for c in ("abcdef", "uvwxyz", "uvwxyz"))), max_size=25))
def test_incremental_indexes_match_a_full_recomputation(moves):
    """Adding, replacing and removing steps in any order keeps the graph's
    indexes and its cycle check equal to computing them from scratch."""
    g = Graph()
    for name, reads, writes in moves:
        if name in g.steps and reads == writes:
            g.remove(name)
            continue
        candidate = step(name, f"{writes} = {reads}")
        try:
            g.add(candidate)
        except GraphError:
            with pytest.raises(GraphError):  # the full checks refuse it too
                trial = {**g.steps, name: candidate}
                check_writers(trial, writers(trial), name)
                check_acyclic(trial)
        assert {k: sorted(v) for k, v in g.writers().items()} == {k: sorted(v) for k, v in writers(g.steps).items()}
        assert g.dependencies() == dependencies(g.steps)
        check_acyclic(g.steps)


def test_registering_many_steps_checks_only_what_can_change(monkeypatch):
    """A new step that nothing waits for cannot close a cycle: registering a
    long chain in order never walks the graph."""
    import nbpar.graph

    walks = []
    original = nbpar.graph._waits_for_itself
    monkeypatch.setattr(nbpar.graph, "_waits_for_itself", lambda *a: walks.append(a) or original(*a))
    g = graph(*(step(f"s{i}", f"x{i} = x{i - 1} + 1" if i else "x0 = 0") for i in range(300)))
    assert len(g.steps) == 300 and walks == []
    g.add(step("s150", "x150 = x149 * 2"))  # a replacement in the middle does
    assert len(walks) == 1


def test_after_an_unknown_step_lists_the_known_ones_not_itself():
    g = graph(step("a", "x = 1"))
    with pytest.raises(GraphError) as info:
        g.add(step("b", "y = 2", after=("nosuch",)))
    assert "Known steps: a. Register" in str(info.value)
    with pytest.raises(GraphError, match=r"Known steps: \(none\)\."):
        graph().add(step("b", "y = 2", after=("nosuch",)))


def test_forgetting_every_step_empties_every_index():
    # 300 steps reading names, some shared, one rebinding; then replaced and all forgotten
    g = Graph()
    for i in range(300):
        g.add(step(f"s{i}", f"v{i} = r{i % 7} + u{i} + len([])"))
    g.add(step("s0", "v0 = other + 1"))  # replacing a step drops the reads it no longer has
    assert "u0" not in g._readers and "r0" in g._readers
    for i in range(300):
        g.remove(f"s{i}")
    assert (g.steps, g._writers, g._readers) == ({}, {}, {})
