"""The package `tasker` with its benchmark hooks, for the scripts in this folder.

An installed package carries no benchmark code: `_tasker.bench_rust_dispatch`
and `Worker.register_rust_noop` exist only in a build with the extension's
cargo feature `bench`. `use_bench_build()` builds the package from this
checkout with that feature (pip and maturin, release, cargo's output in
$CARGO_TARGET_DIR, else target/) into a directory of its own,
<target>/python-bench, and puts that first on `sys.path`: the current
environment's packages stay as they are. TASKER_BENCH_NO_BUILD=1 skips the
build and uses the last one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def use_bench_build() -> None:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve()
    dest = target / "python-bench"
    if not os.environ.get("TASKER_BENCH_NO_BUILD"):
        print(f"building tasker with --features bench into {dest} ...", file=sys.stderr, flush=True)
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
                "--target", str(dest),
                "--config-settings=build-args=--features bench",
                str(ROOT / "bindings-python"),
            ],
            check=True,
            env=dict(os.environ, CARGO_TARGET_DIR=str(target)),
        )
    sys.path.insert(0, str(dest))
    from tasker import _tasker

    if not hasattr(_tasker, "bench_rust_dispatch"):
        raise SystemExit(f"{_tasker.__file__} was built without the `bench` feature")
