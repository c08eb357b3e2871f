"""A run's options, checked in one place.

    Pipeline.run/start/check(keywords) --RunOptions(...)--> checked once, here
    %parrun / %%step --run --options given, else the shell's Defaults--> RunOptions
    nbpar run --workers/--backend --Defaults, the headless shell's `nbpar_defaults`
    Defaults.resolved(): those set, else NBPAR_WORKERS / NBPAR_BACKEND (read here only)
    run_defaults(): what %parrun runs with when given none, for a notebook's code

`RunOptions.__post_init__` refuses what cannot work with an `OptionError`
(a `PlanError`) whose message names the option (`--workers must be at
least 1, not 0.`); the magics prefix where it was given (`%parrun: `) and
raise it as a `UsageError`, the CLI as its usage error (exit status 2).
A step's own limits are checked by the same `limits_problem`, where its
`Step` is built (graph.py).

Importing this module loads no loky: `default_workers` imports loky's CPU
count (which respects cgroup quotas and CPU affinity) when first called.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypedDict

from .errors import PlanError

BackendName = Literal["process", "thread", "inline", "auto"]  # auto: thread or process, step by step (auto.py)
BACKENDS: tuple[BackendName, ...] = ("process", "thread", "inline", "auto")

WORKERS_ENV = "NBPAR_WORKERS"  # the default of --workers
BACKEND_ENV = "NBPAR_BACKEND"  # the default of --backend


class OptionError(PlanError):
    """A run option that cannot work; the message names it and says what it may be."""


def default_workers() -> int:
    """The workers a run on processes or threads has unless told: the CPUs
    this process may use (loky's count: affinity and cgroup quotas)."""
    from loky import cpu_count  # (lazily: importing nbpar.options loads no loky)

    return int(cpu_count())


def limits_problem(timeout: float | None, retries: int | None) -> str | None:
    """What is wrong with a timeout or a retry count, or None. An infinite
    timeout is no limit (on a step: even if the run sets one)."""
    if timeout is not None and not timeout > 0:  # NaN too
        return f"--timeout must be a number of seconds above 0 (inf: no limit), not {timeout}."
    if retries is not None and retries < 0:
        return f"--retries must be 0 or more, not {retries}."
    return None


def backend_problem(backend: object) -> str | None:
    """What is wrong with a backend's name, or None."""
    if backend not in BACKENDS:
        return f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}."
    return None


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How a run goes: checked when made (OptionError), the same for
    `Pipeline.run`, `Pipeline.start`, `Pipeline.check` and the magics.

    `timeout` and `retries` apply to the steps that set none; an infinite
    `timeout` is kept as None (no limit)."""

    workers: int | None = None  # None: default_workers(), one inline
    backend: BackendName = "process"
    force: bool = False  # re-run steps that are up to date
    fail_fast: bool = False  # stop everything at the first failure
    timeout: float | None = None  # seconds an attempt may take
    retries: int = 0  # attempts after the first that fails

    def __post_init__(self) -> None:
        problem = backend_problem(self.backend)
        if problem is None and self.workers is not None and self.workers < 1:
            problem = f"--workers must be at least 1, not {self.workers}."
        problem = problem or limits_problem(self.timeout, self.retries)
        if problem:
            raise OptionError(problem)
        if self.timeout is not None and math.isinf(self.timeout):
            object.__setattr__(self, "timeout", None)

    def keywords(self) -> RunKeywords:
        """These options as the keywords of `Pipeline.run`, `start` and `check`."""
        return RunKeywords(**{f.name: getattr(self, f.name) for f in fields(self)})  # type: ignore[typeddict-item]

    @classmethod
    def given(cls, where: str, keywords: Mapping[str, Any]) -> RunOptions:
        """The options of `where` (`run`, `start`, `check`) called with
        `keywords`; a TypeError names a keyword that is not one."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(keywords.keys() - set(known))
        if unknown:
            raise TypeError(
                f"{where}() got an unexpected keyword argument {unknown[0]!r}; its options are {', '.join(known)}."
            )
        return cls(**keywords)

    @property
    def worker_count(self) -> int:
        """The workers the run has: `workers`, else one inline, else
        `default_workers()` (also the default number of slices of a
        fanned-out step)."""
        return self.workers or (1 if self.backend == "inline" else default_workers())


class RunKeywords(TypedDict, total=False):
    """RunOptions' fields as keywords (`Pipeline.run(**RunKeywords)`): what
    each means and its default are RunOptions'."""

    workers: int | None
    backend: BackendName
    force: bool
    fail_fast: bool
    timeout: float | None
    retries: int


@dataclass(frozen=True, slots=True)
class Defaults:
    """The defaults of `%parrun`'s --workers and --backend that a program
    sets for the magics of its shell (`nbpar run --workers/--backend`, on
    the headless shell); None: the environment's, else the built-in ones."""

    workers: int | None = None
    backend: BackendName | None = None

    def resolved(self, environ: Mapping[str, str] = os.environ) -> Defaults:
        """These defaults, else NBPAR_WORKERS and NBPAR_BACKEND (read here
        only), else process (and workers None: the CPU count). OptionError
        for an environment value that is not a backend or a whole number."""
        backend = self.backend or environ.get(BACKEND_ENV) or "process"
        if backend not in BACKENDS:
            raise OptionError(f"{BACKEND_ENV} is {backend!r}; choose {', '.join(BACKENDS)}.")
        workers = self.workers
        if workers is None:
            text = environ.get(WORKERS_ENV)
            if text is not None and not text.isdigit():
                raise OptionError(f"{WORKERS_ENV} is {text!r}; it must be a whole number.")
            workers = int(text) if text else None
        return Defaults(workers, backend)  # type: ignore[arg-type]


def defaults_of(shell: object) -> Defaults:
    """The `Defaults` the program running `shell` set on it (its
    `nbpar_defaults`: `nbpar run --workers/--backend`), else none."""
    defaults = getattr(shell, "nbpar_defaults", None)
    return defaults if isinstance(defaults, Defaults) else Defaults()


def run_defaults() -> RunOptions:
    """The options `%parrun` runs with when given none, here: `nbpar run`'s
    --workers and --backend, else NBPAR_WORKERS and NBPAR_BACKEND, else the
    CPU count (`.worker_count`) and process. Imports no IPython: the shell
    is IPython's current one if IPython is loaded."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    defaults = defaults_of(shell).resolved()
    return RunOptions(workers=defaults.workers, backend=defaults.backend or "process")
