"""The notebook's face: `%%step`, `%parrun`, `%parforget`. Glue only: all
work is done by the `Pipeline` over the shell's namespace."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import loky
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .analysis import is_builtin
from .graph import BACKENDS, BackendName, GraphError, Step
from .pipeline import Pipeline, PlanError
from .scheduler import Plan
from .ui.text import TextDisplay

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


def run_defaults() -> dict[str, Any]:  # {"workers": int | None, "backend": BackendName}
    """Defaults of %parrun's options, from NBPAR_WORKERS and NBPAR_BACKEND
    (set by `nbpar run --workers/--backend`, or by the user)."""
    workers = os.environ.get("NBPAR_WORKERS")
    backend = os.environ.get("NBPAR_BACKEND") or "process"
    if backend not in BACKENDS:
        raise UsageError(f"NBPAR_BACKEND is {backend!r}; choose {', '.join(BACKENDS)}.")
    if workers is not None and not workers.isdigit():
        raise UsageError(f"NBPAR_WORKERS is {workers!r}; it must be a whole number.")
    return {"workers": int(workers) if workers else None, "backend": backend}


def _merges(specs: list[str]) -> dict[str, str]:
    """`--merge sum` or `--merge feats=concat total=sum` as {output or "*": how}."""
    merges: dict[str, str] = {}
    for spec in specs:
        output, _, how = spec.rpartition("=")
        merges[output or "*"] = how
    return merges


def _run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by %parrun and %%step --run."""
    for decorator in reversed(
        [
            argument("--workers", type=int, metavar="N", help="worker processes or threads (default: the CPU count)"),
            argument("--force", action="store_true", help="re-run steps that are up to date"),
            argument("--fail-fast", action="store_true", help="stop everything at the first failure"),
            argument("--no-widget", action="store_true", help="text output only"),
        ]
    ):
        func = decorator(func)
    return func


@magics_class
class NbparMagics(Magics):
    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self.pipeline = Pipeline(shell.user_ns)
        # Start the worker processes now, while the user registers steps.
        threading.Thread(target=self._warm_up, name="nbpar-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            defaults = run_defaults()
            if defaults["backend"] == "process":
                self.pipeline.backend("process", defaults["workers"] or loky.cpu_count()).warm_up()
        except Exception:
            pass  # the first %parrun starts the pool and reports what fails

    @magic_arguments()
    @argument("name", help="the step's name")
    @argument("--after", nargs="+", default=[], metavar="STEP", help="steps to wait for, beside the inferred ones")
    @argument("--backend", choices=BACKENDS, help="where this step runs (default: the run's)")
    @argument("--over", metavar="VAR", help="fan out: run once per slice of input VAR, merging the outputs")
    @argument("--slices", type=int, metavar="N", help="with --over: N slices (default: one per worker)")
    @argument("--slice-size", type=int, metavar="K", help="with --over: slices of K items")
    @argument("--filter", metavar="FUNC", help="with --over a dict: keep the keys the notebook function FUNC accepts")
    @argument(
        "--merge",
        nargs="+",
        default=["auto"],
        metavar="HOW",
        help="how outputs are merged: auto, concat, dict, list, sum or a function's name; OUTPUT=HOW for one output",
    )
    @argument("--run", action="store_true", help="register, then run this step and the stale steps it needs")
    @_run_options
    @cell_magic
    def step(self, line: str, cell: str) -> None:
        """Register this cell as step NAME of the pipeline, without running it.

        nbpar reads the cell to find the names it reads and writes; a step
        that reads a name another step writes runs after it. Run the steps
        with %parrun.
        """
        args = parse_argstring(self.step, line)
        assert self.shell is not None
        source = self.shell.transform_cell(cell)
        try:
            step = self.pipeline.add_step(
                args.name,
                source,
                after=args.after,
                backend=args.backend,
                first_line=2,
                header=f"%%step {line}".rstrip(),
                over=args.over,
                slices=args.slices,
                slice_size=args.slice_size,
                filter=args.filter,
                merge=_merges(args.merge),
            )
        except GraphError as e:
            raise UsageError(str(e)) from None
        print(self._describe(step))
        if args.run:
            self._run([step.name], args, backend=None)

    @magic_arguments()
    @argument("steps", nargs="*", metavar="STEP", help="steps to run, with what they need (default: all)")
    @argument("--backend", choices=BACKENDS, help="where steps run (default: process)")
    @argument("--dry-run", action="store_true", help="print the plan and run nothing")
    @_run_options
    @line_magic
    def parrun(self, line: str) -> None:
        """Run the pipeline's steps in parallel, each as soon as what it
        reads is ready. Outputs enter the namespace as steps finish."""
        args = parse_argstring(self.parrun, line)
        if not self.pipeline.steps:
            raise UsageError("there are no steps to run: mark cells with %%step NAME and run them first.")
        if args.dry_run:
            try:
                plan = self.pipeline.plan(args.steps, args.force)
            except GraphError as e:
                raise UsageError(str(e)) from None
            print(self._describe_plan(plan))
            return
        self._run(args.steps, args, backend=args.backend)

    @magic_arguments()
    @argument("name", help="the step to drop")
    @line_magic
    def parforget(self, line: str) -> None:
        """Drop step NAME from the pipeline (its outputs stay in the namespace)."""
        args = parse_argstring(self.parforget, line)
        try:
            self.pipeline.forget(args.name)
        except GraphError as e:
            raise UsageError(str(e)) from None
        print(f"step {args.name} forgotten")

    # -- helpers --------------------------------------------------------------
    def _run(self, targets: list[str], args: Any, backend: BackendName | None) -> None:
        try:
            defaults = run_defaults()
            self.pipeline.run(
                targets,
                workers=defaults["workers"] if args.workers is None else args.workers,
                backend=backend or defaults["backend"],
                force=args.force,
                fail_fast=args.fail_fast,
                listeners=[TextDisplay()],
            )
        except (GraphError, PlanError) as e:
            raise UsageError(str(e)) from None

    def _describe(self, step: Step) -> str:
        writer = self.pipeline.graph.writers()
        reads = sorted(r for r in step.reads if r in writer or not is_builtin(r))
        deps = sorted(self.pipeline.graph.dependencies()[step.name])
        fan = f" | over {step.over}" if step.over else ""
        return (
            f"step {step.name}: reads {', '.join(reads) or '-'}"
            f" | writes {', '.join(sorted(step.writes)) or '-'}"
            f" | after {', '.join(deps) or '-'}{fan}"
        )

    def _describe_plan(self, plan: Plan) -> str:
        stale = set(plan.stale)
        lines = [f"nbpar plan: {len(stale)} of {len(plan.order)} steps to run"]
        for name in plan.order:
            state = "run       " if name in stale else "up to date"
            deps = sorted(plan.deps[name])
            lines.append(f"  {state}  {name}" + (f"  (after {', '.join(deps)})" if deps else ""))
        return "\n".join(lines)
