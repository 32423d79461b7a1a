"""Configuration given as a dict becomes TOML text for the library."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Mapping, Optional, Union

ConfigLike = Union[str, Mapping[str, Any], None]


def config_text(config: ConfigLike) -> Optional[str]:
    """``None``, TOML text, or a (nested) dict of configuration keys, e.g.
    ``{"worker": {"shutdown_grace_seconds": 5}}``, as TOML text."""
    if config is None or isinstance(config, str):
        return config
    if not isinstance(config, Mapping):
        raise TypeError("config must be TOML text, a dict, or None")
    lines: List[str] = []
    _table(config, [], lines)
    return "\n".join(lines) + "\n"


def _key(k: Any) -> str:
    if not isinstance(k, str) or not k:
        raise TypeError(f"configuration keys must be non-empty strings, got {k!r}")
    return json.dumps(k)


def _table(d: Mapping[str, Any], path: List[str], lines: List[str]) -> None:
    scalars: Dict[str, Any] = {k: v for k, v in d.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in d.items() if isinstance(v, Mapping)}
    if path and scalars:
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for k, v in scalars.items():
        if not path:
            raise TypeError(f"configuration key {k!r} must be inside a section, e.g. {{'worker': {{...}}}}")
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in tables.items():
        _table(v, path + [k], lines)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"configuration values must be finite, got {v!r}")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"configuration value {v!r} of type {type(v).__name__} has no TOML form")
