"""The notebook's face: `%%step`, `%parrun`, `%parstatus`, `%parwait`,
`%parcancel`, `%pardag`, `%parsteps`, `%parforget`. Glue only: all work is
done by the `Pipeline` over the shell's namespace; the displays are in ui/."""

from __future__ import annotations

import argparse
import io
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from .cells import RAISES, NotebookError, cells_above, notebook_path, read_code_cells, run_cells_as_steps
from .errors import RunError
from .events import Listener
from .graph import BackendName, GraphError, Step
from .options import BACKENDS, Defaults, OptionError, RunOptions, default_workers, defaults_of
from .pipeline import FUTURE_FLAGS, Pipeline, PlanError, RunHandle, last_run
from .records import Status
from .ui.text import TextDisplay, announce, cancelled_text, describe_plan, describe_step, run_status
from .worker import compile_step

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


class _Once(argparse.Action):
    """Store an option's value (or `const`, for a flag), refusing an option
    given twice: argparse would silently keep the last one."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given = namespace.__dict__.setdefault("_given", set())
        if self.dest in given:
            raise argparse.ArgumentError(self, "given twice: give it once")
        given.add(self.dest)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def _option(*names: str, **kwargs: Any) -> Any:
    """An option of a magic, given at most once."""
    return argument(*names, action=_Once, **kwargs)


def _flag(*names: str, help: str) -> Any:
    """An on/off option of a magic, given at most once."""
    return argument(*names, action=_Once, nargs=0, const=True, default=False, help=help)


def _parse(magic: Callable[..., Any], line: str, name: str) -> Any:
    """The arguments of `line` for `magic` (shown to users as `name`); every
    misuse is a one-line UsageError that says where to look."""
    try:
        return parse_argstring(magic, line)
    except ValueError as e:  # shlex, on an unclosed quote
        raise UsageError(f"{name} {line.strip()}: {e}: close the quote or remove it.") from None
    except UsageError as e:
        raise UsageError(f"{name}: {e}. {name}? shows the options.") from None


# %parrun's options that --cells does not take: (option, dest)
_CELLS_IGNORE = (
    ("--force", "force"),
    ("--fail-fast", "fail_fast"),
    ("--no-widget", "no_widget"),
    ("--background", "background"),
    ("--dry-run", "dry_run"),
    ("--timeout", "timeout"),
    ("--retries", "retries"),
)

# %%step's options that mean something only with --run: (option, dest)
_RUN_ONLY = (
    ("--workers", "workers"),
    ("--force", "force"),
    ("--fail-fast", "fail_fast"),
    ("--no-widget", "no_widget"),
    ("--background", "background"),
)


def _check_step_args(args: argparse.Namespace) -> None:
    """Raise UsageError for options of %%step that cannot work, before
    anything is registered."""
    where = f"step '{args.name}': "
    if args.name in args.after:
        raise UsageError(f"{where}--after {args.name} names the step itself: drop it.")
    given = [option for option, dest in _RUN_ONLY if getattr(args, dest) not in (None, False)]
    if given and not args.run:
        raise UsageError(f"{where}{', '.join(given)} only apply with --run: add --run, or drop them.")


def _no_limit(timeout: float | None) -> float | None:
    """None (no limit) for an infinite wait."""
    return None if timeout is not None and math.isinf(timeout) else timeout


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
            _option("--workers", type=int, metavar="N", help="worker processes or threads (default: the CPU count)"),
            _flag("--force", help="re-run steps that are up to date"),
            _flag("--fail-fast", help="stop everything at the first failure"),
            _flag("--no-widget", help="text output only"),
            _flag("--background", help="return at once; the run goes on (see %%parstatus, %%parwait, %%parcancel)"),
        ]
    ):
        func = decorator(func)
    return func


@magics_class
class NbparMagics(Magics):
    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self.pipeline = Pipeline(shell.user_ns)
        self._background: RunHandle | None = None  # the last background run, until waited for
        self._text = io.StringIO()  # a background run's text display
        self._text_shown = 0
        # Start the worker processes now, while the user registers steps: here,
        # not in a thread (a few ms: loky forks them and returns; in a thread
        # that competes with the cells for the GIL, a notebook's first
        # %parrun could come before they did).
        self._warm_up()

    @property
    def defaults(self) -> Defaults:
        """The defaults of --workers and --backend that the program running
        the shell set as its `nbpar_defaults` (`nbpar run --workers/--backend`
        on its HeadlessShell), read at each run; else the environment's."""
        return defaults_of(self.shell)

    def _warm_up(self) -> None:
        try:
            defaults = self.defaults.resolved()
            if defaults.backend == "process":
                self.pipeline.backend("process", defaults.workers or default_workers()).warm_up()
        except Exception:
            pass  # the first %parrun starts the pool and reports what fails

    @magic_arguments(name="%step")  # IPython's usage line adds one "%": a cell magic's reads %%step
    @argument("name", metavar="NAME", help="the step's name, a Python identifier")
    @_option("--after", nargs="+", default=[], metavar="STEP", help="steps to wait for, beside the inferred ones")
    @_option("--backend", choices=BACKENDS, help="where this step runs (default: the run's)")
    @_option("--over", metavar="VAR", help="fan out: run once per slice of input VAR, merging the outputs")
    @_option("--slices", type=int, metavar="N", help="with --over: N slices (default: one per worker)")
    @_option("--slice-size", type=int, metavar="K", help="with --over: slices of K items")
    @_option("--filter", metavar="FUNC", help="with --over a dict: keep the keys the notebook function FUNC accepts")
    @_option(
        "--merge",
        nargs="+",
        default=["auto"],
        metavar="HOW",
        help="how outputs are merged: auto, concat, dict, list, sum or a function's name; OUTPUT=HOW for one output",
    )
    @_option(
        "--timeout",
        type=float,
        metavar="S",
        help="stop an attempt of this step after S seconds (inf: no limit, even if %%parrun sets one)",
    )
    @_option("--retries", type=int, metavar="N", help="run a failed attempt of this step up to N times more")
    @_flag("--run", help="register, then run this step and the stale steps it needs (with the options below)")
    @_run_options
    @cell_magic
    def step(self, line: str, cell: str) -> None:
        """Register this cell as step NAME of the pipeline, without running it.

        nbpar reads the cell to find the names it reads and writes; a step
        that reads a name another step writes runs after it. Run the steps
        with %parrun. A cell that fails to register changes nothing: the
        step's previous version, if any, stays.
        """
        if not line.strip():
            raise UsageError("%%step needs a name: write `%%step NAME` on the cell's first line, NAME an identifier.")
        args = _parse(self.step, line, "%%step")
        _check_step_args(args)
        # (its own --timeout and --retries are the step's, checked as it is registered)
        options = self._options(args, f"step '{args.name}': ", backend=None) if args.run else None
        source = self._transform(args.name, cell)
        previous = self.pipeline.steps.get(args.name)
        step = self._register(args, line, source)
        self._carry_future_imports(step)
        print(describe_step(self.pipeline.graph, step))
        if previous is not None and step != previous and self._runs_now(step.name) and not args.run:
            print(
                f"nbpar: a run is going on with the previous version of step '{step.name}', and keeps it; "
                "the next %parrun runs this one."
            )
        if options is not None:  # (a run going on refuses it)
            try:
                self._run([step.name], args, options)
            except UsageError as e:
                # The run could not start: a %%step that fails changes nothing.
                self._restore(step.name, previous)
                kept = "keeps its previous version" if previous else "is not registered"
                raise UsageError(f"{e} Step '{step.name}' {kept}.") from None

    def _register(self, args: argparse.Namespace, line: str, source: str) -> Step:
        assert self.shell is not None
        try:
            return self.pipeline.add_step(
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
                timeout=args.timeout,
                retries=args.retries,
                flags=self.shell.compile.flags,  # a `from __future__` run in a cell before applies to later ones
            )
        except GraphError as e:
            raise UsageError(str(e)) from None

    def _carry_future_imports(self, step: Step) -> None:
        """A `from __future__` import in the step applies to the cells after
        it, as when IPython runs a cell that has one."""
        assert self.shell is not None
        code = compile_step(step.name, step.source, step.first_line, step.flags)  # (cached: registering compiled it)
        self.shell.compile.flags |= code.co_flags & FUTURE_FLAGS

    def _transform(self, name: str, cell: str) -> str:
        """The cell as Python (IPython syntax turned into calls)."""
        assert self.shell is not None
        try:
            return self.shell.transform_cell(cell)
        except SyntaxError as e:  # IPython's tokenizer, on a bad indentation
            line = (e.lineno or 1) + 1  # the %%step line is line 1
            raise UsageError(f"step '{name}': syntax error on line {line} of the cell: {e.msg}") from None

    def _runs_now(self, name: str) -> bool:
        """Is step `name` part of the run going on (not kept as up to date)?"""
        run = self.pipeline.active
        record = run.result.steps.get(name) if run is not None else None
        return record is not None and record.status != "up-to-date"

    def _restore(self, name: str, previous: Step | None) -> None:
        """Put step `name` back as it was before its %%step cell ran."""
        if previous is None:
            self.pipeline.forget(name)
        else:
            self.pipeline.graph.add(previous)

    @magic_arguments()
    @argument("steps", nargs="*", metavar="STEP", help="steps to run, with what they need (default: all)")
    @_option("--backend", choices=BACKENDS, help="where steps run (default: process)")
    @_flag("--dry-run", help="check as a run would, print the plan, run nothing")
    @_option(
        "--timeout",
        type=float,
        metavar="S",
        help="stop an attempt after S seconds (steps that set none; inf: no limit)",
    )
    @_option("--retries", type=int, default=0, metavar="N", help="retry a failed attempt N times (steps that set none)")
    @_option(
        "--cells",
        nargs="?",
        const="",
        metavar="NOTEBOOK",
        help="run every code cell above this one, as saved in NOTEBOOK (default: this kernel's notebook), "
        "each as a step where it can be one (see README: A whole notebook as steps)",
    )
    @_run_options
    @line_magic
    def parrun(self, line: str) -> None:
        """Run the pipeline's steps in parallel, each as soon as what it
        reads is ready. Outputs enter the namespace as steps finish.
        Steps that are up to date (same code, same inputs, outputs untouched
        since their last run) are kept, and said so before the run starts."""
        args = _parse(self.parrun, line, "%parrun")
        options = self._options(args, "%parrun: ", args.backend, args.timeout, args.retries)
        if args.cells is not None:
            self._run_cells_above(args)  # (its --workers and --backend checked in `options`)
            return
        if not self.pipeline.steps:
            raise UsageError("there are no steps to run: mark cells with %%step NAME and run them first.")
        self._run(args.steps, args, options)

    def _run_cells_above(self, args: argparse.Namespace) -> None:
        """%parrun --cells: the cells above this one, as saved, as steps (cells.py)."""
        assert self.shell is not None
        if args.steps:
            raise UsageError(
                f"%parrun --cells runs every cell above this one; it takes no step names ({' '.join(args.steps)}): "
                "drop them, or drop --cells."
            )
        given = [option for option, dest in _CELLS_IGNORE if getattr(args, dest) not in (None, False, 0)]
        if given:
            raise UsageError(f"%parrun --cells takes --workers and --backend only, not {', '.join(given)}.")
        try:
            path = notebook_path(args.cells)
            history = self.shell.history_manager.input_hist_raw if self.shell.history_manager else []
            running = history[-1] if history else ""  # this cell: IPython stores it before running it
            above, warning = cells_above(read_code_cells(path), running, path)
        except NotebookError as e:
            raise UsageError(str(e)) from None
        if warning:
            print(f"nbpar: {warning}", file=sys.stderr)
        if not above:
            raise UsageError(f"%parrun --cells: there is no code cell above this one in {path}.")
        may_fail = [n for n, cell in enumerate(above, 1) if RAISES in cell.tags]
        try:
            report = run_cells_as_steps(
                self.shell, [c.source for c in above], backend=args.backend, workers=args.workers, may_fail=may_fail
            )
        except PlanError as e:
            raise UsageError(str(e)) from None
        if report.failure:
            raise UsageError(f"nbpar: {report.failure} (its error is above; the cells after it did not run)")
        print(f"nbpar: {len(above)} cells ran: {len(report.steps)} as steps, {len(report.in_kernel)} in the kernel.")

    @magic_arguments()
    @argument("name", metavar="STEP", help="the step to drop")
    @line_magic
    def parforget(self, line: str) -> None:
        """Drop step NAME from the pipeline (its outputs stay in the namespace)."""
        args = _parse(self.parforget, line, "%parforget")
        try:
            self.pipeline.forget(args.name)
        except GraphError as e:
            raise UsageError(str(e)) from None
        print(f"step {args.name} forgotten")

    @magic_arguments()
    @line_magic
    def pardag(self, line: str) -> None:
        """Show the graph of the steps, coloured by their last run's states."""
        _parse(self.pardag, line, "%pardag")
        graph = self.pipeline.graph
        order = graph.select()
        deps = graph.dependencies()
        if getattr(self.shell, "kernel", None) is not None:
            from .ui.monitor import Monitor

            display(Monitor.for_graph(order, deps, self._statuses()).widget)
        else:
            print(describe_plan(self.pipeline.plan()))

    @magic_arguments()
    @line_magic
    def parsteps(self, line: str) -> None:
        """A table of the steps: what each reads, writes, waits for, and its last state."""
        _parse(self.parsteps, line, "%parsteps")
        from .ui.table import steps_table_html, steps_table_text

        graph, statuses = self.pipeline.graph, self._statuses()
        bundle = {"text/plain": steps_table_text(graph, statuses), "text/html": steps_table_html(graph, statuses)}
        display(bundle, raw=True)

    def _statuses(self) -> dict[str, Status]:
        last = last_run()
        statuses: dict[str, Status] = {name: "waiting" for name in self.pipeline.steps}
        if last is not None:
            statuses.update((n, r.status) for n, r in last.steps.items() if n in statuses)
        return statuses

    @magic_arguments()
    @line_magic
    def parstatus(self, line: str) -> None:
        """Show how the run going on (or the last one) stands."""
        _parse(self.parstatus, line, "%parstatus")
        result = last_run()
        if result is None:
            print("nbpar: no run yet: %parrun starts one.")
            return
        self._print_new_text()
        print(run_status(result))

    @magic_arguments()
    @_option(
        "--timeout",
        type=float,
        metavar="S",
        help="give up waiting after S seconds (the run goes on; 0: just look; inf: no limit)",
    )
    @line_magic
    def parwait(self, line: str) -> None:
        """Wait for the background run to end; raise its error if it failed."""
        args = _parse(self.parwait, line, "%parwait")
        if args.timeout is not None and not args.timeout >= 0:  # NaN too
            raise UsageError(f"%parwait: --timeout must be 0 seconds or more (inf: no limit), not {args.timeout}.")
        run = self.pipeline.active or self._background
        if run is None:
            print("nbpar: no background run: %parrun --background starts one.")
            return
        try:
            run.wait(_no_limit(args.timeout), check=False)
        except TimeoutError as e:
            raise UsageError(f"{e}; it goes on: %parstatus to see it, %parcancel to stop it.") from None
        except KeyboardInterrupt:
            print("nbpar: stopped waiting; the run goes on (%parcancel stops it).")
            return
        finally:
            self._print_new_text()
        self._background = None
        if not run.result.ok:
            raise RunError(run.result)

    @magic_arguments()
    @line_magic
    def parcancel(self, line: str) -> None:
        """Stop the background run: steps in flight are stopped, finished ones keep their outputs."""
        _parse(self.parcancel, line, "%parcancel")
        run = self.pipeline.active
        if run is None:
            print("nbpar: no run is going on.")
            return
        run.cancel()
        try:
            run.wait(check=False)  # (the steps in flight are stopped: the count is final once the run ends)
        except KeyboardInterrupt:
            running = ", ".join(run.result.by_status("running")) or "its loop"
            print(f"nbpar: stopped waiting; the run is cancelled and ends when {running} stops (%parwait waits).")
            return
        finally:
            self._print_new_text()
        print(cancelled_text(run.result))

    # -- helpers --------------------------------------------------------------
    def _options(
        self,
        args: argparse.Namespace,
        where: str,
        backend: BackendName | None,
        timeout: float | None = None,
        retries: int = 0,
    ) -> RunOptions:
        """The run options of a magic's `args` (--workers, --force,
        --fail-fast), `backend`, `timeout` and `retries` (given, or None),
        the magics' defaults for the others, checked (RunOptions): an error
        becomes a UsageError saying `where` it was given."""
        try:
            defaults = self.defaults.resolved()
            return RunOptions(
                workers=defaults.workers if args.workers is None else args.workers,
                backend=backend or defaults.backend or "process",
                force=args.force,
                fail_fast=args.fail_fast,
                timeout=timeout,
                retries=retries,
            )
        except OptionError as e:
            raise UsageError(f"{where}{e}") from None

    def _run(self, targets: list[str], args: Any, options: RunOptions) -> None:
        """Run `targets` with `options`; `args` says how it is shown (a dry
        run, in the background, without the widget)."""
        keywords = options.keywords()
        try:
            if getattr(args, "dry_run", False):  # the checks of a real run, then the plan: nothing runs
                print(describe_plan(self.pipeline.check(targets, **keywords)))
                return
            self.pipeline.require_idle()  # refuse before showing anything
            plan = self.pipeline.plan(targets, options.force, options.worker_count)
            announcement = announce(plan)
            if announcement:
                print(announcement)
            listener = self._display(background=args.background, text_only=args.no_widget)
            if args.background:
                self._background = self.pipeline.start(targets, listeners=[listener], plan=plan, **keywords)
                print("nbpar: running in the background: %parstatus, %parwait, %parcancel.")
            else:
                self.pipeline.run(targets, listeners=[listener], plan=plan, **keywords)
        except (GraphError, PlanError) as e:
            raise UsageError(str(e)) from None

    def _display(self, background: bool, text_only: bool) -> Listener:
        """The run's display: the monitor widget in a Jupyter kernel, text
        elsewhere. Made and shown here, in the main thread."""
        if getattr(self.shell, "kernel", None) is not None and not text_only:
            from .ui.monitor import Monitor

            monitor = Monitor(on_cancel=self._cancel_active if background else None)
            display(monitor.widget)
            return monitor
        if background:
            # Text goes to a buffer that %parstatus and %parwait print: a
            # thread's prints would land in whatever cell runs meanwhile.
            self._text = io.StringIO()
            self._text_shown = 0
            return TextDisplay(self._text)
        return TextDisplay()

    def _cancel_active(self) -> None:
        if self.pipeline.active is not None:
            self.pipeline.active.cancel()

    def _print_new_text(self) -> None:
        """Print what a background run's text display wrote since last time."""
        text = self._text.getvalue()
        if len(text) > self._text_shown:
            print(text[self._text_shown :], end="")
            self._text_shown = len(text)
