"""Runs the diamond example end to end in one process: registers the
template, starts a worker (which also orchestrates), creates a task, waits for
it and prints the step results.

    python examples/python/run_example.py [DATABASE_URL]

Without an argument: DATABASE_URL from the environment, else the local
default database.
"""

import os
import sys

import tasker

import handlers  # noqa: F401  (registers the handlers)

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else None
    client = tasker.Client(database_url=url)
    print("registered", client.register_template_file(os.path.join(HERE, "diamond.yaml")))
    with tasker.Worker(namespaces=["python_demo"], database_url=url, threads=2, orchestrate=True):
        task_id = client.create_task("python_demo", "diamond", {"value": 3})
        state = client.wait(task_id, timeout=60)
    results = client.step_results(task_id)
    print("task", task_id, state, results)
    expected = {"start": 9, "left": 10, "right": 18, "join": 784}
    if state != "complete" or results != expected:
        print("unexpected outcome; expected", expected, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
