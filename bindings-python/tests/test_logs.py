"""Handler logs and trace context: ``logging`` inside a handler lands in its
step attempt's log (through the real pull contract without a database, then
in ``tasker.step_logs`` through a real worker); ``ctx.traceparent`` is passed
through; the engine's own lines come out of ``logging.getLogger("tasker")``."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import textwrap
import threading
import time

import tasker
from tasker import _engine_log, _logs, _tasker
from tasker._worker import execute, execute_async

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def served(fn, traceparent=None, on_loop=False):
    """Serves one step with handler ``fn`` through the real pull contract, on a
    thread (``execute``) or on an event loop (``execute_async``, as
    ``Worker.run_async`` does); returns (outcome dict, [(level, message)] of
    its attempt log)."""
    _logs.install()
    q = _tasker.BenchQueue()

    def serve():
        step = q.next(5.0)
        assert step is not None
        if on_loop:
            asyncio.run(execute_async(step, {"h": fn}))
        else:
            execute(step, {"h": fn}, asyncio.run)

    t = threading.Thread(target=serve)
    t.start()
    outcome, log = json.loads(q.outcome_and_log("h", traceparent))
    t.join(5)
    return outcome, [(line["level"], line["message"]) for line in log["lines"]]


def test_standard_logging_and_ctx_logger_land_in_the_attempt_log():
    lib = logging.getLogger("pytest_lib")

    def handler(ctx):
        ctx.logger.info("hello from python, attempt %d", ctx.attempt)
        ctx.logger.debug("below tasker.step's INFO: not kept")
        lib.warning("library code says %s", "hi")
        lib.info("below the root's WARNING: not made, not kept")
        lib.critical("critical is error")
        t = threading.Thread(target=lambda: ctx.logger.error("from a thread of the handler"))
        t.start()
        t.join()
        try:
            1 / 0
        except ZeroDivisionError:
            ctx.logger.exception("caught")
        return {"ok": True}

    outcome, lines = served(handler)
    assert outcome["status"] == "success", outcome
    assert lines[:5] == [
        ("info", "hello from python, attempt 1"),
        ("warn", "pytest_lib: library code says hi"),
        ("error", "pytest_lib: critical is error"),
        ("error", "from a thread of the handler"),
        ("error", lines[4][1]),
    ]
    assert lines[4][1].startswith("caught\nTraceback") and "ZeroDivisionError" in lines[4][1]
    assert len(lines) == 5
    # Outside a handler nothing is copied anywhere.
    lib.warning("outside any step")


def test_an_exception_is_logged_with_its_traceback_into_the_attempt():
    def handler(ctx):
        raise ValueError("bad input")

    outcome, lines = served(handler)
    assert outcome["status"] == "failure" and outcome["kind"] == "exception"
    assert [level for level, _ in lines] == ["warn"]
    assert "handler raised ValueError" in lines[0][1] and "Traceback" in lines[0][1]


def test_async_handlers_and_executor_threads_log_into_their_own_step():
    async def coroutine(ctx):
        await asyncio.sleep(0)
        logging.getLogger("pytest_async").warning("async %s", ctx.step_name)
        return 1

    def plain(ctx):
        logging.getLogger("pytest_async").warning("in the executor")
        return 1

    for on_loop in (False, True):
        outcome, lines = served(coroutine, on_loop=on_loop)
        assert outcome["status"] == "success"
        assert lines == [("warn", "pytest_async: async noop")]
    outcome, lines = served(plain, on_loop=True)
    assert outcome["status"] == "success"
    assert lines == [("warn", "pytest_async: in the executor")]


def test_traceparent_and_trace_id_are_passed_through():
    seen = {}

    def handler(ctx):
        seen["traceparent"], seen["trace_id"] = ctx.traceparent, ctx.trace_id
        return 1

    served(handler, TRACEPARENT)
    assert seen == {"traceparent": TRACEPARENT, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
    served(handler)
    assert seen == {"traceparent": None, "trace_id": None}


def test_levels_map_to_the_attempt_log_and_the_engine():
    assert [_logs.level_name(n) for n in (50, 40, 30, 20, 10, 5)] == [
        "error", "error", "warn", "info", "debug", "trace",
    ]
    assert [_engine_log.engine_level(n) for n in (50, 40, 30, 20, 10, 5, 0)] == [1, 1, 2, 3, 4, 5, 5]
    q = _tasker.BenchQueue()
    t = threading.Thread(target=lambda: q.outcome("h"))
    t.start()
    step = q.next(5.0)
    try:
        step.log("WARNING", "fine")
        try:
            step.log("loud", "refused")
            raise AssertionError("an unknown level was accepted")
        except tasker.TaskerError as e:
            assert "unknown log level" in str(e)
    finally:
        step.succeed("1")
        t.join(5)


def test_a_context_made_outside_a_worker_has_a_plain_logger():
    ctx = tasker.StepContext(
        {"task_id": "t", "step_id": "s", "namespace": "n", "template": "n/t/1", "step_name": "x",
         "handler": "h", "attempt": 1, "max_attempts": 1, "traceparent": TRACEPARENT}
    )
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    ctx.logger.warning("goes only to logging")  # no step: nothing to write to, no error


# ---------------------------------------------------------------- real workers


def _psql(url: str, sql: str) -> str:
    return subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True, text=True).stdout


def test_handler_logs_are_stored_per_attempt_with_levels(client, make_worker, database_url):
    def flaky(ctx):
        ctx.logger.info("hello from python, attempt %d", ctx.attempt)
        logging.getLogger("pytest_lib").warning("library line %d", ctx.attempt)
        if ctx.attempt == 1:
            raise tasker.RetryableError("once more")
        return {"ok": True}

    make_worker({"logs.flaky": flaky})
    client.register_template(
        textwrap.dedent(
            """
            namespace: pytest
            name: logs
            version: 1.0.0
            steps:
              - name: only
                handler: { name: logs.flaky }
                retry: { max_attempts: 3, backoff: none }
            """
        )
    )
    task_id = client.create_task("pytest", "logs", {})
    assert client.wait(task_id, timeout=30) == "complete"
    rows = _psql(
        database_url,
        "SELECT attempt, l.line->>'level', l.line->>'message' "
        "FROM tasker.step_logs, jsonb_array_elements(lines) WITH ORDINALITY AS l(line, n) "
        f"WHERE task_id = '{task_id}' ORDER BY attempt, l.n",
    )
    got = [tuple(r.split("|", 2)) for r in rows.splitlines()]
    assert got == [
        ("1", "info", "hello from python, attempt 1"),
        ("1", "warn", "pytest_lib: library line 1"),
        ("2", "info", "hello from python, attempt 2"),
        ("2", "warn", "pytest_lib: library line 2"),
    ], got


def test_engine_lines_come_out_of_the_tasker_logger(make_worker):
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record)

    keep = Keep()
    engine = logging.getLogger("tasker")
    engine.addHandler(keep)
    engine.setLevel(logging.INFO)
    try:
        make_worker({"noop": lambda ctx: None})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("worker started" in r.getMessage() for r in seen):
            time.sleep(0.05)
    finally:
        engine.removeHandler(keep)
        engine.setLevel(logging.NOTSET)
    started = [r for r in seen if "worker started" in r.getMessage()]
    assert started, [r.getMessage() for r in seen]
    assert started[0].levelno == logging.INFO
    assert started[0].getMessage().startswith("tasker_worker")
    assert started[0].threadName == "tasker-engine-log"
