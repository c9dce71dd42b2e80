"""Reads of task results (django-celery-results) for the console: filters, keyset pages, status.

Large tables stay fast: no COUNT of the whole table (a page fetches one row more than it shows
to know whether there is a next one, and pages go by `id < cursor`), and every filter maps onto
an index django-celery-results already has (task_name, status, date_done, periodic_task_name).
A queue filter becomes a task-name filter through the route table, so it is indexed too.
Searching arguments is a substring scan, so it is always bounded by a time window.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import states
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_celery_results.models import TaskResult

from whatsappcrm_backend.celery import TASK_ROUTES
from whatsappcrm_backend.console import metrics

PAGE_SIZE = 50
WINDOWS: dict[str, timedelta | None] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
# An argument search scans rows; it never scans more than this window.
SEARCH_MAX_WINDOW = "7d"
SEARCH_DEFAULT_WINDOW = "24h"
STATUSES = sorted(states.ALL_STATES)


class ArgumentsUnavailable(ValueError):
    """The stored arguments cannot be turned back into values (truncated or not literal)."""


@dataclass(frozen=True)
class TaskFilter:
    name: str = ""
    status: str = ""
    queue: str = ""
    window: str = "7d"
    search: str = ""
    schedule: str = ""
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_params(cls, params: Any) -> TaskFilter:
        errors: list[str] = []
        status = (params.get("status") or "").strip().upper()
        if status and status not in STATUSES:
            errors.append(f"unknown status {status!r}")
            status = ""
        search = (params.get("q") or "").strip()[:200]
        # A search scans rows: without a chosen window it looks at the last day only.
        default_window = SEARCH_DEFAULT_WINDOW if search else "7d"
        window = (params.get("window") or default_window).strip()
        if window not in WINDOWS:
            errors.append(f"unknown time window {window!r}")
            window = "7d"
        if search:
            span, cap = WINDOWS[window], WINDOWS[SEARCH_MAX_WINDOW]
            if span is None or (cap is not None and span > cap):
                window = SEARCH_MAX_WINDOW
        return cls(
            name=(params.get("name") or "").strip()[:255],
            status=status,
            queue=(params.get("queue") or "").strip()[:100],
            window=window,
            search=search,
            schedule=(params.get("schedule") or "").strip()[:255],
            errors=errors,
        )

    def as_params(self) -> dict[str, str]:
        params = {
            "name": self.name,
            "status": self.status,
            "queue": self.queue,
            "window": self.window,
            "q": self.search,
            "schedule": self.schedule,
        }
        return {key: value for key, value in params.items() if value}


def queue_of(task_name: str | None) -> str:
    route = TASK_ROUTES.get(task_name or "")
    return str(route["queue"]) if route else ""


def task_names_for_queue(queue: str) -> list[str]:
    return sorted(name for name, route in TASK_ROUTES.items() if route["queue"] == queue)


def known_queues() -> list[str]:
    return sorted({str(route["queue"]) for route in TASK_ROUTES.values()})


def filtered_results(flt: TaskFilter, *, now: datetime | None = None) -> QuerySet[TaskResult]:
    now = now or timezone.now()
    rows = TaskResult.objects.all()
    if flt.name:
        rows = rows.filter(task_name=flt.name)
    if flt.status:
        rows = rows.filter(status=flt.status)
    if flt.schedule:
        rows = rows.filter(periodic_task_name=flt.schedule)
    if flt.queue:
        rows = rows.filter(task_name__in=task_names_for_queue(flt.queue))
    span = WINDOWS[flt.window]
    if span is not None:
        since = now - span
        # Results are written when a task finishes, so ids follow date_done: the window's
        # first id (one seek on the date_done index) bounds the id range too. Without it a
        # page past the window's end would scan the table down to its first row.
        first = (
            TaskResult.objects.filter(date_done__gte=since)
            .order_by("date_done")
            .values_list("id", flat=True)
            .first()
        )
        if first is None:
            return TaskResult.objects.none()
        rows = rows.filter(id__gte=first, date_done__gte=since)
    if flt.search:
        rows = rows.filter(
            # Case-sensitive LIKE: arguments are reprs of ids and keys, and UPPER() on every
            # row costs more than the scan itself.
            Q(task_args__contains=flt.search)
            | Q(task_kwargs__contains=flt.search)
            | Q(task_id=flt.search)
        )
    return rows


def _decode_repr(stored: str | None, empty: Any) -> Any:
    """TaskResult keeps `argsrepr` JSON-encoded: a JSON string holding a Python repr."""
    if stored in (None, ""):
        return empty
    try:
        value = json.loads(stored)
    except ValueError:
        value = stored
    if isinstance(value, str):
        if value.endswith("...") or "..." in value:
            raise ArgumentsUnavailable("the stored arguments were truncated")
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise ArgumentsUnavailable(f"the stored arguments are not literals: {exc}") from exc
    return value


def task_arguments(row: TaskResult) -> tuple[list[Any], dict[str, Any]]:
    """The args and kwargs a task result was run with, as values that can be re-published."""
    args = _decode_repr(row.task_args, [])
    kwargs = _decode_repr(row.task_kwargs, {})
    if isinstance(args, tuple):
        args = list(args)
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ArgumentsUnavailable("the stored arguments have an unexpected shape")
    return args, kwargs


def _readable(stored: str | None) -> str:
    """Stored args are a JSON string holding a repr: show the repr itself."""
    try:
        value = json.loads(stored) if stored else ""
    except ValueError:
        return stored or ""
    return value if isinstance(value, str) else json.dumps(value)


def _short(text: str | None, limit: int = 120) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def results_page(
    flt: TaskFilter, *, before: int | None = None, page_size: int = PAGE_SIZE
) -> dict[str, Any]:
    """One page of rows, newest first, with each row's queue and (when the metrics store still
    has it) wait time, run time and retries. `next_before` is the cursor of the next page."""
    rows = filtered_results(flt)
    if before:
        rows = rows.filter(id__lt=before)
    fetched = list(
        rows.order_by("-id").only(
            "id",
            "task_id",
            "task_name",
            "periodic_task_name",
            "status",
            "task_args",
            "task_kwargs",
            "worker",
            "date_created",
            "date_done",
            "result",
        )[: page_size + 1]
    )
    more = len(fetched) > page_size
    fetched = fetched[:page_size]
    timings = metrics.task_timings([row.task_id for row in fetched])
    items = []
    for row in fetched:
        timing = timings.get(row.task_id) or {}
        items.append(
            {
                "row": row,
                "queue": timing.get("queue") or queue_of(row.task_name),
                "wait_ms": timing.get("wait_ms"),
                "run_ms": timing.get("run_ms"),
                "retries": timing.get("retries"),
                "args": _short(_readable(row.task_args)),
                "kwargs": _short(_readable(row.task_kwargs)),
                "result": _short(row.result, 160),
            }
        )
    return {"items": items, "next_before": fetched[-1].id if more and fetched else None}


def matching_ids(flt: TaskFilter, *, cap: int) -> list[int]:
    """Ids of up to `cap` + 1 rows the filter matches (one more tells "there are more")."""
    return list(filtered_results(flt).order_by("-id").values_list("id", flat=True)[: cap + 1])


def _decoded_result(row: TaskResult) -> Any:
    if row.result is None:
        return None
    try:
        return json.loads(row.result)
    except ValueError:
        return row.result


def task_status(task_id: str) -> dict[str, Any]:
    """The state of one task by id: its result row (when stored) and its timing (when known).

    Hot-path tasks store no result on success, so a task id without a row is reported as
    `UNKNOWN` (not PENDING: the console cannot tell "never ran" from "ran, result ignored"),
    with whatever timing the metrics store kept.
    """
    row = TaskResult.objects.filter(task_id=task_id).first()
    timing = metrics.task_timing(task_id) or {}
    data: dict[str, Any] = {
        "task_id": task_id,
        "state": timing.get("state", "UNKNOWN"),
        "task": timing.get("task"),
        "queue": timing.get("queue"),
        "wait_ms": timing.get("wait_ms"),
        "run_ms": timing.get("run_ms"),
        "retries": timing.get("retries"),
        "progress": None,
        "result": None,
        "stored": row is not None,
    }
    if row is None:
        return data
    value = _decoded_result(row)
    data.update(
        {
            "state": row.status,
            "task": row.task_name,
            "queue": data["queue"] or queue_of(row.task_name),
            "periodic_task_name": row.periodic_task_name,
            "worker": row.worker,
            "date_created": row.date_created.isoformat() if row.date_created else None,
            "date_done": row.date_done.isoformat() if row.date_done else None,
            "traceback": row.traceback,
        }
    )
    if row.status in states.READY_STATES:
        data["result"] = value
    else:
        # `self.update_state(state="PROGRESS", meta={...})` stores the meta as the result.
        data["progress"] = value
    return data
