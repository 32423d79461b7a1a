"""Unit tests: no database. Dispatch goes through the real pull contract
(libtasker's PullQueue/PullHandler) via the extension's BenchQueue."""

from __future__ import annotations

import asyncio
import json
import math
import random
import struct
import threading

import pytest

import tasker
from tasker import _tasker
from tasker._config import config_text
from tasker._worker import execute


def serve_one(handlers, handler_name="h"):
    """Queues one step for ``handler_name``, serves it with ``execute`` on a
    Python thread, and returns (ok, error message or None)."""
    q = _tasker.BenchQueue()
    seen = {}

    def serve():
        step = q.next(5.0)
        assert step is not None
        seen["handler"] = step.handler
        execute(step, handlers, asyncio.run)

    t = threading.Thread(target=serve)
    t.start()
    try:
        q.run(1, handler_name)
        result = (True, None)
    except tasker.TaskerError as e:
        result = (False, str(e))
    t.join(5)
    assert seen["handler"] == handler_name
    return result


def test_abi_version():
    assert tasker.abi_version() >= 10000


def test_retryable_error_retry_after_is_seconds():
    e = tasker.RetryableError("later", retry_after=1.5)
    assert e.retry_after == 1.5 and e.retry_after_ms == 1500
    assert tasker.RetryableError("x").retry_after_ms is None
    assert tasker.RetryableError("x", retry_after=0.0001).retry_after_ms == 1
    with pytest.raises(ValueError):
        tasker.RetryableError("x", retry_after=-1)


def test_config_dict_becomes_toml_the_library_accepts():
    text = config_text({"worker": {"concurrency": 3, "namespaces": ["a", "b"], "mode": "polling"}})
    assert "[\"worker\"]" in text
    w = _tasker.Worker(text, "postgres://localhost/none", None)
    assert w.concurrency == 3
    assert _tasker.Worker(None, "postgres://localhost/none", 7).concurrency == 7
    with pytest.raises(TypeError):
        config_text({"concurrency": 3})


def test_bad_config_is_a_tasker_error():
    with pytest.raises(tasker.TaskerError, match="concurrency|worker"):
        _tasker.Worker("[worker]\nconcurrency = \"lots\"", None, None)


def test_decorator_and_step_handler_registration():
    @tasker.handler("unit.fn")
    def fn(ctx):
        return 1

    @tasker.handler("unit.cls")
    class H(tasker.StepHandler):
        def call(self, context):
            return 2

    regs = tasker.handlers()
    assert regs["unit.fn"] is fn
    assert regs["unit.cls"](None) == 2
    tasker.unregister("unit.fn")
    tasker.unregister("unit.cls")
    assert "unit.fn" not in tasker.handlers()
    with pytest.raises(TypeError):
        tasker.register("bad", int)


def test_context_fields_and_success():
    got = {}

    def h(ctx: tasker.StepContext):
        got.update(
            task_id=ctx.task_id,
            namespace=ctx.namespace,
            step_name=ctx.step_name,
            attempt=ctx.attempt,
            input=ctx.input,
            parents=ctx.parent_results,
            config=ctx.config,
            cancelled=ctx.is_cancelled(),
        )
        return {"ok": True}

    assert serve_one({"h": h}) == (True, None)
    assert got["namespace"] == "bench" and got["step_name"] == "noop" and got["attempt"] == 1
    assert got["input"] == {"value": 3} and got["parents"] == {"parent": 9}
    assert got["config"] == {"op": "noop"} and got["cancelled"] is False
    assert len(got["task_id"]) == 36


def test_async_handler_runs_in_thread_mode():
    async def h(ctx):
        await asyncio.sleep(0.01)
        return ctx.input["value"]

    assert serve_one({"h": h}) == (True, None)


def test_exceptions_become_failures_with_type_and_message():
    def boom(ctx):
        raise ValueError("bad value")

    ok, msg = serve_one({"h": boom})
    assert not ok and "ValueError: bad value" in msg


def test_permanent_and_retryable_errors_keep_their_message():
    def perm(ctx):
        raise tasker.PermanentError("never works")

    def retry(ctx):
        raise tasker.RetryableError("try later", retry_after=2)

    assert serve_one({"h": perm}) == (False, "a benchmark step failed: never works")
    assert serve_one({"h": retry}) == (False, "a benchmark step failed: try later")


def test_unknown_handler_and_unserializable_result_fail():
    ok, msg = serve_one({}, "missing")
    assert not ok and "no Python handler is registered for 'missing'" in msg
    ok, msg = serve_one({"h": lambda ctx: object()})
    assert not ok and "not JSON-serializable" in msg and "step 'noop'" in msg


def test_completing_twice_is_an_error():
    q = _tasker.BenchQueue()
    errors = []

    def serve():
        step = q.next(5.0)
        step.succeed("1")
        try:
            step.succeed("2")
        except tasker.TaskerError as e:
            errors.append(str(e))

    t = threading.Thread(target=serve)
    t.start()
    q.run(1, "h")
    t.join(5)
    assert errors == ["the step already has an outcome"]


def test_worker_without_handlers_or_namespaces_is_refused(database_url=None):
    with pytest.raises(ValueError):
        tasker.Worker(namespaces=[])
    with pytest.raises(tasker.TaskerError, match="not valid|queue|namespace"):
        tasker.Worker(namespaces=["bad name!"], database_url="postgres://localhost/none")


def outcome_of(fn):
    """Serves one step with handler ``fn`` (step ``noop``) through the real pull
    contract and returns its outcome as recorded (a dict: ``status``, and
    ``result`` or ``kind``/``message``/``retryable``)."""
    q = _tasker.BenchQueue()

    def serve():
        step = q.next(5.0)
        assert step is not None
        execute(step, {"h": fn}, asyncio.run)

    t = threading.Thread(target=serve)
    t.start()
    out = json.loads(q.outcome("h"))
    t.join(5)
    return out


def test_error_kinds_come_from_the_library():
    assert _tasker.KIND_HANDLER == "handler"
    assert _tasker.KIND_EXCEPTION == "exception"
    assert _tasker.KIND_RESULT == "result"
    assert _tasker.KIND_NO_HANDLER == "no_handler"


def test_handler_failures_are_kind_handler_retryable_or_not():
    def perm(ctx):
        raise tasker.PermanentError("never works")

    def retry(ctx):
        raise tasker.RetryableError("try later", retry_after=2)

    def boom(ctx):
        raise ValueError("bad value")

    out = outcome_of(perm)
    assert (out["status"], out["kind"], out["retryable"]) == ("failure", "handler", False)
    out = outcome_of(retry)
    assert (out["kind"], out["retryable"], out["retry_after_ms"]) == ("handler", True, 2000)
    out = outcome_of(boom)
    assert (out["kind"], out["retryable"], out["message"]) == ("exception", True, "ValueError: bad value")


@pytest.mark.parametrize(
    "value, path",
    [
        ({"total": 2**64}, "$.total"),
        ([1, [2, 3**50]], "$[1][1]"),
        ({"n": -(2**63) - 1}, "$.n"),
        ({"ratio": float("nan")}, "$.ratio"),
        ({"odd key": [float("inf")]}, '$["odd key"][0]'),
        ({"x": -float("inf")}, "$.x"),
        ({"s": "a\x00b"}, "$.s"),
        ({1: "a", "1": "b"}, '$["1"]'),
    ],
)
def test_results_json_cannot_carry_exactly_are_refused_naming_step_and_path(value, path):
    out = outcome_of(lambda ctx: value)
    assert (out["status"], out["kind"], out["retryable"]) == ("failure", "result", False), out
    assert "step 'noop'" in out["message"] and f"at {path}:" in out["message"], out["message"]


def test_unserializable_results_name_the_path():
    out = outcome_of(lambda ctx: {"a": [1, {"b": {1, 2}}]})
    assert (out["kind"], out["retryable"]) == ("result", False)
    assert "step 'noop'" in out["message"] and "at $.a[1].b:" in out["message"], out["message"]
    assert "not JSON-serializable" in out["message"]


def test_results_within_range_come_back_exactly():
    value = {
        "edges": [2**64 - 1, -(2**63), 2**63, 0, -1],
        "floats": [0.1, 1e308, 5e-324, -2.5, 0.9627240348720673, 2.7715077941825975e-163],
        "text": "é\u2028\U0001F600",
    }
    out = outcome_of(lambda ctx: value)
    assert out == {"status": "success", "result": value}
    assert all(type(x) is int for x in out["result"]["edges"])


def test_random_doubles_come_back_bit_for_bit():
    rng = random.Random(7)
    values = [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(3000)]
    values = [v for v in values if math.isfinite(v)] + [rng.random() for _ in range(3000)]
    out = outcome_of(lambda ctx: values)
    assert out["status"] == "success"
    assert [struct.pack("<d", v) for v in out["result"]] == [struct.pack("<d", v) for v in values]
