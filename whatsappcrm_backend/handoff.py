"""Follow-up tasks run in the worker process that published them, not through the broker.

A customer's message passes three tasks: ingest -> flow -> send. Through Redis, each hop costs a
publish, a pick-up, an ack and the console's metrics, and under load a queue wait behind other
work, for a task that this process could start at once. A task that opens `follow_ups_here()`
keeps the follow-ups it publishes at REPLY priority (for task names a module registered with
`runs_here`) and runs them itself, in order, once its own work is done. Each runs in its own
transaction, and may publish follow-ups of its own, which join the same run.

Nothing is weaker than a publish: follow-ups are published after their rows commit, as before.
A process that dies with follow-ups pending leaves those rows unprocessed or queued, exactly
like a publish lost to a Redis outage, and the sweeper re-enqueues them. A runner that raises
hands its follow-up to the broker, where the task's own retry policy applies. So does every
follow-up past `limit`, so one task never runs for long.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from whatsappcrm_backend.celery import LATENCY_QUEUE, Priority

logger = logging.getLogger(__name__)

FollowUp = tuple[str, tuple[Any, ...]]

# How many follow-ups one task runs itself (a reply with several messages is a handful).
DEFAULT_LIMIT = 16
# A runner that raised (a lock wait, a conflict): its task retries from the broker shortly.
FALLBACK_COUNTDOWN_SECONDS = 1.0

_runners: dict[str, Callable[..., Any]] = {}
_pending: contextvars.ContextVar[list[FollowUp] | None] = contextvars.ContextVar(
    "handoff_pending", default=None
)


def runs_here(task_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `func(*args)` as the way to run task `task_name` in the publisher's process.

    The runner does what the task does and owns what the task would do on a retry (publish
    the task with a countdown); an exception it raises sends the follow-up to the broker.
    """

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        _runners[task_name] = func
        return func

    return register


def keep_here(name: str, args: tuple[Any, ...], options: dict[str, Any]) -> bool:
    """Called by `publishing.publish`: True when the follow-up was kept to run here."""
    pending = _pending.get()
    if pending is None or name not in _runners:
        return False
    if options.get("countdown") or options.get("eta") or options.get("queue"):
        return False  # a chosen delay or a chosen worker: the broker's job
    if options.get("priority", Priority.REPLY) != Priority.REPLY:
        return False  # receipts and bulk work never delay the reply being made here
    follow_up = (name, tuple(args))
    if follow_up not in pending:  # a chain re-publishing a row already due here
        pending.append(follow_up)
    return True


@contextmanager
def follow_ups_here(*, limit: int = DEFAULT_LIMIT) -> Iterator[None]:
    """Run the REPLY follow-ups published inside this block here, after it (see module doc)."""
    if _pending.get() is not None:
        yield  # nested: the outer block runs them
        return
    pending: list[FollowUp] = []
    token = _pending.set(pending)
    try:
        yield
        ran = 0
        while pending and ran < limit:
            name, args = pending.pop(0)
            ran += 1
            _run(name, args)
    finally:
        _pending.reset(token)
        _to_broker(pending)


def _run(name: str, args: tuple[Any, ...]) -> None:
    started = time.perf_counter()
    state = "SUCCESS"
    try:
        _runners[name](*args)
    except SoftTimeLimitExceeded:
        # Out of time: this one (idempotent, so safe whatever it got done) and the rest
        # (follow_ups_here's finally) go to the broker.
        _publish(name, args)
        raise
    except Exception:
        state = "RETRY"
        logger.warning("%s%r failed here; published for its own retry", name, args, exc_info=True)
        _publish(name, args, countdown=FALLBACK_COUNTDOWN_SECONDS)
    finally:
        _record(name, (time.perf_counter() - started) * 1000.0, state)


def _to_broker(pending: list[FollowUp]) -> None:
    for name, args in pending:
        _publish(name, args)
    pending.clear()


def _publish(name: str, args: tuple[Any, ...], **options: Any) -> None:
    from whatsappcrm_backend.publishing import publish

    publish(name, *args, priority=Priority.REPLY, **options)


def _record(name: str, run_ms: float, state: str) -> None:
    """The console counts a follow-up run here like a task run with no queue wait."""
    from whatsappcrm_backend.console import metrics

    try:
        metrics.buffer_task(
            task_id=None,  # nothing looks a follow-up up by id: no timing key to keep
            task=name,
            queue=LATENCY_QUEUE,
            wait_ms=0.0,
            run_ms=run_ms,
            state=state,
        )
    except Exception:  # metrics must never fail the work
        logger.debug("metrics: follow-up %s not recorded", name, exc_info=True)
