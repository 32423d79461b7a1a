"""Handler registration: the ``@handler`` decorator and ``StepHandler``."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Optional, TypeVar, Union

from ._context import StepContext

T = TypeVar("T")

_lock = threading.Lock()
_registry: Dict[str, Callable[[StepContext], Any]] = {}


class StepHandler:
    """Base class for handlers that keep state or share setup between steps.

    Subclass it and implement ``call(self, context)`` (plain or ``async def``);
    the return value becomes the step's result. Register an instance (or the
    class, which is then created once with no arguments) with ``@handler``,
    ``register`` or ``Worker(handlers=...)``. One instance serves every step of
    its name, possibly on several threads at once.
    """

    def call(self, context: StepContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement call(self, context)")

    def __call__(self, context: StepContext) -> Any:
        return self.call(context)


HandlerLike = Union[Callable[[StepContext], Any], StepHandler, type]


def as_callable(obj: HandlerLike) -> Callable[[StepContext], Any]:
    """The function that serves a step for a function, a ``StepHandler``
    instance or a ``StepHandler`` subclass."""
    if isinstance(obj, type):
        if not issubclass(obj, StepHandler):
            raise TypeError(f"{obj.__name__} is a class but not a tasker.StepHandler subclass")
        return obj().call
    if isinstance(obj, StepHandler):
        return obj.call
    if not callable(obj):
        raise TypeError(f"a handler must be callable or a StepHandler, got {type(obj).__name__}")
    return obj


def register(name: str, obj: HandlerLike) -> None:
    """Registers ``obj`` as the handler ``name`` (replacing any before it)."""
    if not isinstance(name, str) or not name:
        raise ValueError("a handler name must be a non-empty string")
    fn = as_callable(obj)
    with _lock:
        _registry[name] = fn


def unregister(name: str) -> None:
    """Forgets handler ``name`` (no error when unknown)."""
    with _lock:
        _registry.pop(name, None)


def handler(name: str) -> Callable[[T], T]:
    """Decorator: registers a function (sync or ``async def``) or a
    ``StepHandler`` subclass as handler ``name``; returns it unchanged::

        @tasker.handler("orders.charge")
        def charge(ctx):
            return {"charged": ctx.input["amount"]}
    """

    def decorate(obj: T) -> T:
        register(name, obj)  # type: ignore[arg-type]
        return obj

    return decorate


def handlers() -> Dict[str, Callable[[StepContext], Any]]:
    """A copy of the handlers registered so far, by name."""
    with _lock:
        return dict(_registry)


def resolve(given: Optional[Any]) -> Dict[str, Callable[[StepContext], Any]]:
    """The handlers a worker serves: ``given`` (a dict name -> handler) or, when
    ``None``, everything registered with ``@handler``/``register``."""
    if given is None:
        return handlers()
    if not isinstance(given, dict):
        raise TypeError("handlers must be a dict of handler name -> function or StepHandler")
    return {name: as_callable(obj) for name, obj in given.items()}
