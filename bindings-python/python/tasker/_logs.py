"""A handler's log lines into its step attempt's log (``tasker step logs``).

While a handler runs, the worker sets a context variable to its step
(:func:`attempt`). Standard ``logging`` calls made in that context — the
handler's own ``logging.getLogger(__name__).info(...)``, or library code it
calls — are copied into the attempt's log, with their levels, as each record
is made: through a chained ``LogRecord`` factory, so no handler is added to
any logger and the program's logging configuration (``basicConfig``, the
last-resort handler, levels) stays exactly as it was. Only records a
logger's level lets through are made, hence copied: ``logging.getLogger(
__name__).info`` needs that logger (or the root) at ``INFO``.

``ctx.logger`` (:func:`step_logger`) writes to its step from any thread, and
logs at ``INFO`` whatever the root's level is (its logger, ``tasker.step``,
is set to ``INFO`` unless configured otherwise).

Threads a handler starts itself do not inherit the context (nor do executor
threads): log there through ``ctx.logger``, or run the work in
``contextvars.copy_context().run``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from typing import Any, Iterator, Optional

#: The logger of ``ctx.logger``.
STEP_LOGGER = "tasker.step"

_current: "contextvars.ContextVar[Optional[Any]]" = contextvars.ContextVar("tasker_step", default=None)
_installed = False
_install_lock = threading.Lock()
_formatter = logging.Formatter()


def level_name(levelno: int) -> str:
    """The attempt-log level of a ``logging`` level (``CRITICAL`` is ``error``,
    anything below ``DEBUG`` is ``trace``)."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


def _line(record: logging.LogRecord) -> str:
    """The text a record adds to the attempt's log: its message (prefixed with
    its logger's name unless it is ``ctx.logger``'s), its traceback if any."""
    try:
        text = record.getMessage()
    except Exception:  # bad %-args: keep what there is rather than lose the line
        text = f"{record.msg!r} {record.args!r}"
    if not record.name.startswith(STEP_LOGGER):
        text = f"{record.name}: {text}"
    if record.exc_info:
        text = f"{text}\n{_formatter.formatException(record.exc_info)}"
    elif record.exc_text:
        text = f"{text}\n{record.exc_text}"
    if record.stack_info:
        text = f"{text}\n{record.stack_info}"
    return text


def _copy_to_step(record: logging.LogRecord) -> None:
    step = _current.get()
    if step is None:
        return
    try:
        step.log(level_name(record.levelno), _line(record))
    except Exception:  # never let logging break a handler
        pass


def install() -> None:
    """Starts copying records made in a step's context into its log (once per
    process; the worker calls it when it starts). Sets ``tasker.step`` to
    ``INFO`` when its level is not set."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _copy_to_step(record)
            return record

        logging.setLogRecordFactory(factory)
        step_logger = logging.getLogger(STEP_LOGGER)
        if step_logger.level == logging.NOTSET:
            step_logger.setLevel(logging.INFO)
        _installed = True


@contextlib.contextmanager
def attempt(step: Any) -> Iterator[None]:
    """Runs the body with ``step`` as the step whose log receives records."""
    token = _current.set(step)
    try:
        yield
    finally:
        _current.reset(token)


class StepLogger(logging.LoggerAdapter):
    """``ctx.logger``: a ``logging`` logger (``tasker.step``) whose lines go to
    this step's attempt log, from whichever thread logs; they also reach the
    program's own handlers as any record does."""

    def __init__(self, step: Any) -> None:
        super().__init__(logging.getLogger(STEP_LOGGER), {})
        self._step = step

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self._step is None:
            super().log(level, msg, *args, **kwargs)
            return
        # The caller's frame, not this one, is the record's (Python 3.11+).
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        token = _current.set(self._step)
        try:
            super().log(level, msg, *args, **kwargs)
        finally:
            _current.reset(token)


def step_logger(step: Any) -> StepLogger:
    """The ``ctx.logger`` of ``step`` (``None``: a context made outside a
    worker; its lines only reach ``logging``)."""
    return StepLogger(step)
