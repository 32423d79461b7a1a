"""Shared fixtures: a fresh PostgreSQL database per test that needs one.

The server comes from ``TASKER_TEST_PG_URL`` (default
``postgres://postgres@127.0.0.1:5432/postgres``); the user must be allowed to
CREATE DATABASE. Each database is dropped after its test.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

import tasker

ADMIN_URL = os.environ.get("TASKER_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")

# Quick timings for tests: short grace, fast retry sweeps.
TEST_CONFIG = {
    "worker": {"shutdown_grace_seconds": 5},
    "orchestration": {"retry_sweep_interval_ms": 100},
}


def _psql(sql: str) -> None:
    subprocess.run(["psql", ADMIN_URL, "-qAtc", sql], check=True, capture_output=True, text=True)


@pytest.fixture
def database_url():
    name = f"tasker_py_{uuid.uuid4().hex[:12]}"
    _psql(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def client(database_url):
    return tasker.Client(config=TEST_CONFIG, database_url=database_url)


@pytest.fixture
def make_worker(database_url):
    """Builds started workers (orchestrating, on the test database) and stops
    them after the test."""
    workers = []

    def make(handlers, namespaces=("pytest",), threads=4, start=True, **kw):
        w = tasker.Worker(
            namespaces=list(namespaces),
            config=kw.pop("config", TEST_CONFIG),
            database_url=database_url,
            threads=threads,
            orchestrate=kw.pop("orchestrate", True),
            handlers=handlers,
            **kw,
        )
        workers.append(w)
        if start:
            w.start()
        return w

    yield make
    for w in workers:
        w.stop()
