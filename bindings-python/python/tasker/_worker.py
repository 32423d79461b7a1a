"""The worker: serves steps of Python handlers through libtasker's pull contract.

A failed attempt is recorded with one of the error kinds every runtime shares
(``docs/error-kinds.md``; the strings come from the extension, ``KIND_*``):
``handler`` for ``RetryableError``/``PermanentError``, ``exception`` for any
other exception, ``result`` for a return value that is not JSON or that JSON
cannot carry exactly (checked by libtasker, which names the value's path).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import platform
import signal
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

from . import _engine_log, _logs, _tasker
from ._config import ConfigLike, config_text
from ._context import StepContext
from ._errors import PermanentError, RetryableError
from ._registry import resolve

log = logging.getLogger("tasker")

Handlers = Dict[str, Callable[[StepContext], Any]]

# How long one wait for a step lasts (seconds): bounds how fast a thread
# notices a stop request. The wait itself does not hold the GIL.
POLL_SECONDS = 0.25


class _Failure:
    """How a handler attempt failed: what goes into ``Step.fail``."""

    __slots__ = ("message", "retryable", "kind", "retry_after_ms")

    def __init__(self, message: str, retryable: bool, kind: str, retry_after_ms: Optional[int] = None):
        self.message = message
        self.retryable = retryable
        self.kind = kind
        self.retry_after_ms = retry_after_ms


def _failure_of(exc: BaseException, ctx: Optional[StepContext]) -> _Failure:
    """Maps an exception from a handler to a failed outcome."""
    if isinstance(exc, RetryableError):
        return _Failure(exc.message or type(exc).__name__, True, _tasker.KIND_HANDLER, exc.retry_after_ms)
    if isinstance(exc, PermanentError):
        return _Failure(exc.message or type(exc).__name__, False, _tasker.KIND_HANDLER)
    # Any other exception: retryable, recording its type and message.
    where = f" in step {ctx.step_name!r} (handler {ctx.handler!r})" if ctx is not None else ""
    log.warning("handler raised %s%s", type(exc).__name__, where, exc_info=exc)
    text = str(exc)
    return _Failure(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, True, _tasker.KIND_EXCEPTION)


def _key_path(path: str, key: Any) -> str:
    """``path`` and one object key, as libtasker writes paths (``$.a``, ``$["a b"]``)."""
    text = key if isinstance(key, str) else json.dumps(key)
    if text and (text[0].isascii() and (text[0].isalpha() or text[0] == "_")) and all(
        c.isascii() and (c.isalnum() or c == "_") for c in text
    ):
        return f"{path}.{text}"
    return f"{path}[{json.dumps(text)}]"


def _unserializable_path(value: Any, path: str = "$", depth: int = 0) -> Optional[str]:
    """Where ``json.dumps`` gives up in ``value``: the path of the first value
    it cannot write (or of the object holding a key it cannot write); ``None``
    when every value is one it writes."""
    if value is None or isinstance(value, (str, int, float)):
        return None
    if depth > 100:  # circular, or deeper than worth walking
        return path
    if isinstance(value, dict):
        for key, item in value.items():
            if not (key is None or isinstance(key, (str, int, float))):
                return path
            found = _unserializable_path(item, _key_path(path, key), depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _unserializable_path(item, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
        return None
    return path


def _begin(step: Any, handlers: Handlers):
    """Parses the step's context and finds its handler: ``(ctx, fn)``, or
    completes the step with a failure and returns ``None``."""
    try:
        ctx = StepContext.from_json(step.context_json(), step)
    except Exception as exc:  # a bug of ours: say so rather than crash the thread
        _complete(step, None, failure=_Failure(f"reading the step context failed: {exc!r}", True, _tasker.KIND_INTERNAL))
        return None
    fn = handlers.get(ctx.handler)
    if fn is None:
        _complete(
            step,
            ctx,
            failure=_Failure(
                f"no Python handler is registered for {ctx.handler!r} in this worker", False, _tasker.KIND_NO_HANDLER
            ),
        )
        return None
    return ctx, fn


def _complete(step: Any, ctx: Optional[StepContext], result: Any = None, failure: Optional[_Failure] = None) -> None:
    """Gives the step its outcome. A result that is not JSON, or that JSON
    cannot carry exactly (an int beyond 64 bits, NaN, ...), fails the step
    with kind ``result`` (not retried), naming the step and the value's path."""
    try:
        if failure is None:
            try:
                # NaN and Infinity are written (allow_nan): libtasker refuses
                # them, and big integers, naming where they are.
                payload = json.dumps(result)
            except Exception as exc:  # TypeError, ValueError (circular), RecursionError
                name = ctx.step_name if ctx is not None else "?"
                failure = _Failure(
                    f"step {name!r} returned a result that is not JSON-serializable at "
                    f"{_unserializable_path(result) or '$'}: {type(exc).__name__}: {exc}",
                    False,
                    _tasker.KIND_RESULT,
                )
            else:
                refused = step.succeed(payload)
                if refused is not None:
                    log.warning("%s", refused)
                return
        step.fail(failure.message, failure.retryable, failure.kind, failure.retry_after_ms)
    except _tasker.StepGoneError:
        name = ctx.step_name if ctx is not None else "?"
        log.warning("step %s finished after the worker stopped waiting for it; its outcome was discarded", name)
    except Exception:  # never let one step take a serving thread down
        log.exception("completing a step failed")


def execute(step: Any, handlers: Handlers, run_coro: Callable[[Any], Any]) -> None:
    """Runs one step on this thread: ``run_coro`` runs what an async handler returns."""
    begun = _begin(step, handlers)
    if begun is None:
        return
    ctx, fn = begun
    # `logging` records made meanwhile go to the attempt's log (tasker/_logs.py).
    with _logs.attempt(step):
        try:
            result = fn(ctx)
            if inspect.isawaitable(result):
                result = run_coro(result)
        except Exception as exc:
            _complete(step, ctx, failure=_failure_of(exc, ctx))
            return
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: fail the attempt, then pass it on
            _complete(step, ctx, failure=_failure_of(exc, ctx))
            raise
        _complete(step, ctx, result=result)


async def execute_async(step: Any, handlers: Handlers) -> None:
    """Runs one step on the running event loop: ``async def`` handlers are
    awaited on it, plain ones run in the loop's default executor."""
    begun = _begin(step, handlers)
    if begun is None:
        return
    ctx, fn = begun
    # Each step runs in a task of its own, so in a context of its own; an
    # executor thread gets a copy of it.
    with _logs.attempt(step):
        try:
            if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
                result = await fn(ctx)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(None, contextvars.copy_context().run, fn, ctx)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            _complete(step, ctx, failure=_failure_of(exc, ctx))
            return
        except asyncio.CancelledError:
            _complete(step, ctx, failure=_Failure("the handler was cancelled", True, _tasker.KIND_CANCELLED))
            raise
        _complete(step, ctx, result=result)


class Worker:
    """Serves the steps of Python handlers for some namespaces.

    Args:
        namespaces: the namespaces whose steps this worker takes.
        pools: further pools (step queues that templates route steps to
            with ``pool:``) it serves.
        config: TOML text or a dict laid over the built-in defaults (e.g.
            ``{"worker": {"shutdown_grace_seconds": 10}}``).
        database_url: wins over ``database.url``; default ``DATABASE_URL``,
            else the local default database.
        threads: how many steps run at once: the number of serving threads
            (``run``/``start``) or of concurrent handler calls (``run_async``).
            It also sets ``worker.concurrency``.
        orchestrate: also run an orchestrator in this process (for
            single-process programs and tests; otherwise run ``tasker server``).
        handlers: a dict of handler name -> function or ``StepHandler``; by
            default every handler registered with ``@tasker.handler``.
    """

    def __init__(
        self,
        namespaces: Iterable[str] = (),
        config: ConfigLike = None,
        database_url: Optional[str] = None,
        threads: int = 4,
        orchestrate: bool = False,
        handlers: Optional[Dict[str, Any]] = None,
        pools: Iterable[str] = (),
    ) -> None:
        if isinstance(namespaces, str):
            namespaces = [namespaces]
        if isinstance(pools, str):
            pools = [pools]
        if int(threads) < 1:
            raise ValueError("threads must be at least 1")
        self.threads = int(threads)
        self.namespaces: List[str] = list(namespaces)
        self.pools: List[str] = list(pools)
        if not self.namespaces and not self.pools:
            raise ValueError("a worker needs at least one namespace or pool")
        self._native = _tasker.Worker(config_text(config), database_url, self.threads)
        for ns in self.namespaces:
            self._native.add_namespace(ns)
        for pool in self.pools:
            self._native.add_pool(pool)
        self._native.set_runtime("python", platform.python_version())
        self._native.set_orchestrate(bool(orchestrate))
        self._given_handlers = handlers
        self._handlers: Handlers = {}
        self._threads: List[threading.Thread] = []
        self._lock = threading.Lock()
        self._started = False
        self._stop_requested = threading.Event()
        self._stopped = threading.Event()  # the native stop has returned
        self._finished = threading.Event()  # every serving thread/loop has ended
        self._stop_error: Optional[BaseException] = None
        self._mode: Optional[str] = None  # "threads" or "async" once serving

    # -- lifecycle -------------------------------------------------------------

    def _start_native(self) -> None:
        with self._lock:
            if self._started:
                raise _tasker.TaskerError("the worker was started already (a worker runs once)")
            self._started = True
        self._handlers = resolve(self._given_handlers)
        if not self._handlers:
            raise _tasker.TaskerError(
                "the worker has no handlers: register some with @tasker.handler or pass handlers={...}"
            )
        for name in self._handlers:
            self._native.register(name)
        _logs.install()
        _engine_log.start()
        self._native.start()

    def start(self) -> None:
        """Connects (creating the schema when missing) and starts ``threads``
        serving threads; returns at once. Stop with ``stop()``."""
        self._start_native()
        self._mode = "threads"
        for i in range(self.threads):
            t = threading.Thread(target=self._serve, name=f"tasker-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stops taking steps, lets the running ones finish (within
        ``worker.shutdown_grace_seconds``) and waits for the serving threads.
        Safe to call twice, from any thread but a handler's. With
        ``run_async``, it asks the loop to stop and waits for it (call
        ``request_stop()`` from inside the loop instead)."""
        self._stop_requested.set()
        if not self._started:
            return
        if threading.current_thread() in self._threads:
            # From a handler: stopping waits for that very handler, so let
            # another thread do it.
            threading.Thread(target=self.stop, name="tasker-worker-stop", daemon=True).start()
            return
        if self._mode == "threads":
            self._stop_native()
            for t in self._threads:
                t.join(timeout)
        elif self._mode == "async":
            self._finished.wait(timeout)
        else:  # start failed: nothing runs
            self._stop_native()
        if self._stop_error is not None:
            raise self._stop_error

    def request_stop(self) -> None:
        """Asks the worker to stop without waiting (from a signal handler, a
        handler, or the event loop of ``run_async``)."""
        self._stop_requested.set()

    def _stop_native(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            try:
                self._native.stop()
            except BaseException as exc:
                self._stop_error = exc
            finally:
                self._stopped.set()

    @property
    def running(self) -> bool:
        return self._started and not self._stopped.is_set()

    def __enter__(self) -> "Worker":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- threads ---------------------------------------------------------------

    def _serve(self) -> None:
        loop: Optional[asyncio.AbstractEventLoop] = None

        def run_coro(coro: Any) -> Any:
            nonlocal loop
            if loop is None:
                loop = asyncio.new_event_loop()
            return loop.run_until_complete(coro)

        try:
            while True:
                try:
                    step = self._native.next_step(POLL_SECONDS)
                except _tasker.WorkerStoppedError:
                    # Steps may still be queued until the native stop returns.
                    if self._stopped.is_set():
                        break
                    time.sleep(0.01)
                    continue
                if step is None:
                    continue
                execute(step, self._handlers, run_coro)
        except Exception:
            log.exception("a serving thread failed")
        finally:
            if loop is not None:
                loop.close()

    def run(self) -> None:
        """Serves until SIGINT or SIGTERM (or ``stop()``/``request_stop()``
        from another thread), then stops cleanly: steps in flight finish."""
        self.start()
        restore = _install_signals(self._stop_requested.set)
        try:
            while not self._stop_requested.wait(0.2):
                if not any(t.is_alive() for t in self._threads):
                    break
        finally:
            try:
                self.stop()
            finally:
                restore()

    # -- asyncio ---------------------------------------------------------------

    async def run_async(self) -> None:
        """Serves on the running event loop until ``request_stop()``/``stop()``,
        SIGINT or SIGTERM, or until cancelled: up to ``threads`` handlers run at
        once, ``async def`` ones on this loop, plain ones in its default
        executor. Waiting for steps happens in the executor, without the GIL."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._start_native)
        self._mode = "async"
        signals = _install_loop_signals(loop, self._stop_requested.set)
        slots = asyncio.Semaphore(self.threads)
        tasks: Set["asyncio.Task[None]"] = set()
        stopping: Optional["asyncio.Future[None]"] = None

        async def one(step: Any) -> None:
            try:
                await execute_async(step, self._handlers)
            finally:
                slots.release()

        try:
            while True:
                if self._stop_requested.is_set() and stopping is None:
                    stopping = loop.run_in_executor(None, self._stop_native)
                await slots.acquire()
                try:
                    step = await loop.run_in_executor(None, self._native.next_step, POLL_SECONDS)
                except _tasker.WorkerStoppedError:
                    slots.release()
                    if self._stopped.is_set():
                        break
                    await asyncio.sleep(0.01)
                    continue
                except BaseException:
                    slots.release()
                    raise
                if step is None:
                    slots.release()
                    continue
                task = loop.create_task(one(step))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except asyncio.CancelledError:
            self._stop_requested.set()
            if stopping is None:
                stopping = loop.run_in_executor(None, self._stop_native)
            await asyncio.gather(stopping, *tasks, return_exceptions=True)
            raise
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if stopping is not None:
                await asyncio.gather(stopping, return_exceptions=True)
            for sig in signals:
                loop.remove_signal_handler(sig)
            self._finished.set()
        if self._stop_error is not None:
            raise self._stop_error


def _install_signals(on_signal: Callable[[], None]) -> Callable[[], None]:
    """SIGINT/SIGTERM call ``on_signal`` (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda _signo, _frame: on_signal())
        except (ValueError, OSError):
            pass

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _install_loop_signals(loop: asyncio.AbstractEventLoop, on_signal: Callable[[], None]) -> List[int]:
    if threading.current_thread() is not threading.main_thread():
        return []
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    return installed
