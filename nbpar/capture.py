"""Output capture: what a step prints, warns and logs becomes its lines, thread by thread.

Data flow, in the process (kernel or worker) that runs steps::

    worker.execute_all
      with routing():                     the root logger gets _StepLogHandler
        worker.execute(task)              (while any thread of this process
          with capture(on_line,            runs steps)
                       log_level,
                       log_format):
            this thread's sink = _LineSink(on_line)     (thread-local)
            step's print, warnings -> sys.stdout / sys.stderr
                                    = _ThreadRouter (installed once, for good)
                                    -> this thread's sink, or the original
                                       stream for a thread running no step
            step's logging (>= log_level) -> _StepLogHandler, formatted
                                    with log_format -> the sink; or the
                                    notebook's own handler on a router
                                    (_route_handlers) -> the sink
            _LineSink -> on_line(each whole line), inside an alarm-held
                         section (alarms.py): a timeout does not cut a line
                         half sent; the partial last line at the end

`outside_step` lets nbpar's own work in a step's thread print to the real
streams. `notebook_log_format` reads the kernel's logging format, which the
kernel sends with each task so that records look alike on every backend.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .alarms import hold_alarm, release_alarm
from .contract import LogFormat


class _LineSink:
    """Where a step's writes to sys.stdout and sys.stderr go (through
    _ThreadRouter, which answers for everything else a stream has): hands
    each completed line to a callback."""

    __slots__ = ("_on_line", "_partial")

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._on_line = on_line
        self._partial = ""

    def write(self, text: str) -> int:
        was_busy = hold_alarm()
        try:
            head, sep, self._partial = (self._partial + text).rpartition("\n")
            if sep:
                self._on_line(head + sep)
        finally:
            release_alarm(was_busy)
        return len(text)

    def flush(self) -> None:
        if not self._partial:
            return
        was_busy = hold_alarm()
        try:
            self._on_line(self._partial + "\n")
            self._partial = ""
        finally:
            release_alarm(was_busy)


class _ThreadRouter:
    """Stands in for sys.stdout / sys.stderr: writes from a thread that is
    running a step go to that step's sink, everything else to the original
    stream. (contextlib.redirect_stdout is process-wide and could not tell two
    thread-backend steps apart.)"""

    def __init__(self, original: Any, local: threading.local) -> None:
        self._original = original
        self._local = local

    def _target(self) -> Any:
        return getattr(self._local, "sink", None) or self._original

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class _StepLogHandler(logging.Handler):
    """On the root logger while steps run here: a record logged by a thread
    running a step, at the step's level or above, joins the step's output,
    formatted as the notebook's root handler does (the step's `log_format`),
    else as by `logging.basicConfig`. Not when another handler writes it
    into the step's output already (a handler on sys.stderr: see
    `_route_handlers`). Records of other threads pass it by: one that no
    other handler takes goes to `logging.lastResort`, as if this handler
    were not there."""

    def format(self, record: logging.LogRecord) -> str:
        return _formatter(getattr(_local, "log_format", None)).format(record)

    def emit(self, record: logging.LogRecord) -> None:
        sink = getattr(_local, "sink", None)
        others = self._others(record)
        if sink is None:
            last = logging.lastResort
            if not others and last is not None and record.levelno >= last.level:
                last.handle(record)
            return
        if record.levelno < _local.log_level or any(_to_step(h, record) for h in others):
            return
        try:
            text = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        sink.write(text)

    def _others(self, record: logging.LogRecord) -> list[logging.Handler]:
        """The other handlers the record reaches (what Logger.callHandlers counts)."""
        logger: Any = logging.root if record.name == "root" else logging.Logger.manager.loggerDict.get(record.name)
        found: list[logging.Handler] = []
        while isinstance(logger, logging.Logger):
            found += [h for h in logger.handlers if h is not self]
            logger = logger.parent if logger.propagate else None
        return found


@functools.lru_cache(maxsize=64)
def _formatter(log_format: LogFormat | None) -> logging.Formatter:
    if log_format is None:
        return logging.Formatter(logging.BASIC_FORMAT)
    fmt, datefmt, style = log_format
    return logging.Formatter(fmt, datefmt, style)  # type: ignore[arg-type]


_STYLES = {logging.PercentStyle: "%", logging.StrFormatStyle: "{", logging.StringTemplateStyle: "$"}


def notebook_log_format() -> LogFormat | None:
    """The format of the root logger's handler that writes to this process's
    stdout or stderr (what `logging.basicConfig(format=...)` makes), if there
    is one: steps' records are formatted the same way on every backend."""
    for handler in logging.root.handlers:
        if not _on_std_stream(handler):
            continue
        formatter = handler.formatter
        if formatter is None:
            return ("%(message)s", None, "%")  # what a handler without a formatter writes
        style = _STYLES.get(type(formatter._style))
        if style is not None:
            return (formatter._fmt or "%(message)s", formatter.datefmt, style)
    return None


def _std_streams() -> list[Any]:
    """sys.stdout and sys.stderr, and what they stand for when they are routers."""
    streams: list[Any] = []
    for stream in (sys.stdout, sys.stderr):
        streams.append(stream)
        if isinstance(stream, _ThreadRouter):
            streams.append(stream._original)
    return streams


def _on_std_stream(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return stream is not None and any(stream is s for s in _std_streams())


def _route_handlers() -> None:
    """Point the root logger's handlers that write to the process's original
    stdout or stderr (a notebook's `logging.basicConfig()` made before the
    routers were in place) at the routers: a step's record they take then
    lands in the step's output, formatted by them, once; other threads'
    records still reach the original stream. (Else a record of a thread or
    inline step was printed twice: raw, and again in the step's output.)"""
    routers = [r for r in (sys.stdout, sys.stderr) if isinstance(r, _ThreadRouter)]
    for handler in logging.root.handlers:
        if isinstance(handler, logging.StreamHandler):
            router = next((r for r in routers if handler.stream is r._original), None)
            if router is not None:
                handler.setStream(router)


def _to_step(handler: logging.Handler, record: logging.LogRecord) -> bool:
    """Whether `handler` takes `record` and writes it to a _ThreadRouter (a
    StreamHandler made on sys.stderr after nbpar replaced it): in a step's
    thread, that puts the record in the step's output already."""
    stream = getattr(handler, "stream", None)
    return isinstance(stream, _ThreadRouter) and record.levelno >= handler.level


_local = threading.local()
_install_lock = threading.Lock()  # guards replacing sys.stdout / sys.stderr, and _capturing
_log_handler = _StepLogHandler()
# Steps capturing in this process. The log handler is on the root logger
# only while there are some: a root logger with a handler would turn the
# kernel's later `logging.basicConfig()` into a no-op.
_capturing = 0


@contextmanager
def routing() -> Iterator[None]:
    """Put the step log handler on the root logger while the steps this
    thread runs inside run (each `capture`s its own output)."""
    global _capturing
    with _install_lock:
        if _capturing == 0:
            logging.root.addHandler(_log_handler)
        _capturing += 1
    try:
        yield
    finally:
        with _install_lock:
            _capturing -= 1
            if _capturing == 0:
                logging.root.removeHandler(_log_handler)


@contextmanager
def capture(
    on_line: Callable[[str], None], log_level: int = logging.WARNING, log_format: LogFormat | None = None
) -> Iterator[None]:
    """Inside `routing()`: route this thread's stdout and stderr (so
    warnings too), and its `logging` records of `log_level` and above
    (formatted with `log_format`), to `on_line` for the duration. The
    routers stay on sys.stdout and sys.stderr for good; they are put back if
    something (a step before this one) replaced them, and the root logger's
    handlers on the streams they stand for are pointed at them."""
    if not (isinstance(sys.stdout, _ThreadRouter) and isinstance(sys.stderr, _ThreadRouter)):
        with _install_lock:
            for name in ("stdout", "stderr"):
                if not isinstance(getattr(sys, name), _ThreadRouter):
                    setattr(sys, name, _ThreadRouter(getattr(sys, name), _local))
    _route_handlers()
    sink = _LineSink(on_line)
    previous = (
        getattr(_local, "sink", None),
        getattr(_local, "log_level", logging.WARNING),
        getattr(_local, "log_format", None),
    )
    _local.sink, _local.log_level, _local.log_format = sink, log_level, log_format
    try:
        yield
    finally:
        try:
            sink.flush()
        finally:
            _local.sink, _local.log_level, _local.log_format = previous


@contextmanager
def outside_step() -> Iterator[None]:
    """What this thread prints in the block goes to the process's stdout and
    stderr, not the output of the step it runs (nbpar's own work, such as
    an inline step's display, done from inside that step's print)."""
    sink = getattr(_local, "sink", None)
    _local.sink = None
    try:
        yield
    finally:
        _local.sink = sink
