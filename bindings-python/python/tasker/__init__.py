"""tasker: Python handlers and a client for the tasker workflow orchestrator.

Handlers are plain functions (or ``async def`` functions, or ``StepHandler``
subclasses) registered under the handler names that templates use::

    import tasker

    @tasker.handler("math.compute")
    def compute(ctx: tasker.StepContext):
        return ctx.input["value"] * 2

    tasker.Worker(namespaces=["demo"]).run()

A ``Worker`` serves steps through libtasker's pull contract on Python threads
(or on an asyncio event loop with ``await worker.run_async()``), releasing the
GIL while it waits. A ``Client`` registers templates, creates tasks and waits
for them. See the README for the whole story.
"""

from ._tasker import (
    NotFoundError,
    StepGoneError,
    TaskerError,
    TaskTimeoutError,
    WorkerStoppedError,
    abi_version,
)
from ._errors import PermanentError, RetryableError
from ._context import StepContext
from ._registry import StepHandler, handler, handlers, register, unregister
from ._worker import Worker
from ._client import Client

__all__ = [
    "Client",
    "NotFoundError",
    "PermanentError",
    "RetryableError",
    "StepContext",
    "StepGoneError",
    "StepHandler",
    "TaskTimeoutError",
    "TaskerError",
    "Worker",
    "WorkerStoppedError",
    "abi_version",
    "handler",
    "handlers",
    "register",
    "unregister",
]

__version__ = "0.1.0"
