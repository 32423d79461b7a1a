"""The order-pricing example's Python worker: the native step `subtotal`
(handler ``order.subtotal``) in pool ``python``.

    python examples/polyglot/worker.py

Needs the ``tasker`` package (``pip install ./bindings-python``; run.sh makes a
virtualenv). Database: ``DATABASE_URL``, else the local default database.
``POLYGLOT_WORKER_CONFIG`` may hold TOML laid over the built-in configuration
(e.g. ``[worker]\\nregistry_heartbeat_seconds = 1``). Stops on SIGINT/SIGTERM
after the steps in flight finish.
"""

import logging
import os

import tasker

POOL = "python"  # the template's `pool: python`


def _count(item: dict, key: str, index: int) -> int:
    value = item.get(key) if isinstance(item, dict) else None
    # bool is an int in Python; an order line's quantity is not.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise tasker.PermanentError(f"items[{index}].{key} must be a non-negative integer, got {value!r}")
    return value


@tasker.handler("order.subtotal")
def subtotal(ctx: tasker.StepContext) -> dict:
    """Σ qty × unit_cents over the order's lines, in integer cents."""
    items = ctx.input.get("items")
    if not isinstance(items, list) or not items:
        raise tasker.PermanentError("input `items` must be a non-empty list")
    cents = sum(_count(item, "qty", i) * _count(item, "unit_cents", i) for i, item in enumerate(items))
    # Into this attempt's log (`tasker step logs <task> subtotal`); plain
    # `logging.getLogger(__name__)` calls made here are captured too.
    ctx.logger.info("hello from python: %d lines, subtotal %d", len(items), cents)
    return {"value": cents, "lang": "python"}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="worker.py %(levelname)s %(message)s")
    config = os.environ.get("POLYGLOT_WORKER_CONFIG") or None
    print(f"worker.py: serving pool {POOL!r} (order.subtotal), pid {os.getpid()}", flush=True)
    tasker.Worker(pools=[POOL], config=config, threads=2).run()
    print("worker.py: stopped", flush=True)


if __name__ == "__main__":
    main()
