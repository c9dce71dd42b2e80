"""Celery signal hooks that feed the console's metrics store (console/metrics.py).

Cost on the hot path: NO Redis call per publish (throughput in is counted in process memory
and flushed by a daemon thread once a second, one pipelined call for all queues; a bare
publish measured ~8 ms on the loaded dev box and a round trip per publish added 3-5 ms), and
ONE pipelined round trip per finished task run (throughput out, wait/run histograms,
failure/retry counters, the task's own timing). `task_prerun` only notes the start time in
process memory; `task_failure` and `task_retry` are folded into the `task_postrun` write
(Celery sends them before postrun, and postrun's `state` says FAILURE or RETRY). The one
exception: a task whose child process died (hard time limit, worker lost) gets its failure
recorded by the parent's `task_failure`, since no postrun follows.

Eager tasks (unit tests, CELERY_TASK_ALWAYS_EAGER) are not recorded. A Redis error here is
logged and swallowed: metrics must never fail a publish or a task.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from celery.signals import before_task_publish, task_failure, task_postrun, task_prerun

from whatsappcrm_backend.console import metrics

logger = logging.getLogger(__name__)

# task_id -> (start epoch, start perf_counter, wait ms, queue); one entry per running task in
# this process (a prefork child runs one at a time; threads may run several).
_running: dict[str, tuple[float, float, float | None, str]] = {}
_lock = threading.Lock()
_connected = False


def _queue_of(task: Any) -> str:
    info = getattr(getattr(task, "request", None), "delivery_info", None) or {}
    queue = info.get("routing_key") or info.get("queue")
    if queue:
        return str(queue)
    from whatsappcrm_backend.celery import TASK_ROUTES, app

    route = TASK_ROUTES.get(getattr(task, "name", ""), {})
    return str(route.get("queue") or app.conf.task_default_queue)


def _published_at(request: Any) -> float | None:
    value = getattr(request, "published_at", None)
    if value is None and hasattr(request, "get"):
        value = request.get("published_at")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def on_publish(
    sender: str | None = None,
    routing_key: str | None = None,
    properties: dict | None = None,
    **_: Any,
) -> None:
    queue = routing_key or ((properties or {}).get("delivery_info") or {}).get("routing_key")
    if queue:
        metrics.buffer_publish(str(queue))


def _eta(request: Any) -> float | None:
    value = getattr(request, "eta", None)
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task is None or task_id is None or getattr(task.request, "is_eager", False):
        return
    now = time.time()
    published = _published_at(task.request)
    eta = _eta(task.request)
    if published is not None and eta is not None:
        # A countdown (a retry's backoff) is a chosen delay, not time spent waiting for a worker.
        published = max(published, eta)
    wait_ms = None if published is None else max(0.0, (now - published) * 1000.0)
    with _lock:
        _running[task_id] = (now, time.perf_counter(), wait_ms, _queue_of(task))


def on_postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    if task is None or task_id is None:
        return
    with _lock:
        started = _running.pop(task_id, None)
    if started is None:  # eager, or prerun not seen
        return
    _, start_perf, wait_ms, queue = started
    run_ms = (time.perf_counter() - start_perf) * 1000.0
    try:
        metrics.buffer_task(
            task_id=task_id,
            task=task.name,
            queue=queue,
            wait_ms=wait_ms,
            run_ms=run_ms,
            state=state or "SUCCESS",
            retries=int(getattr(task.request, "retries", 0) or 0),
        )
    except Exception:
        logger.warning("metrics: task %s %s not recorded", task.name, task_id, exc_info=True)


def on_failure(task_id: str | None = None, sender: Any = None, **_: Any) -> None:
    """Only for failures no postrun will report (the child died): recorded by the parent."""
    if task_id is None or sender is None:
        return
    with _lock:
        if task_id in _running:
            return  # this process ran it: postrun records it with state FAILURE
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    try:
        metrics.buffer_task(
            task_id=task_id,
            task=sender.name,
            queue=_queue_of(sender),
            wait_ms=None,
            run_ms=None,
            state="FAILURE",
            retries=int(getattr(sender.request, "retries", 0) or 0),
        )
    except Exception:
        logger.warning("metrics: failure of %s not recorded", task_id, exc_info=True)


def running_tasks() -> dict[str, tuple[float, float, float | None, str]]:
    with _lock:
        return dict(_running)


def connect() -> None:
    """Connect the hooks once (called from the app's ready())."""
    global _connected
    if _connected:
        return
    before_task_publish.connect(on_publish, weak=False, dispatch_uid="ops_metrics_publish")
    task_prerun.connect(on_prerun, weak=False, dispatch_uid="ops_metrics_prerun")
    task_postrun.connect(on_postrun, weak=False, dispatch_uid="ops_metrics_postrun")
    task_failure.connect(on_failure, weak=False, dispatch_uid="ops_metrics_failure")
    _connected = True
