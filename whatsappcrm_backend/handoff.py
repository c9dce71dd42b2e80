"""Follow-up tasks run in the worker process that published them, not through the broker.

A customer's message passes four tasks: ingest -> flow -> send, and the read receipt. Through
Redis, each hop costs a publish, a pick-up, an ack and the console's metrics (on the latency
worker, ~2 ms of CPU in its parent alone), and under load a queue wait behind other work, for a
task that this process could start at once. A task that opens `follow_ups_here()` keeps the
follow-ups it publishes (for task names a module registered with `runs_here`, at the priority
registered) and runs them itself once its own work is done: the most urgent first, so every
REPLY follow-up (and the ones they publish) runs before a receipt. Each runs in its own
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

# (priority, task name, args): the priority it was published at, which it keeps if it goes to
# the broker after all.
FollowUp = tuple[int, str, tuple[Any, ...]]

# How many follow-ups one task runs itself (a reply with several messages, and its receipt, is
# a handful).
DEFAULT_LIMIT = 16
# A runner that raised (a lock wait, a conflict): its task retries from the broker shortly.
FALLBACK_COUNTDOWN_SECONDS = 1.0

_runners: dict[str, tuple[int, Callable[..., Any]]] = {}
_pending: contextvars.ContextVar[list[FollowUp] | None] = contextvars.ContextVar(
    "handoff_pending", default=None
)


def runs_here(
    task_name: str, *, priority: int = Priority.REPLY
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `func(*args)` as the way to run task `task_name` in the publisher's process,
    when it is published at `priority`.

    The runner does what the task does and owns what the task would do on a retry (publish
    the task with a countdown); an exception it raises sends the follow-up to the broker.
    """

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        _runners[task_name] = (priority, func)
        return func

    return register


def keep_here(name: str, args: tuple[Any, ...], options: dict[str, Any]) -> bool:
    """Called by `publishing.publish`: True when the follow-up was kept to run here."""
    pending = _pending.get()
    if pending is None or name not in _runners:
        return False
    if options.get("countdown") or options.get("eta") or options.get("queue"):
        return False  # a chosen delay or a chosen worker: the broker's job
    priority = options.get("priority", Priority.REPLY)
    if priority != _runners[name][0]:
        return False  # e.g. a bulk send: never in a reply's worker
    follow_up = (priority, name, tuple(args))
    if follow_up not in pending:  # a chain re-publishing a row already due here
        pending.append(follow_up)
    return True


@contextmanager
def follow_ups_here(*, limit: int = DEFAULT_LIMIT) -> Iterator[None]:
    """Run the follow-ups published inside this block here, after it (see module doc)."""
    if _pending.get() is not None:
        yield  # nested: the outer block runs them
        return
    pending: list[FollowUp] = []
    token = _pending.set(pending)
    try:
        yield
        ran = 0
        while pending and ran < limit:
            # The most urgent, first published first: a receipt waits for every reply.
            follow_up = min(pending, key=lambda item: item[0])
            pending.remove(follow_up)
            ran += 1
            _run(*follow_up)
    finally:
        _pending.reset(token)
        _to_broker(pending)


def _run(priority: int, name: str, args: tuple[Any, ...]) -> None:
    started = time.perf_counter()
    state = "SUCCESS"
    try:
        _runners[name][1](*args)
    except SoftTimeLimitExceeded:
        # Out of time: this one (idempotent, so safe whatever it got done) and the rest
        # (follow_ups_here's finally) go to the broker.
        _publish(priority, name, args)
        raise
    except Exception:
        state = "RETRY"
        logger.warning("%s%r failed here; published for its own retry", name, args, exc_info=True)
        _publish(priority, name, args, countdown=FALLBACK_COUNTDOWN_SECONDS)
    finally:
        _record(name, (time.perf_counter() - started) * 1000.0, state)


def _to_broker(pending: list[FollowUp]) -> None:
    for follow_up in pending:
        _publish(*follow_up)
    pending.clear()


def _publish(priority: int, name: str, args: tuple[Any, ...], **options: Any) -> None:
    from whatsappcrm_backend.publishing import publish

    publish(name, *args, priority=priority, **options)


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
