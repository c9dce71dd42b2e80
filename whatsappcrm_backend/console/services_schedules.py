"""Operator actions on schedules: run now, pause, resume. Each one is in the admin log."""

from __future__ import annotations

import json
import logging
from typing import Any

from celery.utils import uuid
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from whatsappcrm_backend.console.pages_common import log_operator_action
from whatsappcrm_backend.console.selectors_schedules import route_for
from whatsappcrm_backend.publishing import publish

logger = logging.getLogger(__name__)


class ScheduleActionError(ValueError):
    pass


def _json(text: str | None, empty: Any) -> Any:
    try:
        return json.loads(text) if text else empty
    except ValueError as exc:
        raise ScheduleActionError(f"stored arguments are not JSON: {exc}") from exc


def schedule_run_now(*, schedule_id: int, user_id: int) -> str:
    """Publish the schedule's task now, routed like beat sends it, with its periodic_task_name
    header (so the result shows on this page). The task's single_run lock prevents overlap
    with a run already in progress: the extra run is skipped and says so."""
    task = PeriodicTask.objects.filter(pk=schedule_id).first()
    if task is None:
        raise ScheduleActionError(f"no schedule with id {schedule_id}")
    args = _json(task.args, [])
    kwargs = _json(task.kwargs, {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ScheduleActionError("stored arguments have an unexpected shape")
    task_id = uuid()
    options = {
        **route_for(task),
        "kwargs": kwargs,
        "task_id": task_id,
        "headers": {"periodic_task_name": task.name},
    }
    if not publish(task.task, *args, **options):
        raise ScheduleActionError("the broker refused the publish: try again")
    log_operator_action(
        user_id=user_id,
        model=PeriodicTask,
        objects=[(task.pk, task.name)],
        message=f"Run now from the console (task id {task_id})",
    )
    logger.info("schedule %r run now by operator %s as %s", task.name, user_id, task_id)
    return task_id


@transaction.atomic
def schedule_set_enabled(*, schedule_id: int, enabled: bool, user_id: int) -> bool:
    """Pause or resume. An UPDATE, not save(): PeriodicTask.save() clears last_run_at when
    disabling, which would erase the history this page shows. Beat is told to reload."""
    task = PeriodicTask.objects.select_for_update().filter(pk=schedule_id).first()
    if task is None:
        raise ScheduleActionError(f"no schedule with id {schedule_id}")
    if task.enabled == enabled:
        return False
    PeriodicTask.objects.filter(pk=task.pk).update(enabled=enabled, date_changed=timezone.now())
    PeriodicTasks.update_changed()
    log_operator_action(
        user_id=user_id,
        model=PeriodicTask,
        objects=[(task.pk, task.name)],
        message="Resumed from the console" if enabled else "Paused from the console",
    )
    return True
