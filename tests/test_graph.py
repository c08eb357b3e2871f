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
    dependencies,
    topological_order,
    writers,
)


def step(name: str, source: str, after: tuple[str, ...] = (), effects: str = "") -> Step:
    names = analyze(source)  # as Pipeline.add_step takes it
    return Step(
        name,
        source,
        names.reads - names.deferred,
        names.writes,
        after=after,
        functions=names.functions,
        always=names.always,
        effects=frozenset(effects.split()),  # type: ignore[arg-type]
    )


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


def test_a_read_binds_to_the_nearest_writer_above_it_never_below():
    #   load: df = 1    peek: p = df    clean: df = df + 1    report: r = df    late: q = later    later = 0
    g = graph(
        step("load", "df = 1"),
        step("peek", "p = df"),
        step("clean", "df = df + 1"),
        step("report", "r = df"),
        step("late", "q = later"),
        step("below", "later = 0"),
    )
    assert g.sources("peek", "df") == ("load",)
    assert g.sources("clean", "df") == ("load",)
    assert g.sources("report", "df") == ("clean",)  # clean reads df: its version is settled when it is done
    assert g.sources("late", "later") == ()  # the notebook's: nothing above writes it
    assert g.dependencies() == {
        "load": set(),
        "peek": {"load"},
        "clean": {"load"},
        "report": {"clean"},
        "late": set(),
        "below": set(),
    }
    assert g.last_writers(g.steps) == {"df": "clean", "p": "peek", "r": "report", "q": "late", "later": "below"}
    assert g.last_writers(["load", "peek"])["df"] == "load"


def test_writers_of_one_name_that_do_not_read_it_run_in_parallel():
    g = graph(
        step("plot1", "fig = 1\nif fig: a = 1"),
        step("plot2", "fig = 2"),
        step("loop1", "for i in range(3): s = i"),
        step("loop2", "for i in range(4): t = i"),
        step("after", "u = fig + i"),
    )
    deps = g.dependencies()
    assert deps["plot2"] == set() and deps["loop2"] == set()
    assert g.sources("after", "fig") == ("plot2",)  # plot2 always binds fig: its version replaces plot1's
    # a loop may bind `i` zero times: the reader may see the version above it too
    assert g.sources("after", "i") == ("loop2", "loop1")
    assert deps["after"] == {"plot2", "loop1", "loop2"}


def test_a_writer_that_binds_a_name_only_on_some_paths_leaves_the_one_above_as_a_source():
    g = graph(
        step("load", "df = 1"),
        step("maybe", "if flag:\n    df = 2"),
        step("tried", "try:\n    df = 3\nexcept ValueError:\n    pass"),
        step("use", "r = df"),
        step("with", "with ctx() as df:\n    pass"),
        step("use2", "r2 = df"),
    )
    assert g.sources("use", "df") == ("tried", "maybe", "load")
    assert g.sources("use2", "df") == ("with",)


def test_order_follows_notebook_order_among_ready_steps():
    g = graph(step("late", "y = x"), step("early", "x = 1"), step("free", "f = 1"))
    assert topological_order(g.steps) == ["late", "early", "free"]  # late reads the notebook's x


def test_replacing_a_step_keeps_its_place_and_updates_edges():
    g = graph(step("a", "x = 1"), step("b", "y = x"))
    g.add(step("b", "y = 2"))
    assert g.dependencies()["b"] == set() and list(g.steps) == ["a", "b"]
    g.add(step("a", "x = y"))  # a keeps its place above b: it reads the notebook's y
    assert g.sources("a", "y") == () and list(g.steps) == ["a", "b"]


def test_a_refused_step_leaves_the_graph_as_it_was():
    g = graph(step("a", "x = 1"), step("b", "y = x"))
    before = dict(g.steps)
    with pytest.raises(GraphError, match="cycle"):
        g.add(step("a", "x = 1", after=("b",)))
    assert g.steps == before and g.dependencies()["a"] == set()


def test_cycle_through_after_says_so():
    g = graph(step("a", "x = 1"), step("b", "y = x"))
    with pytest.raises(GraphError) as info:
        g.add(step("a", "x = 1", after=("b",)))
    assert "a  waits for  b  (--after)" in str(info.value)
    assert "b  waits for  a  (reads x)" in str(info.value)


def test_a_step_cannot_wait_for_itself():
    with pytest.raises(GraphError, match="--after names 'a', which is not a step it can wait for"):
        graph(step("a", "x = 1", after=("a",)))


def test_unknown_names():
    g = graph(step("a", "x = 1"))
    with pytest.raises(GraphError, match="no step named 'q', 'r'. Known steps: a"):
        g.select(["q", "a", "r"])
    with pytest.raises(GraphError, match="no step named 'q'"):
        g.remove("q")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(*(st.sampled_from(c) for c in ("abcdef", "uvwxyz", "uvwxyz", "-abcdef"))),
        max_size=25,
    )
)
def test_incremental_indexes_match_a_full_recomputation(moves):
    """Adding, replacing and removing steps in any order keeps the graph's
    indexes and its cycle check equal to computing them from scratch."""
    g = Graph()
    for name, reads, writes, after in moves:
        if name in g.steps and reads == writes:
            try:
                g.remove(name)
            except GraphError:
                with pytest.raises(GraphError):  # the full check refuses it too
                    check_acyclic({n: s for n, s in g.steps.items() if n != name})
            continue
        candidate = step(name, f"{writes} = {reads}", after=() if after == "-" else (after,))
        try:
            g.add(candidate)
        except GraphError:
            with pytest.raises(GraphError):  # the full checks refuse it too
                trial = {**g.steps, name: candidate}
                if any(a not in trial or a == name for a in candidate.after):
                    raise GraphError("unknown") from None
                check_acyclic(trial)
        assert {k: sorted(v) for k, v in g.writers().items()} == {k: sorted(v) for k, v in writers(g.steps).items()}
        assert g.dependencies() == dependencies(g.steps)
        check_acyclic(g.steps)


def test_registering_many_steps_checks_only_what_can_change(monkeypatch):
    """Without --after every edge points up the notebook: registering a long
    chain in order never walks the graph; with one, each registration does."""
    import nbpar.graph

    walks: list[object] = []
    for check in ("_waits_for_itself", "check_acyclic"):
        original = getattr(nbpar.graph, check)
        monkeypatch.setattr(nbpar.graph, check, lambda *a, _f=original: walks.append(a) or _f(*a))
    g = graph(*(step(f"s{i}", f"x{i} = x{i - 1} + 1" if i else "x0 = 0") for i in range(300)))
    assert len(g.steps) == 300 and walks == []
    g.add(step("s150", "x150 = x149 * 2"))  # a replacement, even in the middle
    g.remove("s299")
    assert walks == []
    g.add(step("s10", "x10 = x9", after=("s5",)))
    g.add(step("s11", "x11 = x10 * 2"))  # a replacement: the steps below it may read another writer now
    g.add(step("s299", "x299 = x298"))  # a new last step: from it alone
    assert len(walks) == 3


class _CountingPlaces(dict):
    """A step -> place mapping that counts its lookups."""

    lookups = 0

    def __getitem__(self, name: str) -> int:
        self.lookups += 1
        return super().__getitem__(name)


def test_a_name_many_steps_rebind_is_resolved_without_scanning_its_writers():
    """`v = v + 1` in 2,000 steps: a reader's source is found by bisection
    over v's writers (kept in notebook order), not by a scan and a sort of
    them per reader (a plan of such steps was quadratic)."""
    from nbpar.graph import _sources

    g = graph(step("s0", "v = 0"), *(step(f"s{i}", "v = v + 1") for i in range(1, 2000)))
    places = _CountingPlaces(g.position())
    assert _sources(g.steps, g.writers(), places, g.steps["s1999"], "v") == ("s1998",)
    assert places.lookups <= 2 * (2000).bit_length() + 2
    assert g.dependencies()["s1000"] == {"s999"}


def test_registering_steps_at_the_end_keeps_every_place():
    """A new step is placed after the others: the places are extended, not
    counted again from the first step (once per registration, that was
    quadratic); a removal counts them again."""
    g = graph(step("a", "v = 0"), step("b", "v = v + 1"))
    places = g.position()
    for i in range(300):
        g.add(step(f"s{i}", "v = v + 1"))
        assert g.position() is places
    g.add(step("b", "w = v"))  # a replacement keeps its place
    assert g.position() is places and list(places) == list(g.steps) and list(places.values()) == list(range(302))
    g.remove("a")
    assert g.position() == {name: i for i, name in enumerate(g.steps)}


def test_writers_stay_in_notebook_order_through_replacements_and_removals():
    g = graph(step("a", "v = 1"), step("b", "w = 1"), step("c", "v = 2"), step("d", "x = v"))
    g.add(step("b", "v = 3"))  # now b writes v too, in its place: between a and c
    assert g.writers()["v"] == ["a", "b", "c"] and "w" not in g.writers()
    g.add(step("c", "y = 0"))  # c no longer writes v: d reads b's
    assert g.writers()["v"] == ["a", "b"] and g.sources("d", "v") == ("b",)
    g.add(step("a", "v = v0 if v0 else 1"))  # still a writer, in its place
    assert g.writers()["v"] == ["a", "b"]
    g.remove("b")
    assert g.writers()["v"] == ["a"] and g.dependencies()["d"] == {"a"}
    g.add(step("e", "v = 5"))
    assert g.writers()["v"] == ["a", "e"] and g.sources("d", "v") == ("a",)
    assert g.writers() == writers(g.steps)  # as the whole notebook, indexed at once, has it


def test_a_replacement_that_moves_a_readers_writer_into_a_cycle_is_refused():
    # d reads u from b; a waits for d (--after). Once b no longer writes u,
    # d reads a's u: d waits for a, which waits for d.
    g = graph(step("a", "u = 1"), step("b", "u = 2"), step("d", "w = u"))
    g.add(step("a", "u = 1", after=("d",)))
    with pytest.raises(GraphError) as info:
        g.add(step("b", "v = 2"))
    assert "d  waits for  a  (reads u)" in str(info.value) and "a  waits for  d  (--after)" in str(info.value)
    assert g.steps["b"].source == "u = 2"  # nothing changed
    check_acyclic(g.steps)


def test_a_removal_that_would_close_a_cycle_is_refused_and_changes_nothing():
    g = graph(step("a", "u = 1"), step("b", "u = 2"), step("d", "w = u"))
    g.add(step("a", "u = 1", after=("d",)))
    with pytest.raises(GraphError, match="a  waits for  d  \\(--after\\)"):
        g.remove("b")
    assert list(g.steps) == ["a", "b", "d"]
    g.remove("d")  # the last step: no other step's inputs change (a's --after d waits for nothing now)
    assert g.dependencies() == {"a": frozenset(), "b": frozenset()}


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
        g.add(step(f"w{i}", f"v{i % 5} = 1", after=(f"s{i}",) if i % 50 == 0 else ()))
    g.add(step("s0", "v0 = other + 1"))
    for i in range(300):
        g.remove(f"s{i}")
        g.remove(f"w{i}")
    assert (g.steps, g._writers, g._effecters, g._afters) == ({}, {}, {}, 0)


def test_a_step_with_an_effect_waits_for_the_nearest_step_above_with_it():
    #   save1 (files)   draw (pyplot)   plain   save2 (files)   both (files, random)   seed2 (random)
    g = graph(
        step("save1", "a = 1", effects="files"),
        step("draw", "b = 1", effects="pyplot"),
        step("plain", "c = 1"),
        step("save2", "d = 1", effects="files"),
        step("both", "e = 1", effects="files random"),
        step("seed2", "f = 1", effects="random"),
    )
    assert g.dependencies() == {
        "save1": set(),
        "draw": set(),
        "plain": set(),
        "save2": {"save1"},  # the nearest above with files: a chain, not every pair
        "both": {"save2"},
        "seed2": {"both"},
    }
    assert g.dependencies() == dependencies(g.steps)
    g.add(step("save2", "d = 1"))  # replaced without the effect: the index follows
    assert g.dependencies()["both"] == {"save1"} and g.dependencies() == dependencies(g.steps)
    g.remove("both")
    assert g.dependencies()["seed2"] == set() and g._effecters == {
        "files": ["save1"],
        "pyplot": ["draw"],
        "random": ["seed2"],
    }


def test_an_effect_edge_points_up_the_notebook_and_a_cycle_through_it_says_why():
    g = graph(step("first", "a = 1", effects="files"), step("second", "b = 1", effects="files"))
    assert g.dependencies()["first"] == set()  # never down the notebook
    with pytest.raises(GraphError) as info:
        g.add(step("first", "a = 1", after=("second",), effects="files"))
    assert "second  waits for  first  (files effects, in notebook order)" in str(info.value)
    assert "first  waits for  second  (--after)" in str(info.value)


def test_functions_that_call_each_other_make_no_cycle_and_their_callers_read_their_globals():
    #   evens: def is_even -> is_odd    odds: def is_odd -> is_even, limit    limit: limit = 9    use: calls is_even
    g = graph(
        step("evens", "def is_even(n):\n    return n == 0 or is_odd(n - 1)\n"),
        step("odds", "def is_odd(n):\n    return n != 0 and n < limit and is_even(n - 1)\n"),
        step("limit", "limit = 9"),
        step("use", "parity = is_even(4)"),
    )
    assert g.dependencies() == {"evens": set(), "odds": set(), "limit": set(), "use": {"evens", "odds", "limit"}}
    assert g.inputs("use") == {"is_even": None, "is_odd": "is_even", "limit": "is_even"}
    assert g.read_labels("use") == ["is_even", "is_odd (through is_even)", "limit (through is_even)"]
    assert g.read_labels("evens") == [] and g.read_labels("odds") == []


def test_a_functions_free_name_is_resolved_from_where_it_is_called():
    #   define: def f -> k    k1: k = 1    early: a = f()    k2: k = 2    late: b = f()
    g = graph(
        step("define", "def f():\n    return k\n"),
        step("k1", "k = 1"),
        step("early", "a = f()"),
        step("k2", "k = 2"),
        step("late", "b = f()"),
    )
    assert g.sources("early", "k") == ("k1",) and g.sources("late", "k") == ("k2",)
    assert g.dependencies()["early"] == {"define", "k1"} and g.dependencies()["late"] == {"define", "k2"}
    assert g.read_labels("late") == ["f", "k (through f, from k2)"]
    assert g.dependencies() == dependencies(g.steps)  # the graph's cache equals a computation from scratch
    g.add(step("k2", "k2 = 2"))  # a replacement changes what `late` needs: the cache follows
    assert g.dependencies()["late"] == {"define", "k1"}


def test_a_cycle_through_a_called_function_says_so():
    g = graph(step("define", "def f():\n    return w\n"), step("w", "w = 1"), step("call", "y = f()"))
    with pytest.raises(GraphError) as info:
        g.add(step("w", "w = 1", after=("call",)))
    lines = sorted(line.strip() for line in str(info.value).splitlines() if "waits for" in line)
    assert lines == ["call  waits for  w  (reads w through f)", "w  waits for  call  (--after)"]
