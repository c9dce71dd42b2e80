"""Reads for page 5, schedules: every PeriodicTask with its next run, last run and result, and a
missed-run warning. The rules (next run, period, missed) are plain functions of their inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from whatsappcrm_backend.celery import TASK_ROUTES
from whatsappcrm_backend.schedules import declared_schedules

# django-celery-beat writes last_run_at back to the database only every `sync_every` (3 min
# by default, celery.beat.Scheduler.sync_every): a 30 s schedule's last_run_at can lag that
# much behind reality. A run counts as missed only past max(2 periods, period + this slack).
BEAT_SYNC_SLACK = timedelta(seconds=3 * 60 + 30)


def missed_run(
    *,
    enabled: bool,
    last_seen: datetime | None,
    since: datetime,
    period: timedelta | None,
    now: datetime,
    slack: timedelta = BEAT_SYNC_SLACK,
) -> bool:
    """True when an enabled schedule has not run for more than two periods.

    `last_seen` is the latest evidence of a run (beat's last_run_at or a stored result);
    `since` the moment it became able to run (created, changed or resumed): a schedule that
    never ran is late once two periods have passed since then.
    """
    if not enabled or period is None or period <= timedelta(0):
        return False
    baseline = max(last_seen, since) if last_seen else since
    return now - baseline > max(2 * period, period + slack)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and timezone.is_naive(value):
        return timezone.make_aware(value, UTC)
    return value


def period_of(task: PeriodicTask) -> timedelta | None:
    """The time between two runs: an interval's length, or a crontab's gap after its next run."""
    if task.interval is not None:
        return task.interval.schedule.run_every
    if task.crontab is not None:
        cron = task.crontab.schedule
        start, delta, _ = cron.remaining_delta(timezone.now())
        first = start + delta
        start2, delta2, _ = cron.remaining_delta(first + timedelta(seconds=1))
        return start2 + delta2 - first
    return None


def next_run_of(
    task: PeriodicTask, *, now: datetime, last_seen: datetime | None = None
) -> datetime | None:
    """When beat will next send it (None: disabled, a finished one-off, or no schedule).

    `last_seen` (a stored result newer than beat's last_run_at, which beat writes back only
    every few minutes) moves the base forward."""
    if not task.enabled or (task.one_off and task.total_run_count):
        return None
    if task.clocked is not None:
        return task.clocked.clocked_time
    if task.interval is None and task.crontab is None:
        return None
    last = _aware(task.last_run_at)
    if last_seen is not None and (last is None or last_seen > last):
        last = last_seen
    if last is None:
        start = _aware(task.start_time)
        # Beat runs a schedule with no last run at once (or at its start time).
        return start if start and start > now else now
    if task.interval is not None:
        return last + task.interval.schedule.run_every
    start, delta, _ = task.crontab.schedule.remaining_delta(last)
    return start + delta


def route_for(task: PeriodicTask) -> dict[str, Any]:
    """The route table decides queue and priority; the row's own fields only for tasks that
    are not in it."""
    route = TASK_ROUTES.get(task.task)
    if route:
        return {"queue": str(route["queue"]), "priority": int(route["priority"])}  # type: ignore[call-overload]
    options: dict[str, Any] = {}
    if task.queue:
        options["queue"] = task.queue
    if task.priority is not None:
        options["priority"] = task.priority
    return options


def last_result(name: str) -> TaskResult | None:
    return (
        TaskResult.objects.filter(periodic_task_name=name)
        .only("id", "task_id", "status", "date_done", "result", "task_name")
        .order_by("-id")
        .first()
    )


def schedules(*, now: datetime | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every PeriodicTask (one indexed query each for its last result), and the names of
    schedules declared in code but not installed."""
    now = now or timezone.now()
    declared = {str(entry["name"]): entry for entry in declared_schedules()}
    rows = []
    tasks = PeriodicTask.objects.select_related("interval", "crontab", "solar", "clocked")
    for task in tasks.order_by("name"):
        result = last_result(task.name)
        last_run = _aware(task.last_run_at)
        evidence = [t for t in (last_run, result.date_done if result else None) if t]
        last_seen = max(evidence) if evidence else None
        period = period_of(task)
        since = _aware(task.date_changed) or now
        rows.append(
            {
                "task": task,
                "schedule": str(task.scheduler) if task.scheduler else "—",
                "period_seconds": int(period.total_seconds()) if period else None,
                "next_run": next_run_of(task, now=now, last_seen=last_seen),
                "last_run": last_run,
                "last_seen": last_seen,
                "result": result,
                "route": route_for(task),
                "declared": task.name in declared,
                "missed": missed_run(
                    enabled=task.enabled,
                    last_seen=last_seen,
                    since=since,
                    period=period,
                    now=now,
                ),
            }
        )
    installed = {row["task"].name for row in rows}
    missing = [name for name in declared if name not in installed]
    return rows, missing
