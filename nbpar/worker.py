"""What runs where a step runs: execute its code, report its outcome.

Data flow of one step::

    kernel                                  worker (process, thread or kernel)
    ------                                  ----------------------------------
    [Task(step, source, inputs, writes,     execute_all(tasks), under
          timeout, log_level, log_format,    capture.routing():
          display)] ---------------------->  execute(task) for each:
        (process: dump_tasks -> bytes)         compile with filename "<step NAME>",
                                               line numbers as in the notebook cell,
                                               the last expression shown (cached:
                                               the same steps run again)
                                               exec in a fresh dict holding only
                                               the inputs (and display_text as
                                               `display`; the functions steps
                                               defined get it as their globals:
                                               with_globals), under
                                               capture.capture(on_line): what it
                                                 prints, warns, shows and logs
                                                 -> on_line (capture.py)
                                               and alarms.deadline(timeout): in
                                                 a main thread, StepTimeout
                                                 after `timeout` (alarms.py);
                                               in a worker process, the share
                                                 of its time it held the GIL
                                                 (gil.py)
    [Outcome(outputs | error, times)] <---    outputs = the written names
        (process: bytes via dump_outcomes)

Nothing here raises for a failing step: a failure is an `Outcome` whose
`error` holds the user's traceback as text (traceback objects do not pickle),
with nbpar's own frames removed. Pickling is done here, not by loky, so
that an unpicklable input or output is reported by the variable's name.
A worker process serves many runs: during its tasks the root logger's level
is the kernel's, and what a step does to that level or to the warning
filters does not outlive the task.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import faulthandler
import functools
import glob
import io
import linecache
import logging
import os
import signal
import sys
import threading
import time
import tokenize
import traceback
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import IO, Any

from .alarms import StepTimeout, deadline
from .capture import capture, routing
from .channel import Address, LineBuffer, report
from .contract import Home, Outcome, PicklingProblem, Report, Task
from .gil import meter

# sharing.py (cloudpickle) is imported by the functions of the process
# protocol, below, at their first call: the kernel's run loop imports this
# module for its helpers and must load no pickler with it.

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def kernel_home() -> Home:
    return Home(os.getcwd(), list(sys.path), dict(builtins.__dict__))


def execute_all(tasks: list[Task], worker: str, report: Report | None) -> list[Outcome]:
    """Run `tasks` one after another. A task that `inherits` inputs takes
    them from the outputs of the tasks before it (a chain: slices of chained
    steps, or small steps each waiting for the one before), and is not run
    if the task before it failed: the chain stops there. Tasks without are
    independent (a batch of small steps). A worker process that is spent
    (a step lowered a hard limit it cannot raise again: `_clean_worker`)
    runs no more tasks: the outcomes stop at the step that spent it (its
    `spent` says so), or are none; the kernel runs the rest elsewhere. What
    a task prints goes to `report` as it comes, and all of it is in its
    outcome's `output` too (a live report may arrive after the outcome: the
    kernel shows what it missed)."""
    outcomes: list[Outcome] = []
    made: dict[str, Any] = {}  # outputs of the tasks so far
    with routing(), meter.armed() if _worker_builtins is not None else contextlib.nullcontext():
        for task in tasks:
            if _spent:
                break
            if task.inherits and outcomes:
                if not outcomes[-1].ok:
                    break
                task.inputs = {**task.inputs, **{v: made[v] for v in task.inherits if v in made}}
            printed: list[str] = []
            if report is None:
                on_line: Callable[[str], None] = printed.append
            else:
                on_line = partial(_keep_and_report, printed, partial(report, "log", task.step, task.slice))
                if task.report_start:
                    report("start", task.step, task.slice, (worker, time.time()))
                else:
                    on_line = _announcing(report, task, worker, on_line)
            outcome = execute(task, worker, on_line)
            outcome.output = "".join(printed)
            outcome.spent = _spent
            outcomes.append(outcome)
            made.update(outcome.outputs)
    return outcomes


def _keep_and_report(printed: list[str], live: Callable[[str], None], text: str) -> None:
    printed.append(text)
    live(text)


def _announcing(report: Report, task: Task, worker: str, on_line: Callable[[str], None]) -> Callable[[str], None]:
    """`on_line`, reporting "printing" before the first line: a unit that
    did not report its start is shown started before what it prints."""
    said = False

    def line(text: str) -> None:
        nonlocal said
        if not said:
            said = True
            report("printing", task.step, task.slice, (worker, time.time()))
        on_line(text)

    return line


def step_filename(step: str) -> str:
    return f"<step {step}>"


def execute(task: Task, worker: str, on_line: Callable[[str], None]) -> Outcome:
    """Run one step here and now, inside `routing()`. `on_line` receives
    each whole line the step prints, warns or logs (see `capture`)."""
    start = time.time()
    home = task.home
    before = _surroundings(home) if _worker_builtins is None else None
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    namespace.update(task.inputs)
    if task.copies:
        for note in _copy_changed(task, namespace):
            on_line(note)
    for name in task.functions:  # (a chain's inherited inputs too: they are in task.inputs by now)
        if name in namespace:
            namespace[name] = with_globals(namespace[name], namespace)
    if task.display:
        namespace["display"] = display_text
    error: str | None = None
    timed_out = False
    replaced: list[str] = []
    measuring = _worker_builtins is not None  # a worker process: one step at a time, so the GIL's share is its
    gil: float | None = None
    # in the kernel: the processes this thread had started, to stop those the step starts if its alarm stops it
    spawned_before = thread_children() if task.timeout is not None and _worker_builtins is None else None
    with capture(on_line, task.log_level, task.log_format):
        try:
            code = _compile(task)
            if _SHOW in code.co_names:
                namespace[_SHOW] = _show
            with deadline(task.timeout):
                if measuring:
                    meter.start()
                try:
                    exec(code, namespace)
                finally:
                    if measuring:
                        gil = meter.stop()
                    replaced = _undo_builtins(home)  # first: nbpar's code after the step uses them
        except StepTimeout as e:
            error, timed_out = _stopped(task) + format_user_error(e), True
        except (Exception, SystemExit) as e:
            error = format_user_error(e)
    if timed_out and spawned_before is not None:
        stop_processes(thread_children() - spawned_before)
    note = _clean_worker(task, timed_out) if _worker_builtins is not None else _put_back(task, before, replaced)
    if note:
        on_line(note)
    end = time.time()
    size = _size(task.inputs.get(task.over)) if task.over else None
    if error is not None:
        return Outcome(task.step, worker, start, end, error=error, size=size, timed_out=timed_out)
    outputs = {w: namespace[w] for w in task.writes if w in namespace}
    deleted = tuple(w for w in task.writes if w not in namespace and w in task.inputs)
    return Outcome(task.step, worker, start, end, outputs=outputs, deleted=deleted, size=size, gil=gil)


# types whose values nothing changes in place: deepcopy gives them back as they are
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset, range)


def _copy_changed(task: Task, namespace: dict[str, Any]) -> list[str]:
    """Give the step copies of the inputs it changes in place (`task.copies`),
    in `namespace`, so that the versions it read stay as they were: other
    steps may read them at the same time, and the memo of the step that made
    each keeps it. One deepcopy memo for all: inputs that share objects
    still share them. An input that cannot be copied (a deepcopy that
    raises, or gives back the object itself: a function, a class) stays the
    original, and the step's output says so: the lines returned."""
    notes: list[str] = []
    memo: dict[int, Any] = {}
    for name in task.copies:
        if name not in namespace:
            continue
        value = namespace[name]
        try:
            copied = copy.deepcopy(value, memo)
        except Exception as e:  # (what a type's __deepcopy__ or __reduce_ex__ raises)
            why = f"{type(e).__name__}: {e}"
        else:
            if copied is not value or isinstance(value, _IMMUTABLE):
                namespace[name] = copied
                continue
            why = "copying gives back the object itself"
        notes.append(
            f"nbpar: step '{task.step}' changes `{name}` in place, and `{name}` ({type(value).__name__}) "
            f"cannot be copied ({why}), so the step changes the object itself, which other steps may be "
            f"reading at the same time and the version above it was: make `{name}` in this step if it "
            "changes it.\n"
        )
    return notes


# -- what a step leaves behind: nothing but its outputs ----------------------
#
# A worker process serves step after step: each starts in the kernel's
# working directory with its sys.path (the task's `home`), and after each,
# the worker's builtins and resource limits are put back as the worker
# started; a worker whose hard limit a step lowered (which it cannot raise
# again) runs no more steps, and the kernel replaces its pool. On thread
# and inline, steps run in the kernel, whose working directory, sys.path
# and builtins are the whole process's: a step that changes them changes
# them for the kernel and every step running beside it while it runs;
# nbpar puts them back after the step (as at the run's start) and says so
# in the step's output. Resource limits there are the kernel's.

_worker_builtins: dict[str, Any] | None = None  # a worker process's builtins as it started (init_worker)
_worker_limits: dict[int, tuple[int, int]] = {}  # and its resource limits
_limits_set = False  # a step called resource.setrlimit or prlimit since they were last put back
_spent = False  # a step lowered a hard limit of this worker process: it runs no more steps


def _go_home(home: Home) -> None:
    """Make this process's working directory and sys.path the kernel's."""
    global _moved
    _moved = False
    try:
        if os.getcwd() != home.cwd:
            os.chdir(home.cwd)
    except OSError:
        pass  # (removed meanwhile: the step finds out as it would in the kernel)
    if sys.path != home.path:
        sys.path[:] = home.path


def _undo_builtins(home: Home | None) -> list[str]:
    """Right after a step, before nbpar's code that uses builtins the step
    may have broken (and using none): in a worker process, its builtins as
    it started; in the kernel, put back the builtins replaced since the run
    started, and their names."""
    current = builtins.__dict__
    if _worker_builtins is None:
        return _replaced_builtins(home.builtins if home is not None else None)
    if current != _worker_builtins:
        current.update(_worker_builtins)
        for added in [name for name in current if name not in _worker_builtins]:
            del current[added]
    return []


def _clean_worker(task: Task, timed_out: bool) -> str:
    """After a step in a worker process: the kernel's working directory and
    sys.path back, and the worker's resource limits (builtins: see
    `_undo_builtins`). A hard limit the step lowered cannot be put back: the
    worker is then spent (it runs no more steps, so that every step starts
    with the limits the worker started with: see execute_all; the kernel
    replaces its pool, process.py) and the note returned says so."""
    global _spent
    if timed_out:
        _undo_builtins(task.home)  # (the alarm may have cut it short)
    if task.home is not None and _moved:
        _go_home(task.home)
    elif task.home is not None and sys.path != task.home.path:
        sys.path[:] = task.home.path
    if _spawned:
        _stop_children(timed_out)
    stuck = _restore_limits() if _limits_set else []
    if not stuck:
        return ""
    _spent = True
    return (
        f"nbpar: step '{task.step}' lowered the hard limit {', '.join(stuck)} of its worker process (pid "
        f"{os.getpid()}), which cannot be raised again, so that worker runs no more steps: it was replaced, and "
        "the steps after it start with the limits every step starts with. Lower only the soft limit: "
        "resource.setrlimit(which, (limit, resource.getrlimit(which)[1])).\n"
    )


def _surroundings(home: Home | None) -> tuple[str, bool] | None:
    """Where a step in the kernel starts: the working directory, and whether
    sys.path is the kernel's at the run's start."""
    if home is None:
        return None
    try:
        return os.getcwd(), sys.path == home.path
    except OSError:  # the working directory was removed
        return None


def _put_back(task: Task, before: tuple[str, bool] | None, replaced: list[str]) -> str:
    """After a step in the kernel (thread, inline): if the working directory
    or sys.path changed while it ran, put the kernel's back (as at the run's
    start). A note saying so, and of the builtins it replaced (`replaced`,
    put back already)."""
    home = task.home
    after = _surroundings(home)
    if home is None or before is None or after is None:
        return ""
    if task.timeout is not None:
        replaced += _replaced_builtins(home.builtins)  # (the alarm may have cut _undo_builtins short)
    notes = []
    if after[0] != before[0]:
        notes.append(f"the working directory (to {after[0]})")
        try:
            os.chdir(home.cwd)
        except OSError:
            pass
    if before[1] and not after[1]:
        notes.append("sys.path")
        sys.path[:] = home.path
    if replaced:
        notes.append("the builtin " + ", ".join(f"`{name}`" for name in replaced))
    if not notes:
        return ""
    changes = ", ".join(notes[:-1]) + " and " + notes[-1] if len(notes) > 1 else notes[0]
    return (
        f"nbpar: {changes} changed while step '{task.step}' ran; put back as the kernel had it. On --backend "
        "thread and inline a step shares them with the kernel and the steps beside it: change them in an "
        "ordinary cell, or use absolute paths.\n"
    )


def _replaced_builtins(kernel: dict[str, Any] | None) -> list[str]:
    """Put back the builtins that were replaced (or deleted) since the run
    started; their names. (Names added or removed by IPython, which adds
    `get_ipython` and hides `exit` while a cell runs, are left as they are.)"""
    current = builtins.__dict__
    if kernel is None or current == kernel:
        return []
    replaced = [name for name, value in kernel.items() if current.get(name) is not value and name not in _IPYTHONS]
    for name in replaced:
        current[name] = kernel[name]
    return replaced


_IPYTHONS = frozenset(("exit", "quit", "get_ipython"))  # the builtins IPython's BuiltinTrap adds and removes


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """The audit hook of worker processes: notes a step's change of its
    resource limits and working directory, and a process it starts (a
    hook costs a call per audit event, and the events a tiny step raises
    are few: cheaper than looking after every step)."""
    global _limits_set, _spawned, _moved
    if event in _LIMIT_EVENTS:
        _limits_set = True
    elif event in _SPAWN_EVENTS:
        _spawned = True
    elif event == "os.chdir":
        _moved = True


_LIMIT_EVENTS = frozenset(("resource.setrlimit", "resource.prlimit"))
_SPAWN_EVENTS = frozenset(("subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system"))
_spawned = False  # a step started a process since the worker last looked
_moved = False  # a step changed the working directory (os.chdir, os.fchdir) since the worker went home
_kept: set[int] = set()  # processes that steps of this worker left running when they finished


def _stop_children(stopped: bool) -> None:
    """After a step that started processes: if the step was stopped (its
    timeout), stop those it left running, and what they started; else they
    are the worker's to keep, as a cell's are the kernel's. (A worker the
    kernel kills takes its whole process group with it: see init_worker.)"""
    global _spawned, _kept
    _spawned = False
    children = _children(os.getpid())
    if not stopped:
        _kept = children
        return
    stop_processes(children - _kept)


def stop_processes(children: Iterable[int]) -> None:
    """Kill `children` (processes this one started) and what they started,
    the deepest first, and reap them."""
    for child in children:
        for pid in [*_descendants(child), child]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(child, 0)
        except ChildProcessError:
            pass  # (reaped by its Popen meanwhile)


def thread_children(thread: int | None = None) -> set[int]:
    """The live processes that thread `thread` of this process (a native id;
    the calling thread's by default) started (Linux's /proc; elsewhere none
    are known). On thread and inline, what a step started is those of its
    thread that were not there before it: see `execute`, backends.thread."""
    try:
        with open(f"/proc/self/task/{thread or threading.get_native_id()}/children") as f:
            return {int(p) for p in f.read().split()}
    except OSError:
        return set()


def _children(pid: int) -> set[int]:
    """The processes `pid` started that are alive (Linux's /proc; elsewhere none are known)."""
    found: set[int] = set()
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                found.update(int(p) for p in f.read().split())
        except OSError:
            pass  # (that thread ended)
    return found


def _descendants(pid: int) -> list[int]:
    """The processes below `pid`, the deepest first."""
    below = []
    for child in _children(pid):
        below += [*_descendants(child), child]
    return below


def _restore_limits() -> list[str]:
    """Put the resource limits back as this worker started; the names of
    those whose hard limit a step lowered, which cannot be raised again
    (unprivileged): their soft limit is put back as far as that allows."""
    global _limits_set
    import resource

    _limits_set = False
    stuck = []
    for which, (soft, hard) in _worker_limits.items():
        if resource.getrlimit(which) == (soft, hard):
            continue
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            lowered = resource.getrlimit(which)[1]
            stuck.append(_LIMIT_NAMES.get(which, str(which)))
            resource.setrlimit(which, (lowered if soft == resource.RLIM_INFINITY else min(soft, lowered), lowered))
    return stuck


def _size(value: Any) -> int | None:
    try:
        return len(value)
    except TypeError:
        return None


def compile_step(step: str, source: str, first_line: int, flags: int) -> Any:
    """The step's code as its worker compiles it (SyntaxError for a cell
    Python cannot compile, its line as the notebook numbers it)."""
    return _code(step_filename(step), source, first_line, flags)


def _compile(task: Task) -> Any:
    """The step's code, its line numbers those of the notebook cell, its
    source in linecache (so tracebacks show the lines)."""
    filename = step_filename(task.step)
    linecache.cache[filename] = _lines(filename, task.source, task.first_line, task.header)
    return _code(filename, task.source, task.first_line, task.flags)


# A worker runs many slices of one step, and the same steps run after run.
# The caches hold more steps than a notebook has: an LRU cache smaller than
# the steps a worker sees in a run is emptied by every run (10,000 tiny steps
# then spent half their time compiling).
_CACHED_STEPS = 1 << 15


@functools.lru_cache(maxsize=_CACHED_STEPS)
def _lines(filename: str, source: str, first_line: int, header: str) -> tuple[int, None, list[str], str]:
    padding = [header + "\n"] + ["\n"] * (first_line - 2) if first_line > 1 else []
    lines = padding + source.splitlines(keepends=True)
    return (len("".join(lines)), None, lines, filename)


@functools.lru_cache(maxsize=_CACHED_STEPS)
def _code(filename: str, source: str, first_line: int, flags: int) -> Any:
    """Compile with `flags` (the notebook's `__future__` flags) and nothing
    inherited from this module (whose own `from __future__ import
    annotations` would turn the step's annotations into strings); the last
    expression shown as a cell shows it. Also called at registration, so
    what cannot compile is refused there."""
    tree = compile(source, filename, "exec", flags | ast.PyCF_ONLY_AST, dont_inherit=True)
    _show_last_expression(tree, source)
    if first_line > 1:
        ast.increment_lineno(tree, first_line - 1)
    return compile(tree, filename, "exec", flags, dont_inherit=True)


# -- what a step shows: its last expression, display() ------------------------
#
# A cell shows the value of its last expression; a step shows it as text in
# its output (text/plain, as IPython formats it), and its `display(obj)`
# too, on every backend. (Rich output, MIME bundles, comes later.)

_SHOW = "__nbpar_show__"  # the name the last expression is passed to, in the step's namespace


def _show_last_expression(tree: ast.Module, source: str) -> None:
    """Make a step's last statement, if it is an expression, show its value
    as a cell would: `expr` becomes `__nbpar_show__(expr)`; not when the
    cell ends with `;` (IPython's way to hide it)."""
    if not tree.body or not isinstance(tree.body[-1], ast.Expr) or _ends_with_semicolon(source):
        return
    last = tree.body[-1]
    show = ast.copy_location(ast.Name(_SHOW, ast.Load()), last.value)
    call = ast.copy_location(ast.Call(show, [last.value], []), last.value)
    tree.body[-1] = ast.copy_location(ast.Expr(call), last)


def _ends_with_semicolon(source: str) -> bool:
    if ";" not in source:
        return False  # (most steps: no need to tokenize)
    ignored = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    try:
        tokens = [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in ignored]
    except (tokenize.TokenError, SyntaxError):
        return False
    return bool(tokens) and tokens[-1] == ";"


def _show(value: Any) -> None:
    """Show a step's last expression (None shows nothing, as in a cell)."""
    if value is not None:
        print(_plain_text(value))


def display_text(*objs: Any, **options: Any) -> None:
    """A step's `display()`, standing in for IPython's: prints the text/plain
    form of each object into the step's output (`options`, such as
    `display_id`, are accepted and ignored: no rich output yet)."""
    for obj in objs:
        print(_plain_text(obj))


def _plain_text(value: Any) -> str:
    """`value` as IPython's text/plain formatter shows it in a cell."""
    from IPython.lib.pretty import pretty

    return pretty(value, max_width=79, max_seq_length=1000)


# what a function keeps of itself when it gets other globals (FunctionType takes the rest)
_FUNCTION_ATTRIBUTES = ("__kwdefaults__", "__qualname__", "__annotations__", "__doc__", "__module__", "__type_params__")


def with_globals(value: Any, namespace: MutableMapping[str, Any]) -> Any:
    """`value`, or, when it is a function notebook code defined (a plain
    function of `__main__`, whose globals are not `namespace`), a copy of it
    with `namespace` as its globals: called, it looks its free names up
    there, as a function of the notebook looks them up in the notebook's
    namespace when it is called. A step gives the functions it is given
    its own namespace (which holds the versions of their free names that
    the step reads: Graph.inputs); a function committed into the notebook's
    namespace gets that one (a worker process's copy, or a thread step's
    scratch namespace, would be stale). The private names it loads
    (`_cache`: the defining cell's own, never a step's output) go along:
    copied into `namespace` where it has none of that name. Not rebound:
    functions inside containers (`{"a": f}`), methods of classes, decorated
    functions (the wrapper is not a plain function, or not the notebook's)
    and lambdas: they keep the globals they had; so does every function
    when `namespace` is not a dict (a Pipeline's own mapping: Python takes
    only a dict as globals)."""
    if type(value) is not types.FunctionType or value.__module__ != "__main__" or value.__globals__ is namespace:
        return value
    if not isinstance(namespace, dict):
        return value
    old = value.__globals__
    for name in _private_names(value.__code__):
        if name in old and name not in namespace:
            namespace[name] = old[name]
    func = types.FunctionType(value.__code__, namespace, value.__name__, value.__defaults__, value.__closure__)
    for attribute in _FUNCTION_ATTRIBUTES:
        if hasattr(value, attribute):
            setattr(func, attribute, getattr(value, attribute))
    func.__dict__.update(value.__dict__)
    return func


def _private_names(code: types.CodeType) -> set[str]:
    """The private names (`_x`, not `__x__`) `code` and the code nested in it may load as globals."""
    found = {n for n in code.co_names if n.startswith("_") and not n.endswith("__")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _private_names(const)
    return found


def is_ipython_display(value: object) -> bool:
    """Whether `value` is IPython's `display` (its builtin in a kernel, or
    `from IPython.display import display`), which a step gets as display_text."""
    return getattr(value, "__name__", None) == "display" and str(getattr(value, "__module__", "")).startswith(
        "IPython.core.display"
    )


def format_user_error(e: BaseException) -> str:
    """The traceback of `e` as text, starting at the first frame that is not
    nbpar's own (the user's step, or the function it called); for a
    StepTimeout, ending at the last such frame (where the step was)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    shown = traceback.TracebackException(type(e), e, tb)
    if isinstance(e, StepTimeout):
        while shown.stack and shown.stack[-1].filename.startswith(_PACKAGE_DIR):
            shown.stack.pop()
    return "".join(shown.format())


def _stopped(task: Task) -> str:
    """The first line of the error of a step stopped by its timeout."""
    what = f"step '{task.step}'" + (f" (slice {task.slice})" if task.slice is not None else "")
    return f"{what} was stopped after its timeout of {task.timeout:g}s (--timeout {task.timeout:g}).\n"


# -- the process protocol -------------------------------------------------


def dump_tasks(tasks: list[Task], run: object | None = None) -> bytes:
    """Pickle tasks for a worker process, naming the input that fails. With
    `run` (the run they belong to), large buffers go through shared files
    (see sharing.py)."""
    from . import sharing

    try:
        return sharing.dumps(tasks, run=run)
    except Exception as whole:
        for task in tasks:
            for name, value in task.inputs.items():
                problem = sharing.pickle_problem(value)
                if problem:
                    raise PicklingProblem(unsendable_input(task.step, name, value, problem)) from None
        raise PicklingProblem(f"step '{tasks[0].step}' cannot be sent to a worker process: {whole}") from None


def unsendable_input(step: str, name: str, value: Any, problem: str) -> str:
    """What to tell the user when input `name` of `step` cannot be pickled."""
    return (
        f"step '{step}' reads `{name}` ({type(value).__name__}), which cannot be sent to a worker "
        f"process: {problem}. Create it inside the step, or run the step with --backend thread."
    )


def dump_outcomes(outcomes: list[Outcome]) -> bytes:
    """Pickle outcomes for the kernel (large buffers through the shared
    files `sharing.replying` names); an output that fails becomes its step's
    error, naming the variable."""
    from . import sharing

    try:
        return sharing.dumps(outcomes)
    except Exception:
        return sharing.dumps([_picklable(o) for o in outcomes])


UNSENDABLE = "which cannot be sent back from a worker process"  # (nbpar.cells looks for it)


def _picklable(outcome: Outcome) -> Outcome:
    from . import sharing

    whole = sharing.pickle_problem(outcome)
    if whole is None:
        return outcome
    bad = [(n, v, p) for n, v in outcome.outputs.items() if (p := sharing.pickle_problem(v))]
    if bad:
        name, value, problem = bad[0]
        error = (
            f"step '{outcome.step}' writes `{name}` ({type(value).__name__}), "
            f"{UNSENDABLE}: {problem}.\n"
            f"Make it private to the step (`_{name}`), create it in the step "
            "that uses it, or run the step with --backend thread.\n"
        )
    else:
        error = f"step '{outcome.step}': its result could not be sent back: {whole.split(': ', 1)[-1]}\n"
    return replace(outcome, outputs={}, deleted=(), error=error, final=True)


def run_in_process(
    payload: bytes, channel: tuple[Address, str] | None = None, reply: tuple[str, str] | None = None
) -> bytes:
    """The function loky runs in a worker process: tasks in, outcomes out;
    with a `channel` (address, run token), starts and printed lines are
    reported live to the kernel as well; with `reply` (the kernel's shared
    directory, the flight's token), large output buffers go to files there.
    Large inputs arrive on the kernel's files, mapped without a copy."""
    from . import sharing

    with sharing.serving():
        worker = f"pid {os.getpid()}"
        try:
            tasks: list[Task] = sharing.loads(payload)
        except Exception as e:
            now = time.time()
            error = (
                "its inputs could not be loaded in the worker process (a module they need may not be "
                "importable there):\n" + format_user_error(e)
            )
            return sharing.dumps([Outcome("?", worker, now, now, error=error)])
        if tasks[0].home is not None:
            _go_home(tasks[0].home)  # (the tasks of one payload are of one run: one home)
        with _task_state(min(t.log_level for t in tasks)), sharing.replying(reply):
            return _run_tasks(tasks, worker, channel)


@contextmanager
def _task_state(log_level: int) -> Iterator[None]:
    """A worker process's logging level (the kernel's, else records below
    WARNING are never made) and warning filters for its tasks; what a step
    changes of them does not reach the next task."""
    root = logging.getLogger()
    saved = root.level
    root.setLevel(log_level)
    try:
        with warnings.catch_warnings():
            yield
    finally:
        root.setLevel(saved)


def _run_tasks(tasks: list[Task], worker: str, channel: tuple[Address, str] | None) -> bytes:
    if channel is None:
        return dump_outcomes(execute_all(tasks, worker, report=None))
    address, token = channel
    buffers: dict[tuple[str, int | None], LineBuffer] = {}

    def send(kind: str, step: str, index: int | None, payload: Any) -> None:
        if kind == "log":  # batched: a chatty step must not send a message a line
            key = (step, index)
            if key not in buffers:
                buffers[key] = LineBuffer(lambda text: report(address, (token, "log", step, index, text)))
            buffers[key].write(payload)
        else:
            report(address, (token, kind, step, index, payload))

    try:
        outcomes = execute_all(tasks, worker, send)
    finally:
        for buffer in buffers.values():
            buffer.close()
    return dump_outcomes(outcomes)


_fault_file: IO[str] | None = None  # a worker's own, open while it lives


def init_worker(faults: str | None = None, kernel: int | None = None) -> None:
    """Worker initializer (here, so that a worker imports only this module).
    A worker is a process group of its own, with the processes its steps
    start: the kernel kills the group with the worker. It ignores SIGINT
    (Ctrl-C, the notebook's stop button): the kernel decides what to stop. A
    worker whose kernel (pid `kernel`, which started it) died without
    shutting the pool down (killed, crashed, or exited while the pool was
    starting) exits instead of idling for an hour. With `faults` (a path
    pattern with {worker}, in the kernel's private folder), Python's
    faulthandler writes to a file of the worker's own, which the kernel
    reads if the worker dies: a new file, 0600, never an existing one nor
    through a link (if there is one, the worker goes without: its crash is
    reported without last words). Its builtin `display` is display_text, as
    a kernel's is IPython's; its builtins and resource limits as it starts
    are what every step gets, and an audit hook notes what steps do to them
    (see `_clean_worker`). It imports what its first task needs (sharing)
    as it starts, so that the first run on a warm pool waits for no import."""
    global _fault_file, _worker_builtins, _worker_limits
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # born blocked (process._sigint_blocked)
    try:
        os.setpgid(0, 0)  # a group of its own: the processes its steps start go when the kernel kills it
    except OSError:
        pass
    if not hasattr(builtins, "display"):  # a notebook function calling the kernel's builtin `display`
        builtins.display = display_text  # type: ignore[attr-defined]
    _worker_builtins = dict(builtins.__dict__)
    _worker_limits = _limits()
    from . import sharing  # noqa: F401  (run_in_process's)

    sys.addaudithook(_audit)
    parent = kernel if kernel is not None else os.getppid()  # (already 1 if the kernel is gone)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="nbpar-orphan-watch", daemon=True).start()
    if faults is not None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(faults.format(worker=os.getpid()), flags, 0o600)
        except OSError:
            return
        _fault_file = os.fdopen(fd, "w")  # open while the worker lives
        faulthandler.enable(_fault_file, all_threads=False)


def _limits() -> dict[int, tuple[int, int]]:
    import resource

    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            _LIMIT_NAMES[getattr(resource, name)] = name
    return {which: resource.getrlimit(which) for which in _LIMIT_NAMES}


_LIMIT_NAMES: dict[int, str] = {}  # resource.RLIMIT_AS -> "RLIMIT_AS"


def _exit_with_parent(parent: int) -> None:
    """A worker's watch on its kernel (a thread): once the kernel is gone,
    kill what the worker's steps started and exit. It cannot run while a
    step is in C code that holds the GIL; the kernel's watchdog
    (folders.py) kills such a worker."""
    while os.getppid() == parent:
        time.sleep(1.0)
    for pid in _descendants(os.getpid()):  # what its steps started (the kernel's group no longer has them)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(0)
