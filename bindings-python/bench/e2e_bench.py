"""End to end with the database: the same worker (orchestrating in process)
serving no-op steps with a Python handler, then with a Rust one.

- latency: sequential 4-step linear tasks, create -> complete (ms per task);
- throughput: many diamond tasks (4 steps each) created at once, steps/s.

Each backend gets a fresh database on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/postgres). The script builds the package
with the extension's `bench` feature first (release, into its own directory:
see `_bench_build.py`; the Rust baseline's handler exists only in that build).

    python bindings-python/bench/e2e_bench.py [linear_tasks] [diamond_tasks]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid

from _bench_build import use_bench_build

use_bench_build()

import tasker  # noqa: E402

ADMIN = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")

LINEAR = """
namespace: bench
name: linear
version: 1.0.0
steps:
  - { name: a, handler: { name: bench.noop } }
  - { name: b, handler: { name: bench.noop }, depends_on: [a] }
  - { name: c, handler: { name: bench.noop }, depends_on: [b] }
  - { name: d, handler: { name: bench.noop }, depends_on: [c] }
"""
DIAMOND = """
namespace: bench
name: diamond
version: 1.0.0
steps:
  - { name: start, handler: { name: bench.noop } }
  - { name: left, handler: { name: bench.noop }, depends_on: [start] }
  - { name: right, handler: { name: bench.noop }, depends_on: [start] }
  - { name: join, handler: { name: bench.noop }, depends_on: [left, right] }
"""


def noop(ctx):
    return {}


def psql(sql: str) -> None:
    subprocess.run(["psql", ADMIN, "-qAtc", sql], check=True, capture_output=True)


def run(backend: str, n_linear: int, n_diamond: int) -> dict:
    db = f"tasker_py_bench_{uuid.uuid4().hex[:8]}"
    psql(f'CREATE DATABASE "{db}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + db
    try:
        client = tasker.Client(database_url=url)
        client.register_template(LINEAR)
        client.register_template(DIAMOND)
        handlers = {"bench.noop": noop} if backend == "python" else {"bench.unused": noop}
        worker = tasker.Worker(namespaces=["bench"], database_url=url, threads=8, orchestrate=True,
                               config={"worker": {"shutdown_grace_seconds": 5}}, handlers=handlers)
        if backend == "rust":
            worker._native.register_rust_noop("bench.noop")
        with worker:
            for _ in range(5):  # warm up
                client.wait(client.create_task("bench", "linear", {}), timeout=30)
            lat = []
            for _ in range(n_linear):
                t0 = time.perf_counter()
                state = client.wait(client.create_task("bench", "linear", {}), timeout=30)
                lat.append((time.perf_counter() - t0) * 1000)
                assert state == "complete", state
            t0 = time.perf_counter()
            ids = [client.create_task("bench", "diamond", {}) for _ in range(n_diamond)]
            for i in ids:
                assert client.wait(i, timeout=120) == "complete"
            elapsed = time.perf_counter() - t0
        lat.sort()
        return {
            "backend": backend,
            "linear_median_ms": statistics.median(lat),
            "linear_p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "diamond_steps_per_s": 4 * n_diamond / elapsed,
        }
    finally:
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def main() -> None:
    n_linear = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    n_diamond = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    rows = [run(b, n_linear, n_diamond) for b in ("python", "rust", "python", "rust")]
    print(f"{'handler':8} {'linear task median ms':>22} {'p99 ms':>8} {'diamond steps/s':>16}")
    for r in rows:
        print(f"{r['backend']:8} {r['linear_median_ms']:22.1f} {r['linear_p99_ms']:8.1f} {r['diamond_steps_per_s']:16.0f}")


if __name__ == "__main__":
    main()
