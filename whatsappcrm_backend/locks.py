"""A scheduled task must not run twice at once (two beats, a slow run overlapping the next).

`@single_run` takes a non-blocking Redis lock named after the task: an overlapping run is
skipped and says so (`{"skipped": True}`) instead of running beside the first.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django_redis import get_redis_connection

logger = logging.getLogger(__name__)


def single_run(name: str, timeout: int = 300) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`timeout` bounds how long a crashed holder can block the next run (lock expiry)."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            lock = get_redis_connection("default").lock(f"lock:{name}", timeout=timeout)
            if not lock.acquire(blocking=False):
                logger.info("%s skipped: a previous run still holds its lock", name)
                return {"skipped": True}
            try:
                return func(*args, **kwargs)
            finally:
                try:
                    lock.release()
                except Exception:  # noqa: BLE001 - expired or Redis gone: nothing to release
                    logger.warning("%s: lock already released or expired", name)

        return wrapper

    return decorator
