"""The engine's own log lines (libtasker's Rust: claiming, heartbeats, retries,
database trouble) through Python ``logging``, on the logger ``tasker``.

libtasker queues the lines (bounded; when full, lines are dropped and
counted) and a daemon thread started here drains them, so an engine thread
never takes the GIL and never waits on Python. The engine sends what the
``tasker`` logger's effective level lets through (``WARNING`` by default,
the root's), read again every drain: ``logging.getLogger("tasker").setLevel(
logging.DEBUG)`` takes effect within a fraction of a second. Engine levels
map to ``ERROR``, ``WARNING``, ``INFO``, ``DEBUG`` and ``TRACE`` (5); each
record's message is ``<engine module>: <message>``.

At interpreter exit (``atexit``) the thread stops and the engine's lines go
back to stderr, so nothing waits on a finalizing interpreter.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Optional

from . import _tasker

#: Below ``DEBUG``: the engine's most detailed lines.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LOGGER = "tasker"
# How long one drain waits (seconds): bounds how fast a level change and a
# stop are noticed.
DRAIN_SECONDS = 0.2

_PY_LEVEL = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG, 5: TRACE}

_lock = threading.Lock()
_thread: Optional[threading.Thread] = None
_stop = threading.Event()
_level = 0  # the engine level installed (0: none yet)


def engine_level(python_level: int) -> int:
    """The engine level (1 error .. 5 trace) to send for a logger level."""
    if python_level >= logging.ERROR:
        return 1
    if python_level >= logging.WARNING:
        return 2
    if python_level >= logging.INFO:
        return 3
    if python_level >= logging.DEBUG:
        return 4
    return 5


def _sync_level() -> None:
    """Sends the engine's lines up to the ``tasker`` logger's effective level."""
    global _level
    wanted = engine_level(logging.getLogger(LOGGER).getEffectiveLevel())
    if wanted != _level:
        _tasker.engine_log_install(wanted)
        _level = wanted


def _drain_loop() -> None:
    log = logging.getLogger(LOGGER)
    while not _stop.is_set():
        try:
            _sync_level()
            lines = _tasker.engine_log_drain(DRAIN_SECONDS)
            for number, target, message in lines:
                log.log(_PY_LEVEL.get(number, logging.WARNING), "%s: %s", target, message)
            dropped = _tasker.engine_log_dropped()
            if dropped:
                log.warning("%d engine log lines were dropped (the queue was full)", dropped)
        except Exception:  # a broken handler of the user's must not end the thread
            pass


def start() -> None:
    """Starts the drain thread (once per process; workers and clients call it)."""
    global _thread
    with _lock:
        if _stop.is_set():
            return
        # Now, not at the thread's first turn: lines of the call about to be
        # made (e.g. "worker started") are queued at the level set now.
        _sync_level()
        if _thread is not None:
            return
        _thread = threading.Thread(target=_drain_loop, name="tasker-engine-log", daemon=True)
        _thread.start()
        atexit.register(stop)


def stop() -> None:
    """Stops the drain thread and gives the engine's lines back to stderr
    (at exit; not restartable)."""
    _stop.set()
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join(DRAIN_SECONDS * 5)
    _tasker.engine_log_uninstall()
    # What was queued meanwhile.
    log = logging.getLogger(LOGGER)
    for number, target, message in _tasker.engine_log_drain(0.0):
        log.log(_PY_LEVEL.get(number, logging.WARNING), "%s: %s", target, message)
