"""Exceptions a handler raises to say how its attempt failed."""

from __future__ import annotations

import math
from typing import Optional


class RetryableError(Exception):
    """The attempt failed, and another one may succeed.

    ``retry_after`` is in **seconds** (an int or a float, e.g. ``0.5``): the
    earliest time to retry, overriding the template's backoff for this attempt.
    ``None`` keeps the template's retry policy. The step is retried while it has
    attempts left (``retry.max_attempts`` in the template).

    Any exception other than ``PermanentError`` is also a retryable failure; this
    one only adds ``retry_after`` and keeps the message as it is.
    """

    def __init__(self, message: str = "", retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            retry_after = float(retry_after)
            if not math.isfinite(retry_after) or retry_after < 0:
                raise ValueError(f"retry_after must be a number of seconds >= 0, got {retry_after!r}")
        self.message = str(message)
        self.retry_after = retry_after

    @property
    def retry_after_ms(self) -> Optional[int]:
        """``retry_after`` in whole milliseconds (rounded up), or ``None``."""
        if self.retry_after is None:
            return None
        return int(math.ceil(self.retry_after * 1000))


class PermanentError(Exception):
    """The attempt failed and retrying cannot help: the step fails now, with no
    further attempt, whatever its retry policy says."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = str(message)
