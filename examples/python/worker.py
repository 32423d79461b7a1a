"""A long-running worker for the `python_demo` namespace. Stop it with Ctrl-C
or SIGTERM: steps in flight finish first.

    python examples/python/worker.py            # DATABASE_URL, else the local default database
    python examples/python/worker.py --orchestrate   # also orchestrate (no `tasker server` running)
"""

import logging
import sys

import tasker

import handlers  # noqa: F401  (registers the handlers)

logging.basicConfig(level=logging.INFO)
tasker.Worker(namespaces=["python_demo"], threads=4, orchestrate="--orchestrate" in sys.argv).run()
