"""Fuzz test: generated option lines and cell bodies thrown at `%%step` and
`%parrun` in a real IPython shell. Every call succeeds, or raises a
UsageError (a misuse) or a RunError (a step raised); the registry stays
valid, and a `%%step` that raised UsageError changed nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from nbpar.errors import RunError
from nbpar.magics import NbparMagics

NAMES = ["a", "b", "c", "load", "_p", "étape"]
BAD_NAMES = ["", "1x", "a-b", "a.b", "'a'", '"b"', "--run", "a b", "\udcff"]
VARS = ["x", "y", "z", "w", "v", "xs", "_t"]

# Each option with values good and bad; None: a flag. `process` is left
# out (NBPAR_BACKEND is `thread` here) to keep the test quick.
OPTIONS: dict[str, list[str] | None] = {
    "--after": [*NAMES, *BAD_NAMES],
    "--backend": ["thread", "inline", "gpu", ""],
    "--over": ["xs", "x", "nope", "1x"],
    "--slices": ["1", "2", "0", "-1", "x", "2.5"],
    "--slice-size": ["1", "3", "0", "-2"],
    "--filter": ["keep", "1x", "nope"],
    "--merge": ["auto", "sum", "list", "concat", "x=sum", "y=list", "bad-fn", "=", "''", "keep"],
    "--timeout": ["5", "0.5", "0", "-1", "nan", "inf", "1e400", "x"],
    "--retries": ["0", "1", "-1", "x"],
    "--workers": ["1", "2", "0", "-1", "x"],
    "--run": None,
    "--force": None,
    "--fail-fast": None,
    "--no-widget": None,
    "--background": None,
    "--dry-run": None,
    "--bogus": None,
    "-h": None,
}
# Options a line is likely to hold, with values that work.
GOOD_RUN: dict[str, list[str] | None] = {
    "--backend": ["thread", "inline"],
    "--timeout": ["5", "inf"],
    "--retries": ["0", "1"],
    "--workers": ["1", "2"],
    "--force": None,
    "--fail-fast": None,
    "--no-widget": None,
    "--background": None,
}
GOOD_STEP = {**GOOD_RUN, "--over": ["xs"], "--run": None, "--after": NAMES}
GOOD_PARRUN = {**GOOD_RUN, "--dry-run": None}

TEXT = st.text(st.characters(exclude_characters="\n\r"), max_size=6)
QUOTES = st.sampled_from(["'", '"', "'a b'", '""', "'x", "\\"])


@st.composite
def option(draw: st.DrawFn, options: dict[str, list[str] | None], messy: bool = False) -> str:
    """An option and its value; `messy`: now and then no value, or two."""
    name = draw(st.sampled_from(sorted(options)))
    values = options[name]
    if values is None or (messy and draw(st.integers(0, 9)) == 0):
        return name
    picked = draw(st.lists(st.sampled_from(values), min_size=1, max_size=2 if messy else 1))
    return " ".join([name, *picked])


def token() -> st.SearchStrategy[str]:
    messy = option(OPTIONS, messy=True)
    return st.one_of(messy, messy, st.sampled_from(NAMES + BAD_NAMES), TEXT, QUOTES)


def line(name: st.SearchStrategy[str], good: dict[str, list[str] | None]) -> st.SearchStrategy[str]:
    """Name, then options: most lines plausible (no option, or good ones), the rest anything."""
    tokens: st.SearchStrategy[list[str]] = st.one_of(
        st.just([]),
        st.lists(option(good), max_size=2, unique_by=lambda o: o.split()[0]),
        st.lists(token(), max_size=4),
    )
    return st.builds(lambda n, rest: " ".join([n, *rest]), name, tokens)


# -- cell bodies: small terminating Python, and what a user may get wrong ----
LITERALS = ["1", "'s'", "[1, 2, 3]", "None", "{'k': 1}", "(1,)", "2.5"]
MODULES = ["math", "json", "os", "itertools", "collections"]


KINDS = ["literal"] * 5 + ["name", "expression", "del", "import", "raise", "loop", "def", "ipython", "error"]


@st.composite
def statement(draw: st.DrawFn) -> str:
    var = draw(st.sampled_from(VARS))
    other = draw(st.sampled_from(VARS))
    module = draw(st.sampled_from(MODULES))
    choices = {
        "literal": [f"{var} = {literal}" for literal in LITERALS],
        "name": [f"{var} = {other}"],
        "expression": [f"{var} = {other} + 1", f"{var} = {other} * {var}", f"{var} = len(xs) + {other}"],
        "del": [f"del {var}"],
        "import": [f"import {module}", f"import {module} as _m", "from os import path"],
        "raise": ["raise ValueError('fuzz')"],
        "loop": [f"for _i in range(3):\n    {var} = _i"],
        "def": ["def keep(k):\n    return True"],
        # IPython syntax: run in the kernel or refused, by design
        "ipython": ["%time _w = 1", "!true", "files = !echo hi", "_ip = get_ipython()"],
        "error": ["x = (", "def", "x ==== 1", "  y = 1", "x = 1\x00", "x = '\udcff'", "if x:"],
    }
    return draw(st.sampled_from(choices[draw(st.sampled_from(KINDS))]))


BODIES = st.lists(statement(), min_size=1, max_size=4).map("\n".join)


@dataclass
class Call:
    magic: str  # "step" or "parrun"
    line: str
    body: str = ""


STEPS = st.builds(Call, st.just("step"), line(st.sampled_from(NAMES), GOOD_STEP), BODIES)
CALLS = st.one_of(
    STEPS,
    st.builds(Call, st.just("step"), line(st.sampled_from(NAMES + BAD_NAMES), OPTIONS), BODIES),
    st.builds(Call, st.just("parrun"), line(st.sampled_from(["", "", "", *NAMES]), GOOD_PARRUN)),
)
# Register some steps first, then anything: a run with no step is one case only.
SESSIONS = st.builds(lambda first, then: first + then, st.lists(STEPS, max_size=4), st.lists(CALLS, max_size=5))


def call(shell, magics: NbparMagics, c: Call) -> None:
    """Make the call; check what it raised and what it left registered."""
    before = dict(magics.pipeline.steps)
    try:
        if c.magic == "step":
            shell.run_cell_magic("step", c.line, c.body)
        else:
            shell.run_line_magic("parrun", c.line)
        event(f"{c.magic}: success")
    except UsageError as e:
        event(f"{c.magic}: UsageError")
        assert "Traceback" not in str(e)
        if c.magic == "step":
            assert magics.pipeline.steps == before, f"%%step {c.line!r} raised {e!r} and changed the registry"
    except RunError:
        event(f"{c.magic}: RunError")  # a step raised: the documented error
    finally:
        active = magics.pipeline.active
        if active is not None:
            active.wait(timeout=30, check=False)
    magics.pipeline.graph.validate()
    assert all(name.isidentifier() for name in magics.pipeline.steps)


@pytest.fixture
def baseline(shell, monkeypatch) -> set[str]:
    """The names of the fresh shell's namespace (runs default to 2 threads)."""
    monkeypatch.setenv("NBPAR_BACKEND", "thread")
    monkeypatch.setenv("NBPAR_WORKERS", "2")
    return set(shell.user_ns)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=SESSIONS)
def test_magics_take_any_input(shell, baseline, calls):
    # Not shell.reset(): its gc.collect() grows slower with every example.
    for name in set(shell.user_ns) - baseline:
        del shell.user_ns[name]
    shell.user_ns.update({var: 1 for var in VARS}, xs=[1, 2, 3, 4], keep=lambda k: True)
    magics = NbparMagics(shell)
    shell.register_magics(magics)
    try:
        for c in calls:
            call(shell, magics, c)
    finally:
        magics.pipeline.shutdown()
