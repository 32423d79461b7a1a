"""Integration tests against a real PostgreSQL: Python handlers serve real
tasks through a worker that also orchestrates; each test has its own database."""

from __future__ import annotations

import asyncio
import datetime
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import tasker

from conftest import TEST_CONFIG

NS = "pytest"

LINEAR = """
namespace: pytest
name: linear
version: 1.0.0
steps:
  - name: a
    handler: { name: math.compute, config: { op: square } }
  - name: b
    handler: { name: math.compute, config: { op: add, operand: 1 } }
    depends_on: [a]
  - name: c
    handler: { name: math.compute, config: { op: multiply, operand: 2 } }
    depends_on: [b]
  - name: d
    handler: { name: math.compute, config: { op: square } }
    depends_on: [c]
"""

DIAMOND = """
namespace: pytest
name: diamond
version: 1.0.0
steps:
  - name: start
    handler: { name: math.compute, config: { op: square } }
  - name: left
    handler: { name: {left}, config: { op: add, operand: 1 } }
    depends_on: [start]
  - name: right
    handler: { name: {right}, config: { op: multiply, operand: 2 } }
    depends_on: [start]
  - name: join
    handler: { name: math.compute, config: { op: square } }
    depends_on: [left, right]
"""


def diamond(left="math.compute", right="math.compute", name="diamond"):
    return DIAMOND.replace("{left}", left).replace("{right}", right).replace("name: diamond", f"name: {name}")


def single(handler, name, retry="{ max_attempts: 3, backoff: none }"):
    return textwrap.dedent(
        f"""
        namespace: pytest
        name: {name}
        version: 1.0.0
        steps:
          - name: only
            handler: {{ name: {handler} }}
            retry: {retry}
        """
    )


def compute(ctx: tasker.StepContext):
    """Applies the step's op to its parents' results (or the task's value)."""
    values = list(ctx.parent_results.values()) or [ctx.input["value"]]
    x = sum(values)
    op = ctx.config["op"]
    if op == "square":
        return x * x
    if op == "add":
        return x + ctx.config["operand"]
    if op == "multiply":
        return x * ctx.config["operand"]
    raise tasker.PermanentError(f"unknown op {op}")


async def compute_async(ctx: tasker.StepContext):
    await asyncio.sleep(0.001)
    return compute(ctx)


class ComputeHandler(tasker.StepHandler):
    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def call(self, context):
        with self.lock:
            self.calls += 1
        return compute(context)


def results(client, task_id):
    return client.step_results(task_id)


def test_linear_task_completes_with_python_handlers(client, make_worker):
    make_worker({"math.compute": compute})
    assert client.register_template(LINEAR) == "pytest/linear/1.0.0"
    task_id = client.create_task(NS, "linear", {"value": 3})
    assert client.wait(task_id, timeout=30) == "complete"
    assert results(client, task_id) == {"a": 9, "b": 10, "c": 20, "d": 400}
    task = client.get_task(task_id)
    assert task["state"] == "complete"
    assert all(s["attempts"] == 1 for s in task["steps"])


def test_diamond_task_with_step_handler_class(client, make_worker):
    h = ComputeHandler()
    make_worker({"math.compute": h})
    client.register_template(diamond())
    task_id = client.create_task(NS, "diamond", {"value": 3})
    assert client.wait(task_id, timeout=30) == "complete"
    assert results(client, task_id) == {"start": 9, "left": 10, "right": 18, "join": 784}
    assert h.calls == 4


def test_async_handlers_on_threads(client, make_worker):
    make_worker({"math.compute": compute_async})
    client.register_template(diamond())
    task_id = client.create_task(NS, "diamond", {"value": 2})
    assert client.wait(task_id, timeout=30) == "complete"
    assert results(client, task_id)["join"] == (5 + 8) ** 2


def test_run_async_mode_mixes_sync_and_async_handlers(client, database_url):
    client.register_template(diamond(left="math.async", name="diamond_async"))
    worker = tasker.Worker(
        namespaces=[NS],
        config=TEST_CONFIG,
        database_url=database_url,
        threads=4,
        orchestrate=True,
        handlers={"math.compute": compute, "math.async": compute_async},
    )

    async def main():
        serving = asyncio.ensure_future(worker.run_async())
        loop = asyncio.get_running_loop()
        task_id = await loop.run_in_executor(None, client.create_task, NS, "diamond_async", {"value": 3})
        state = await loop.run_in_executor(None, client.wait, task_id, 30)
        worker.request_stop()
        await asyncio.wait_for(serving, 30)
        return task_id, state

    task_id, state = asyncio.run(main())
    assert state == "complete"
    assert results(client, task_id) == {"start": 9, "left": 10, "right": 18, "join": 784}
    assert not worker.running


def test_exception_then_success_is_retried(client, make_worker):
    calls = []

    def flaky(ctx):
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("database hiccup")
        return {"attempt": ctx.attempt}

    make_worker({"flaky": flaky})
    client.register_template(single("flaky", "flaky"))
    task_id = client.create_task(NS, "flaky", {})
    assert client.wait(task_id, timeout=30) == "complete"
    (step,) = client.get_task(task_id)["steps"]
    assert step["attempts"] == 2
    assert step["result"] == {"attempt": 2}
    assert calls == [1, 2]


def test_retryable_error_with_retry_after(client, make_worker):
    seen = []

    def later(ctx):
        seen.append(time.monotonic())
        if ctx.attempt == 1:
            raise tasker.RetryableError("not yet", retry_after=0.3)
        return "done"

    make_worker({"later": later})
    client.register_template(single("later", "later"))
    task_id = client.create_task(NS, "later", {})
    assert client.wait(task_id, timeout=30) == "complete"
    assert len(seen) == 2 and seen[1] - seen[0] >= 0.25


def test_permanent_error_is_not_retried(client, make_worker):
    calls = []

    def broken(ctx):
        calls.append(ctx.attempt)
        raise tasker.PermanentError("the card was declined")

    make_worker({"broken": broken})
    client.register_template(single("broken", "broken"))
    task_id = client.create_task(NS, "broken", {})
    state = client.wait(task_id, timeout=30)
    assert state in ("error", "blocked_by_failures")
    (step,) = client.get_task(task_id)["steps"]
    assert step["state"] == "error"
    assert step["attempts"] == 1
    assert "the card was declined" in str(step["last_error"])
    assert calls == [1]


def test_other_exceptions_record_type_and_message(client, make_worker):
    def bad(ctx):
        raise KeyError("missing_field")

    make_worker({"bad": bad})
    client.register_template(single("bad", "bad", retry="{ max_attempts: 2, backoff: none }"))
    task_id = client.create_task(NS, "bad", {})
    assert client.wait(task_id, timeout=30) in ("error", "blocked_by_failures")
    (step,) = client.get_task(task_id)["steps"]
    assert step["attempts"] == 2
    assert "KeyError" in str(step["last_error"]) and "missing_field" in str(step["last_error"])


def test_handlers_overlap_on_several_threads(client, make_worker):
    # left and right each wait for the other: only possible if they run at once.
    barrier = threading.Barrier(2, timeout=10)
    threads_seen = set()

    def meet(ctx):
        threads_seen.add(threading.get_ident())
        barrier.wait()
        return compute(ctx)

    make_worker({"math.compute": compute, "meet": meet}, threads=2)
    client.register_template(diamond(left="meet", right="meet", name="meet"))
    task_id = client.create_task(NS, "meet", {"value": 3})
    assert client.wait(task_id, timeout=30) == "complete"
    assert results(client, task_id)["join"] == 784
    assert len(threads_seen) == 2
    assert all(s["attempts"] == 1 for s in client.get_task(task_id)["steps"])


def test_many_tasks_at_once(client, make_worker):
    make_worker({"math.compute": compute}, threads=4)
    client.register_template(diamond())
    ids = [client.create_task(NS, "diamond", {"value": v}) for v in range(10)]
    for v, task_id in zip(range(10), ids):
        assert client.wait(task_id, timeout=60) == "complete"
        assert results(client, task_id)["join"] == (v * v + 1 + v * v * 2) ** 2


def test_tasks_created_in_one_batch_run_and_a_refused_one_creates_none(
    client, make_worker, database_url
):
    client.register_template(diamond())
    bad = [{"namespace": NS, "name": "diamond", "context": {"value": 1}},
           {"namespace": NS, "name": "no_such_template"}]
    with pytest.raises(tasker.NotFoundError, match=r"tasks\[1\]"):
        client.create_tasks(bad)
    with pytest.raises(tasker.TaskerError, match=r"tasks\[0\]: unknown field"):
        client.create_tasks([{"namespace": NS, "name": "diamond", "colour": "red"}])
    count = subprocess.run(
        ["psql", database_url, "-tAc", "SELECT count(*) FROM tasker.tasks"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    assert count == "0", "a refused batch creates nothing"
    make_worker({"math.compute": compute}, threads=4)
    ids = client.create_tasks(
        [{"namespace": NS, "name": "diamond", "context": {"value": v}} for v in range(5)]
        + [{"namespace": NS, "name": "diamond", "context": {"value": 9}, "idempotency_key": "b1"}] * 2
    )
    assert len(ids) == 7 and ids[5] == ids[6] and len(set(ids)) == 6
    for v, task_id in zip(list(range(5)) + [9], ids):
        assert client.wait(task_id, timeout=60) == "complete"
        assert results(client, task_id)["join"] == (v * v + 1 + v * v * 2) ** 2


def test_a_batch_task_with_a_delayed_start_runs_no_step_before_it(client, make_worker):
    client.register_template(diamond())
    make_worker({"math.compute": compute}, threads=2)
    with pytest.raises(ValueError, match="timezone-aware"):
        client.create_tasks([{"namespace": NS, "name": "diamond", "run_at": datetime.datetime.now()}])
    with pytest.raises(tasker.TaskerError, match=r"tasks\[0\]\.delay_seconds"):
        client.create_tasks([{"namespace": NS, "name": "diamond", "delay_seconds": -1}])
    run_at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    delayed, at_once = client.create_tasks([
        {"namespace": NS, "name": "diamond", "context": {"value": 2}, "run_at": run_at},
        {"namespace": NS, "name": "diamond", "context": {"value": 3}},
    ])
    assert client.wait(at_once, timeout=30) == "complete"
    assert client.wait(delayed, timeout=30) == "complete"
    task = client.get_task(delayed)
    assert datetime.datetime.fromisoformat(task["run_at"].replace("Z", "+00:00")) == run_at
    first_start = min(datetime.datetime.fromisoformat(s["started_at"].replace("Z", "+00:00"))
                      for s in task["steps"])
    assert first_start >= run_at
    assert "run_at" not in client.get_task(at_once)
    one = client.create_task(NS, "diamond", {"value": 4}, delay_seconds=1)
    assert client.wait(one, timeout=30) == "complete"
    assert client.get_task(one)["run_at"] is not None


def test_client_errors(client):
    client.register_template(LINEAR)
    task_id = client.create_task(NS, "linear", {"value": 1})
    with pytest.raises(tasker.TaskTimeoutError) as err:
        client.wait(task_id, timeout=0.2)  # nobody serves the namespace
    assert isinstance(err.value, tasker.TaskerError)
    with pytest.raises(tasker.NotFoundError):
        client.create_task(NS, "no_such_template", {})
    with pytest.raises(tasker.TaskerError, match="not a UUID"):
        client.get_task("nope")
    with pytest.raises(tasker.TaskerError):
        client.register_template("steps: [")
    again = client.create_task(NS, "linear", {"value": 1}, idempotency_key="k1")
    assert client.create_task(NS, "linear", {"value": 2}, idempotency_key="k1") == again


def test_stop_lets_in_flight_steps_finish(client, make_worker):
    started = threading.Event()

    def slow(ctx):
        started.set()
        time.sleep(1.0)
        return "finished"

    w = make_worker({"slow": slow})
    client.register_template(single("slow", "slow"))
    task_id = client.create_task(NS, "slow", {})
    assert started.wait(20)
    w.stop()
    assert not w.running
    # The outcome was reported before stop returned: a new orchestrator
    # completes the task without running the step again.
    make_worker({"slow": slow})
    assert client.wait(task_id, timeout=30) == "complete"
    (step,) = client.get_task(task_id)["steps"]
    assert step["attempts"] == 1 and step["result"] == "finished"


def test_sigterm_stops_run_cleanly(client, database_url, make_worker, tmp_path):
    """``Worker.run()`` in a child process: SIGTERM mid-step, the step still
    completes, and the process exits 0."""
    client.register_template(single("sleepy", "sleepy"))
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time, tasker

            @tasker.handler("sleepy")
            def sleepy(ctx):
                print("started", flush=True)
                time.sleep(1.0)
                return "slept"

            tasker.Worker(namespaces=["pytest"], database_url={database_url!r},
                          config={{"worker": {{"shutdown_grace_seconds": 10}}}},
                          threads=2, orchestrate=True).run()
            print("stopped", flush=True)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        task_id = client.create_task(NS, "sleepy", {})
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "stopped" in out
    # The step finished and its outcome was reported before the process
    # exited; an orchestrator records it without running the step again.
    make_worker({"sleepy": lambda ctx: "ran again"})
    assert client.wait(task_id, timeout=30) == "complete"
    assert client.get_task(task_id)["steps"][0]["attempts"] == 1
    assert results(client, task_id) == {"only": "slept"}


def test_step_timeout_then_retry_and_late_outcome_is_discarded(client, make_worker):
    """Attempt 1 outlives the step's timeout: the worker fails it as timed out
    (and discards its late outcome without hurting the thread); attempt 2 succeeds."""
    cancelled_seen = []

    def slow_once(ctx):
        if ctx.attempt == 1:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not ctx.is_cancelled():
                time.sleep(0.05)
            cancelled_seen.append(ctx.is_cancelled())
            return "too late"
        return "in time"

    make_worker({"slow_once": slow_once}, threads=1)
    template = single("slow_once", "slow_once").replace(
        "    retry:", "    timeout_seconds: 1\n    retry:"
    )
    client.register_template(template)
    task_id = client.create_task(NS, "slow_once", {})
    assert client.wait(task_id, timeout=30) == "complete"
    (step,) = client.get_task(task_id)["steps"]
    assert step["attempts"] == 2 and step["result"] == "in time"
    assert cancelled_seen == [True]


def test_stop_from_inside_a_handler(client, database_url):
    client.register_template(single("stopper", "stopper"))
    holder = {}

    def stopper(ctx):
        holder["worker"].stop()  # must not deadlock
        return "stopping"

    w = tasker.Worker(namespaces=[NS], config=TEST_CONFIG, database_url=database_url,
                      threads=2, orchestrate=True, handlers={"stopper": stopper})
    holder["worker"] = w
    w.start()
    client.create_task(NS, "stopper", {})
    deadline = time.monotonic() + 30
    while w.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not w.running
    w.stop()  # the owner's stop still returns


def test_start_failure_is_a_clear_error_and_stop_returns():
    w = tasker.Worker(namespaces=[NS], database_url="postgres://postgres@127.0.0.1:1/nowhere",
                      config={"database": {"acquire_timeout_ms": 500}}, handlers={"x": lambda ctx: 1})
    with pytest.raises(tasker.TaskerError, match="database"):
        w.start()
    w.stop()
    assert not w.running
    with pytest.raises(tasker.TaskerError, match="started already"):
        w.start()


FIDELITY = """
namespace: pytest
name: fidelity
version: 1.0.0
steps:
  - name: produce
    handler: { name: fidelity.produce }
  - name: consume
    handler: { name: fidelity.consume }
    depends_on: [produce]
  - name: huge
    handler: { name: fidelity.huge }
    retry: { max_attempts: 3, backoff: none }
  - name: broken
    handler: { name: fidelity.broken }
    retry: { max_attempts: 3, backoff: none }
"""


def test_values_are_carried_exactly_or_refused(client, make_worker):
    """Integers up to 64 bits and every double go through a task's input, a
    result and a parent result unchanged; 2**64, 3**50, -2**63-1 and NaN fail
    their step with kind ``result`` naming the path; a permanent failure is
    kind ``handler``, like in every runtime."""
    rng = random.Random(11)
    floats = [rng.random() for _ in range(200)] + [0.9627240348720673, 2.7715077941825975e-163, 1e308, 5e-324]
    edges = [2**64 - 1, -(2**63), 2**63 + 1]
    seen = {}

    def produce(ctx):
        seen["input"] = ctx.input
        return {"edges": ctx.input["edges"], "floats": ctx.input["floats"]}

    def consume(ctx):
        seen["parent"] = ctx.parent("produce")
        return "ok"

    huge_values = iter([{"n": 2**64}, {"n": 3**50}, {"n": -(2**63) - 1}, {"n": [float("nan")]}])

    def huge(ctx):
        return next(huge_values)

    def broken(ctx):
        raise tasker.PermanentError("input rejected")

    make_worker(
        {"fidelity.produce": produce, "fidelity.consume": consume, "fidelity.huge": huge, "fidelity.broken": broken}
    )
    client.register_template(FIDELITY)
    given = {"edges": edges, "floats": floats}
    messages = []
    for _ in range(4):
        task_id = client.create_task(NS, "fidelity", given)
        assert client.wait(task_id, timeout=30) in ("error", "blocked_by_failures")
        steps = {s["name"]: s for s in client.get_task(task_id)["steps"]}
        assert steps["produce"]["result"] == given and steps["consume"]["result"] == "ok"
        assert seen["input"] == given and seen["parent"] == given
        assert all(type(x) is int for x in seen["input"]["edges"] + seen["parent"]["edges"])
        huge_step = steps["huge"]
        assert (huge_step["state"], huge_step["attempts"]) == ("error", 1)
        assert huge_step["last_error"]["kind"] == "result" and not huge_step["last_error"]["retryable"]
        messages.append(huge_step["last_error"]["message"])
        assert steps["broken"]["last_error"]["kind"] == "handler"
        assert (steps["broken"]["attempts"], steps["broken"]["last_error"]["retryable"]) == (1, False)
    assert all("step 'huge'" in m for m in messages)
    assert "at $.n:" in messages[0] and str(2**64) in messages[0]
    assert str(3**50) in messages[1] and str(-(2**63) - 1) in messages[2]
    assert "at $.n[0]:" in messages[3] and "NaN" in messages[3]


def test_a_task_input_json_cannot_carry_exactly_is_refused(client):
    client.register_template(LINEAR)
    with pytest.raises(tasker.TaskerError, match=r"at \$\.value: the integer 18446744073709551616"):
        client.create_task(NS, "linear", {"value": 2**64})
    with pytest.raises(tasker.TaskerError, match=r"at \$\.value\[0\]: NaN"):
        client.create_task(NS, "linear", {"value": [float("nan")]})
