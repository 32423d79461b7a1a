"""Per-step dispatch overhead of a no-op Python handler versus a Rust one.

In process, no database: a Rust thread queues a step through libtasker's pull
contract (`PullHandler::call`) and waits for its outcome; the step is taken
with `PullQueue::next` and completed by

- python: a Python thread running the package's real dispatch path
  (`tasker._worker.execute`: context JSON -> StepContext, handler lookup, the
  no-op handler, result -> JSON, `Step.succeed`), GIL released while waiting;
- rust: a Rust thread with a no-op Rust handler.

One step at a time, so each figure is a full round trip (queue, wake the
serving thread, run, complete, wake the caller). The script builds the
package with the extension's `bench` feature first (release, into its own
directory: see `_bench_build.py`; the installed package has no benchmark hooks).

    python bindings-python/bench/dispatch_bench.py [steps]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading

from _bench_build import use_bench_build

use_bench_build()

from tasker import _tasker  # noqa: E402
from tasker._worker import execute  # noqa: E402


def noop(ctx):
    return {}


def summary(name: str, ns: list) -> dict:
    ns = sorted(ns)
    us = [x / 1000 for x in ns]
    p = lambda q: us[min(len(us) - 1, int(q * len(us)))]  # noqa: E731
    return {
        "name": name,
        "median_us": statistics.median(us),
        "p99_us": p(0.99),
        "mean_us": statistics.fmean(us),
        "steps_per_s": 1e6 / statistics.fmean(us),
    }


def python_round_trips(n: int) -> list:
    q = _tasker.BenchQueue()
    handlers = {"noop": noop}
    done = threading.Event()

    def serve():
        while not done.is_set():
            step = q.next(0.05)
            if step is not None:
                execute(step, handlers, asyncio.run)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        return q.run(n, "noop")
    finally:
        done.set()
        t.join()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    warm = max(n // 10, 100)
    python_round_trips(warm)
    _tasker.bench_rust_dispatch(warm)
    rows = []
    for _ in range(3):  # interleave to spread machine noise over both
        rows.append(summary("python", python_round_trips(n)))
        rows.append(summary("rust", _tasker.bench_rust_dispatch(n)))
    print(f"{'handler':8} {'median us':>10} {'p99 us':>10} {'mean us':>10} {'steps/s':>10}")
    for r in rows:
        print(f"{r['name']:8} {r['median_us']:10.1f} {r['p99_us']:10.1f} {r['mean_us']:10.1f} {r['steps_per_s']:10.0f}")
    py = statistics.median([r["median_us"] for r in rows if r["name"] == "python"])
    rs = statistics.median([r["median_us"] for r in rows if r["name"] == "rust"])
    py99 = statistics.median([r["p99_us"] for r in rows if r["name"] == "python"])
    rs99 = statistics.median([r["p99_us"] for r in rows if r["name"] == "rust"])
    print(f"python median {py:.1f} us (p99 {py99:.1f}), rust median {rs:.1f} us (p99 {rs99:.1f}); "
          f"Python dispatch overhead per step ~{py - rs:.1f} us (median)")


if __name__ == "__main__":
    main()
