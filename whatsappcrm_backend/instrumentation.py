"""One decorator / context manager for services: duration, DB queries, Redis round trips.

    @instrumented("flow.process", warn_ms=200, error_ms=1000)
    def process_contact(...): ...

    with instrumented("webhook.ingest", warn_ms=100) as op:
        op.detail = f"events={n}"      # optional: ids for the log line

Over `warn_ms` it logs `SLOW name 123 ms queries=N redis=M` at WARNING, over `error_ms` at
ERROR (logger `whatsappcrm_backend.slow`). Every run feeds the console's metrics store
(count, slow count, duration and query-count histograms per name) through its in-process
buffer, written once a second by a background thread: the instrumented call itself makes no
extra Redis call (and a Redis outage cannot slow it down).

Queries are counted with `connection.execute_wrapper` on every configured database. Redis
round trips are counted by a thin wrapper on redis-py's `send_packed_command` (every command
and every pipeline goes through it once), active only inside an instrumented block of the
current context (contextvars), so it costs one lookup elsewhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from typing import Any

from django.db import connections

logger = logging.getLogger("whatsappcrm_backend.slow")

_redis_counter: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "ops_redis_counter", default=None
)
_patched = False


def _install_redis_counter() -> None:
    """Wrap redis-py's single send point once per process."""
    global _patched
    if _patched:
        return
    from redis.connection import AbstractConnection

    original = AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> Any:
        counter = _redis_counter.get()
        if counter is not None:
            counter[0] += 1
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    _patched = True


class instrumented(contextlib.ContextDecorator):
    def __init__(self, name: str, *, warn_ms: float = 500.0, error_ms: float | None = None) -> None:
        self.name = name
        self.warn_ms = warn_ms
        self.error_ms = error_ms if error_ms is not None else warn_ms * 4
        self.detail = ""
        self.duration_ms = 0.0
        self.queries = 0
        self.redis_calls = 0
        self._stack: contextlib.ExitStack | None = None

    def _recreate_cm(self) -> instrumented:
        # A fresh instance per call: one decorated function may run in many threads at once.
        return instrumented(self.name, warn_ms=self.warn_ms, error_ms=self.error_ms)

    def _count_query(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.queries += 1
        return execute(sql, params, many, context)

    def __enter__(self) -> instrumented:
        _install_redis_counter()
        self._stack = contextlib.ExitStack()
        for conn in connections.all():
            self._stack.enter_context(conn.execute_wrapper(self._count_query))
        self._redis = [0]
        self._token = _redis_counter.set(self._redis)
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.duration_ms = (time.perf_counter() - self._start) * 1000.0
        _redis_counter.reset(self._token)
        self.redis_calls = self._redis[0]
        if self._stack is not None:
            self._stack.close()
        slow = self.duration_ms > self.warn_ms
        if slow:
            level = logging.ERROR if self.duration_ms > self.error_ms else logging.WARNING
            logger.log(
                level,
                "SLOW %s %.0f ms queries=%d redis=%d%s%s",
                self.name,
                self.duration_ms,
                self.queries,
                self.redis_calls,
                f" {self.detail}" if self.detail else "",
                f" error={exc_type.__name__}" if exc_type else "",
            )
        try:
            from whatsappcrm_backend.console import metrics

            metrics.record_operation(
                self.name, duration_ms=self.duration_ms, queries=self.queries, slow=slow
            )
        except Exception:
            logger.debug("metrics for %s not recorded", self.name, exc_info=True)
