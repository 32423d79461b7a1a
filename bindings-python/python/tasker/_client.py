"""The client: templates, tasks, waiting."""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from . import _engine_log, _tasker
from ._config import ConfigLike, config_text


class Client:
    """A client over the database (no API server needed; an orchestrator must
    run somewhere — e.g. ``Worker(orchestrate=True)`` — for tasks to progress).

    ``config`` is TOML text or a dict laid over the built-in defaults;
    ``database_url`` wins over ``database.url``; with neither, ``DATABASE_URL``
    from the environment, else the local default database. Connecting creates
    the schema when it is missing. Methods block (without holding the GIL) and
    are thread-safe.
    """

    def __init__(self, config: ConfigLike = None, database_url: Optional[str] = None) -> None:
        _engine_log.start()  # the engine's lines through logging.getLogger("tasker")
        self._native = _tasker.Client(config_text(config), database_url)

    def register_template(self, yaml_text: str) -> str:
        """Registers a template given as YAML (or JSON) text; returns its key
        ``namespace/name/version``. The same definition again is a no-op."""
        return self._native.register_template(yaml_text)

    def register_template_file(self, path: Union[str, "os.PathLike[str]"]) -> str:
        """Registers the template in a YAML file; returns its key."""
        with open(path, encoding="utf-8") as f:
            return self.register_template(f.read())

    def create_task(
        self,
        namespace: str,
        name: str,
        context: Any = None,
        version: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        priority: int = 0,
        run_at: Optional[datetime.datetime] = None,
        delay_seconds: Optional[int] = None,
    ) -> str:
        """Creates a task from template ``namespace/name`` (highest version
        unless ``version``) with input ``context``; returns its id. With an
        ``idempotency_key`` already used in the namespace, returns that task.
        ``run_at`` (a timezone-aware datetime, at most a year ahead) or
        ``delay_seconds`` delays its start: no step runs before it."""
        if run_at is not None or delay_seconds is not None:
            task: Dict[str, Any] = {
                "namespace": namespace, "name": name,
                "context": {} if context is None else context,
                "version": version, "idempotency_key": idempotency_key, "priority": priority,
            }
            if run_at is not None:
                task["run_at"] = run_at
            if delay_seconds is not None:
                task["delay_seconds"] = delay_seconds
            return self.create_tasks([task])[0]
        task_id, _created = self._native.create_task(
            namespace,
            name,
            json.dumps({} if context is None else context),
            version,
            idempotency_key,
            priority,
        )
        return task_id

    def create_tasks(self, tasks: Iterable[Mapping[str, Any]]) -> List[str]:
        """Creates many tasks in one transaction: all of them, or none when
        one is refused (the error names it, ``tasks[i]: ...``); up to 1,000.
        Each task is a dict with ``namespace``, ``name`` and optionally
        ``context``, ``version``, ``idempotency_key``, ``priority``, and a
        delayed start: ``run_at`` (RFC 3339 text, at most a year ahead) or
        ``delay_seconds`` (no step runs before it). Returns
        their ids in order (a repeated idempotency key gives the earlier
        task's id). Several times faster per task than ``create_task``."""
        created = self._native.create_tasks(json.dumps([_with_rfc3339_run_at(t) for t in tasks]))
        return [task_id for task_id, _created in created]

    def get_task(self, task_id: str) -> Dict[str, Any]:
        """The task with ``state``, ``steps`` (each with ``name``, ``state``,
        ``attempts``, ``result``, ``last_error``, ...) and ``edges``."""
        return json.loads(self._native.get_task_json(str(task_id)))

    def wait(self, task_id: str, timeout: float = 60.0) -> str:
        """Waits until the task settles (``complete``, ``error``, ``cancelled``,
        ``resolved_manually`` or ``blocked_by_failures``) and returns that state.
        Raises ``TaskTimeoutError`` (naming the state) after ``timeout`` seconds."""
        return self._native.wait(str(task_id), float(timeout))

    def step_results(self, task_id: str) -> Dict[str, Any]:
        """The results of the task's steps, by step name (convenience)."""
        return {s["name"]: s.get("result") for s in self.get_task(task_id).get("steps", [])}


def _with_rfc3339_run_at(task: Mapping[str, Any]) -> Mapping[str, Any]:
    """The task with a ``datetime`` ``run_at`` as RFC 3339 text (JSON has no
    date type); a naive one is refused, since its time zone is unknown."""
    run_at = task.get("run_at") if isinstance(task, Mapping) else None
    if not isinstance(run_at, datetime.datetime):
        return task
    if run_at.tzinfo is None or run_at.utcoffset() is None:
        raise ValueError(
            "run_at must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))"
        )
    return {**task, "run_at": run_at.isoformat()}
