"""What a handler receives."""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional

from ._logs import step_logger


class StepContext:
    """One attempt of one step, as a handler sees it.

    Attributes:
        task_id, step_id: the ids, as strings (UUIDs).
        namespace: the task's namespace.
        template: the template key, ``namespace/name/version``.
        step_name: the step's name in the template.
        handler: the handler name the step asked for.
        attempt: 1 for the first attempt.
        max_attempts: the step's retry limit.
        input: the task's input (the ``context`` it was created with).
        parent_results: the results of the step's parents, by step name.
        config: the handler configuration from the template (a dict, may be empty).
        timeout_seconds: the step's timeout.
        traceparent: the attempt's W3C trace context
            (``00-<trace id>-<span id>-<flags>``), set for every claimed
            step (``None`` only for a context made outside a worker); pass it on as the ``traceparent`` header of calls
            the handler makes, or use it as the parent of its own spans.
        logger: a ``logging`` logger whose lines go to this attempt's log
            (``tasker step logs``) with their levels, from any thread; plain
            ``logging`` calls in the handler's thread are captured too.
    """

    __slots__ = (
        "task_id",
        "step_id",
        "namespace",
        "template",
        "step_name",
        "handler",
        "attempt",
        "max_attempts",
        "input",
        "parent_results",
        "config",
        "timeout_seconds",
        "traceparent",
        "_step",
        "_logger",
    )

    def __init__(self, data: Dict[str, Any], step: Any = None) -> None:
        self.task_id: str = data["task_id"]
        self.step_id: str = data["step_id"]
        self.namespace: str = data["namespace"]
        self.template: str = data["template"]
        self.step_name: str = data["step_name"]
        self.handler: str = data["handler"]
        self.attempt: int = data["attempt"]
        self.max_attempts: int = data["max_attempts"]
        self.input: Any = data.get("input")
        self.parent_results: Dict[str, Any] = data.get("parent_results") or {}
        config = data.get("config")
        self.config: Dict[str, Any] = config if isinstance(config, dict) else {}
        self.timeout_seconds: int = data.get("timeout_seconds", 0)
        traceparent = data.get("traceparent")
        self.traceparent: Optional[str] = traceparent if isinstance(traceparent, str) and traceparent else None
        self._step = step
        self._logger: Optional[logging.LoggerAdapter] = None

    @classmethod
    def from_json(cls, text: str, step: Any = None) -> "StepContext":
        return cls(json.loads(text), step)

    def is_cancelled(self) -> bool:
        """True once the worker no longer wants this step's outcome (its task
        was cancelled, it timed out, or the worker is stopping): a long handler
        should check this and stop early."""
        return bool(self._step is not None and self._step.is_cancelled())

    @property
    def trace_id(self) -> Optional[str]:
        """The trace id of ``traceparent`` (32 hex digits), or ``None``."""
        parts = self.traceparent.split("-") if self.traceparent else []
        return parts[1] if len(parts) >= 4 and len(parts[1]) == 32 else None

    @property
    def logger(self) -> logging.LoggerAdapter:
        """A ``logging`` logger (``tasker.step``) writing to this attempt's log."""
        if self._logger is None:
            self._logger = step_logger(self._step)
        return self._logger

    def parent(self, name: str, default: Optional[Any] = None) -> Any:
        """The result of parent step ``name`` (``default`` when it has none)."""
        return self.parent_results.get(name, default)

    def __repr__(self) -> str:
        return (
            f"StepContext(task_id={self.task_id!r}, step_name={self.step_name!r}, "
            f"handler={self.handler!r}, attempt={self.attempt})"
        )
