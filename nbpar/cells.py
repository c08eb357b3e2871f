"""A whole notebook as steps: `nbpar run NOTEBOOK --steps all` and
`%parrun --cells`, every code cell a step, no `%%step` lines needed.

Data flow:

    a .ipynb file --read_code_cells--> [CodeCell(source, tags)], in notebook order
    sources --plan_cells--> [CellPlan], one per code cell, numbered from 1:
        "empty"  (blank or comments only): skipped, as Run All does nothing
        "step"   named `cell_N` (N its code-cell number), or the name and
                 options of its own `%%step NAME ...` line
        "kernel" runs with `shell.run_cell` in its place; `reason` says why
    plans --run_cells_as_steps--> a segment is the step cells between two
        kernel cells: the steps of the segment before are forgotten, the
        segment's are registered in the magics' pipeline, and
        `%parrun <exactly those>` runs them; then the kernel cell runs;
        and so on --> CellsReport

A cell runs in the kernel when it cannot be a step, in this order: it is
tagged `raises-exception` (it may fail, in its place); `Pipeline.add_step`
refuses it (a syntax error, which then fails as in Run All; `from M import
*`; top-level `await`; a magic that binds names in the notebook's
namespace), with add_step's reason; it uses IPython (`%matplotlib`,
`!pip`, `%%bash`, `%cd`: a step would run in the kernel anyway); it looks
names up by string, where the analysis cannot see which (`eval`,
`pd.eval`, `df.query`, `globals()`), or reads a function or class defined
by such a cell (their strings name the notebook's names); it binds no
names and changes none in place (`df.head()`, `print(x)`, `plt.plot(y)`):
all it does is show something, which in the kernel shows as in Run All (a
step's display is text in its log). A cell that changes an input in place
(`items.append(2)`, `df['c'] = 1`) is a step that writes a new version of
it (see `Pipeline.add_step` and effects.py), on any backend. A step whose
value a worker process cannot send back (a generator, an `nditer`) runs
again, in the kernel.

Why each segment starts from no steps: it is a graph over the namespace as
the cells above it left it, so a read of a name made above comes from the
namespace, as in Run All, even when a kernel cell changed it since
(`%time items.append(2)`), and no step above is run again for it.

Classification registers into a scratch `Pipeline` of its own, a new one
at each kernel cell, as the run's segments are: it changes nothing, and
the kernel cells can be listed before anything runs. Its namespace is the
notebook's as it is before the cells run, so what a kernel cell imports is
not known to the steps of the next segments when they are classified (a
cell whose only change is to a module's state, `np.random.seed(0)` after a
kernel cell `import numpy as np`, is then a step; registered after that
cell ran, it writes nothing and runs in the kernel, as its global random
effect asks).
"""

from __future__ import annotations
import __future__

import ast
import json
import os
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring

from .analysis import analyze
from .effects import looks_up
from .graph import BackendName, GraphError
from .pipeline import Pipeline, last_run
from .records import RunResult
from .worker import UNSENDABLE

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .magics import NbparMagics

__all__ = [
    "CellPlan",
    "CellsReport",
    "CodeCell",
    "NotebookError",
    "plan_cells",
    "read_code_cells",
    "run_cells_as_steps",
]

RAISES = "raises-exception"  # the cell tag nbclient and papermill let fail


class NotebookError(ValueError):
    """A notebook file that cannot be run: the message names it and says why."""


@dataclass(frozen=True)
class CodeCell:
    """A code cell of a notebook file."""

    source: str
    tags: tuple[str, ...] = ()


def read_code_cells(path: str) -> list[CodeCell]:
    """The code cells of the notebook at `path`, in order; NotebookError if
    it cannot be read or is not a notebook."""
    try:
        with open(path, encoding="utf-8") as f:
            notebook = json.load(f)
    except (OSError, ValueError) as e:
        raise NotebookError(f"cannot read notebook {path}: {e}") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list) or "nbformat" not in notebook:
        raise NotebookError(
            f'{path} is not a Jupyter notebook: a notebook is JSON with "cells" and "nbformat" (a .ipynb file).'
        )
    code: list[CodeCell] = []
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            tags = cell.get("metadata", {}).get("tags", [])
            code.append(CodeCell(source if isinstance(source, str) else "".join(source), tuple(tags)))
    return code


Kind = Literal["empty", "step", "kernel"]


@dataclass(frozen=True)
class CellPlan:
    """What becomes of one code cell (see the module's docstring)."""

    number: int  # its code-cell number, from 1
    source: str  # as the notebook has it
    kind: Kind
    name: str | None = None  # a step's name (None: a `%%step` line that does not parse, which fails when run)
    python: str = ""  # a `cell_N` step's code, after IPython's transform_cell
    reason: str = ""  # why a kernel cell runs in the kernel

    @property
    def declared(self) -> bool:
        """A step of its own `%%step` line, which registers it when run."""
        return self.kind == "step" and not self.python


@dataclass
class CellsReport:
    """What `run_cells_as_steps` did."""

    cells: int  # code cells given
    steps: dict[int, str] = field(default_factory=dict)  # cell number -> step name, for the cells run as steps
    in_kernel: list[tuple[int, str]] = field(default_factory=list)  # (cell number, reason)
    runs: list[RunResult] = field(default_factory=list)  # every run, in order (%parrun cells' too)
    failed: int | None = None  # the cell that failed; the cells after it did not run

    @property
    def ok(self) -> bool:
        return self.failed is None

    @property
    def failure(self) -> str | None:
        """`cell 3 of 9 failed; stopping.`, or None."""
        return None if self.failed is None else f"cell {self.failed} of {self.cells} failed; stopping."


def _declared_name(source: str) -> tuple[bool, str | None]:
    """(whether the cell starts with a `%%step` line, the step's name there)."""
    from .magics import NbparMagics

    first = source.lstrip("\n").split("\n", 1)[0]
    magic, _, line = first.partition(" ")
    if magic.strip() != "%%step":
        return False, None
    try:
        return True, parse_argstring(NbparMagics.step, line).name
    except (UsageError, ValueError):
        return True, None


def _reason(error: GraphError, name: str) -> str:
    """add_step's refusal, as a reason: without the step's name in front, its first sentence."""
    text = str(error).removeprefix(f"step '{name}': ")
    return text.split(". ", 1)[0].rstrip(".")


def _ipython_use(python: str) -> str:
    """`%matplotlib`, `%%bash`, `!pip`: the first IPython call in a cell's code."""
    for node in ast.walk(ast.parse(python)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        shell = node.func.value
        if not (isinstance(shell, ast.Call) and isinstance(shell.func, ast.Name) and shell.func.id == "get_ipython"):
            continue
        first = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        if isinstance(first, str):
            if node.func.attr == "run_line_magic":
                return f"%{first}"
            if node.func.attr == "run_cell_magic":
                return f"%%{first}"
            if node.func.attr in ("system", "getoutput"):
                return f"!{first.split(' ', 1)[0]}"
    return "get_ipython()"


def _defined(python: str) -> list[str]:
    """The names a cell's top-level `def` and `class` statements bind."""
    defining = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [node.name for node in ast.parse(python).body if isinstance(node, defining)]


def _is_empty(python: str) -> bool:
    try:
        return not ast.parse(python).body
    except (SyntaxError, ValueError):
        return False


def plan_cells(shell: InteractiveShell, sources: Sequence[str], may_fail: Collection[int] = ()) -> list[CellPlan]:
    """What becomes of each cell of `sources` (cells in `may_fail`, by
    number, may fail: they run in the kernel). Changes nothing."""
    plans: list[CellPlan] = []
    scratch = Pipeline(shell.user_ns)  # (never run: the namespace's modules resolve the cells' callees)
    lookups: dict[str, str] = {}  # names bound by cells that look names up by string -> the callee
    for number, source in enumerate(sources, 1):
        declared, name = _declared_name(source)
        python = "" if declared else shell.transform_cell(source)
        if not declared and (not source.strip() or _is_empty(python)):
            plan = CellPlan(number, source, "empty")
        elif number in may_fail:
            plan = CellPlan(number, source, "kernel", reason=f"tagged {RAISES}")
        elif declared:
            if name is not None and name not in scratch.steps:
                _, _, body = source.lstrip("\n").partition("\n")
                try:
                    scratch.add_step(name, shell.transform_cell(body), first_line=2, flags=shell.compile.flags)
                except GraphError:
                    pass  # registering it fails when it runs, as in Run All
            plan = CellPlan(number, source, "step", name)
        else:
            plan = _plan_cell(scratch, number, source, python, shell.compile.flags, lookups)
        if plan.kind == "kernel":
            scratch = Pipeline(shell.user_ns)  # the next segment starts from no steps
        plans.append(plan)
    return plans


def _plan_cell(
    scratch: Pipeline, number: int, source: str, python: str, flags: int, lookups: dict[str, str]
) -> CellPlan:
    """A cell without a `%%step` line: a `cell_N` step, registered in
    `scratch`, or a kernel cell and why. `lookups`: the names bound by cells
    that look names up by string, each to the callee (kept up to date)."""
    name = f"cell_{number}"
    try:
        step = scratch.add_step(name, python, first_line=1, flags=flags)
    except GraphError as e:
        return CellPlan(number, source, "kernel", reason=_reason(e, name))
    names = analyze(python, bool(flags & __future__.annotations.compiler_flag))
    callee = looks_up(names.calls.union(*(f.calls for f in names.functions.values())))
    through = sorted(step.inputs & lookups.keys())
    for var in step.writes:
        lookups.pop(var, None)
    if callee is not None:  # its functions and classes that may look names up by string, called later
        for var in _defined(python):
            function = names.functions.get(var)  # (a class: its methods' code is the cell's)
            found = callee if function is None else looks_up(function.calls)
            if found is not None:
                lookups[var] = found
    why = ""
    if step.uses_ipython:
        why = f"uses IPython ({_ipython_use(python)})"
    elif callee is not None:
        why = f"looks names up by string ({callee}), which nbpar cannot see"
    elif through:
        why = f"uses {through[0]}, which looks names up by string ({lookups[through[0]]}), which nbpar cannot see"
    elif not step.writes:
        why = "binds no names and changes none in place (it shows something)"
    if why:
        scratch.forget(name)
        return CellPlan(number, source, "kernel", reason=why)
    return CellPlan(number, source, "step", name, python)


def _nbpar_magics(shell: InteractiveShell) -> NbparMagics:
    """The shell's nbpar magics, loading the extension if it is not loaded."""
    registry: dict[str, Any] = shell.magics_manager.registry
    if "NbparMagics" not in registry:
        shell.run_line_magic("load_ext", "nbpar")
    magics: NbparMagics = registry["NbparMagics"]
    return magics


def run_cells_as_steps(
    shell: InteractiveShell,
    sources: Sequence[str],
    *,
    backend: BackendName | None = None,
    workers: int | None = None,
    may_fail: Collection[int] = (),
) -> CellsReport:
    """Run the code cells `sources`, in notebook order, each cell that can
    be a step as a step (see the module's docstring), as Run All would:
    the first cell that fails stops the run. Prints one line per kernel
    cell first. `backend` and `workers` are `%parrun`'s (default: its
    defaults); cells numbered in `may_fail` run in the kernel and may fail.

    The steps registered before are forgotten (their outputs stay); after
    the run the magics' pipeline holds the steps of the last segment.
    Raises PlanError if a run is going on."""
    pipeline = _nbpar_magics(shell).pipeline
    pipeline.require_idle()
    plans = plan_cells(shell, sources, may_fail)
    report = CellsReport(len(sources))
    for plan in plans:
        if plan.kind == "kernel":
            report.in_kernel.append((plan.number, plan.reason))
            print(f"nbpar: cell {plan.number} runs in the kernel: {plan.reason}")
    options = "".join(f" --{k} {v}" for k, v in (("backend", backend), ("workers", workers)) if v is not None)
    segment: list[CellPlan] = []
    for plan in plans:
        if plan.kind == "step":
            segment.append(plan)
        elif plan.kind == "kernel":
            if not _run_segment(shell, pipeline, segment, options, report):
                return report
            segment = []
            if not run_cell(shell, plan.source, report.runs) and plan.number not in may_fail:
                report.failed = plan.number
                return report
    _run_segment(shell, pipeline, segment, options, report)
    return report


def _run_segment(
    shell: InteractiveShell, pipeline: Pipeline, segment: list[CellPlan], options: str, report: CellsReport
) -> bool:
    """Register the steps of `segment` alone, and run exactly them; False
    (and the failed cell in `report`) if a cell or a step failed."""
    if not segment:
        return True
    for name in reversed(list(pipeline.steps)):  # the last first: no other step's inputs change
        pipeline.forget(name)
    for plan in segment:
        if plan.declared:
            if not run_cell(shell, plan.source, report.runs):
                report.failed = plan.number
                return False
        else:
            assert plan.name is not None
            try:
                pipeline.add_step(plan.name, plan.python, first_line=1, flags=shell.compile.flags)
            except GraphError as e:  # (only if a `from __future__` import ran since it was planned)
                print(f"nbpar: cell {plan.number}: {e}", file=sys.stderr)
                report.failed = plan.number
                return False
        report.steps[plan.number] = plan.name or ""
    names = " ".join(plan.name or "" for plan in segment)
    while not run_cell(shell, f"%parrun {names}{options}", report.runs, store_history=False):
        if not _in_the_kernel_again(shell, pipeline, segment, report):
            break
    else:
        return True
    run = last_run()
    failed = [
        plan.number
        for plan in segment
        if run is not None and plan.name in run.steps and run.steps[plan.name].status in ("failed", "cancelled")
    ]
    report.failed = failed[0] if failed else segment[0].number
    return False


def _in_the_kernel_again(
    shell: InteractiveShell, pipeline: Pipeline, segment: list[CellPlan], report: CellsReport
) -> bool:
    """After a failed run of `segment`: if every step that failed made a
    value a worker process cannot send back (a generator, an `nditer`), make
    those steps run in the kernel and say so; True if the run is worth
    running again (the steps it did are up to date)."""
    run = last_run()
    if run is None:
        return False
    failed = [plan for plan in segment if plan.name in run.steps and run.steps[plan.name].status == "failed"]
    if not failed or any(UNSENDABLE not in (run.steps[p.name or ""].error or "") for p in failed):
        return False
    for plan in failed:
        assert plan.name is not None
        if plan.declared or pipeline.steps[plan.name].backend == "inline":
            return False  # (its own `%%step` line says where it runs)
        reason = "what it makes cannot be sent back from a worker process: it ran again, in the kernel"
        print(f"nbpar: cell {plan.number} runs in the kernel: {reason}")
        report.in_kernel.append((plan.number, reason))
        pipeline.add_step(plan.name, plan.python, backend="inline", first_line=1, flags=shell.compile.flags)
    return True


def run_cell(shell: InteractiveShell, source: str, runs: list[RunResult], store_history: bool = True) -> bool:
    """Run one cell as a notebook would; whether it succeeded. The run it
    made, if any, goes into `runs`."""
    before = last_run()
    result = shell.run_cell(source, store_history=store_history)
    after = last_run()
    if after is not None and after is not before:
        runs.append(after)
    return bool(result.success)


# -- the open notebook (%parrun --cells) ---------------------------------------


def notebook_path(given: str) -> str:
    """The notebook `%parrun --cells` reads: `given`, else the one
    JPY_SESSION_NAME names (jupyter_server sets it for each kernel it
    starts, since its pull request 679 of 2022; checked with 2.21: the
    notebook's path, absolute when the front end gives the notebook's
    name, else relative to the server's root; the kernel runs in the
    notebook's folder)."""
    if given:
        return given
    session = os.environ.get("JPY_SESSION_NAME", "")
    if not session:
        raise NotebookError(
            "%parrun --cells: this kernel does not know its notebook's path (JPY_SESSION_NAME is not set: "
            "Jupyter Server sets it); give it: %parrun --cells NOTEBOOK.ipynb"
        )
    if os.path.isabs(session) or os.path.exists(session):
        return session
    return os.path.basename(session)


def cells_above(cells: Sequence[CodeCell], running: str, path: str) -> tuple[list[CodeCell], str | None]:
    """The code cells above the one running `%parrun --cells` (whose source
    is `running`), and a warning when the saved file does not hold that
    cell as it runs (it was edited since the notebook was saved)."""
    for i, cell in enumerate(cells):
        if cell.source.strip() == running.strip():
            return list(cells[:i]), None
    marked = [i for i, cell in enumerate(cells) if any(_runs_cells(line) for line in cell.source.splitlines())]
    if not marked:
        raise NotebookError(
            f"no cell of {path} runs %parrun --cells: save the notebook first (the cells above run as last "
            "saved), or give the notebook's path: %parrun --cells NOTEBOOK.ipynb"
        )
    warning = (
        f"the cell running %parrun --cells is not in {path} as it runs: save the notebook first; running the "
        f"{marked[0]} code cells above the saved one"
    )
    return list(cells[: marked[0]]), warning


def _runs_cells(line: str) -> bool:
    words = line.split()
    return bool(words) and words[0] == "%parrun" and "--cells" in words
