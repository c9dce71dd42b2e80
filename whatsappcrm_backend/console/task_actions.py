"""Operator actions on task results: retry (re-publish) and revoke. Each one is logged."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import states
from celery.utils import uuid
from django.db import transaction
from django_celery_results.models import TaskResult

from whatsappcrm_backend.celery import TASK_ROUTES, app
from whatsappcrm_backend.console.pages_common import log_operator_action
from whatsappcrm_backend.console.selectors_tasks import ArgumentsUnavailable, task_arguments
from whatsappcrm_backend.publishing import publish

logger = logging.getLogger(__name__)


@dataclass
class ActionReport:
    done: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)

    def summary(self, verb: str) -> str:
        text = f"{len(self.done)} {verb}"
        if self.refused:
            reasons = sorted({item["reason"] for item in self.refused})
            text += f"; {len(self.refused)} refused ({'; '.join(reasons)})"
        return text


def route_of(task_name: str) -> dict[str, Any]:
    """Queue and priority from the route table: a retry is routed exactly as the original."""
    route = TASK_ROUTES[task_name]
    return {"queue": str(route["queue"]), "priority": int(route["priority"])}  # type: ignore[call-overload]


def results_retry(*, ids: Iterable[int], user_id: int) -> ActionReport:
    """Re-publish each task by name with its stored args/kwargs, queue and priority.

    Every task is idempotent, so a retry of a task that has meanwhile succeeded is harmless.
    A scheduled task's retry keeps its `periodic_task_name`, so its result shows on the
    schedule page; its own single_run lock stops it overlapping a run in progress.
    """
    report = ActionReport()
    rows = TaskResult.objects.filter(pk__in=list(ids)).only(
        "id", "task_id", "task_name", "task_args", "task_kwargs", "periodic_task_name"
    )
    for row in rows.order_by("id"):
        if not row.task_name or row.task_name not in TASK_ROUTES:
            report.refused.append(
                {"id": row.pk, "reason": f"task {row.task_name!r} has no route (not ours)"}
            )
            continue
        try:
            args, kwargs = task_arguments(row)
        except ArgumentsUnavailable as exc:
            report.refused.append({"id": row.pk, "reason": str(exc)})
            continue
        new_id = uuid()
        options: dict[str, Any] = {**route_of(row.task_name), "kwargs": kwargs, "task_id": new_id}
        if row.periodic_task_name:
            options["headers"] = {"periodic_task_name": row.periodic_task_name}
        if not publish(row.task_name, *args, **options):
            report.refused.append({"id": row.pk, "reason": "the broker refused the publish"})
            continue
        logger.info("task result %s (%s) retried as %s", row.task_id, row.task_name, new_id)
        report.done.append({"id": row.pk, "task_id": row.task_id, "new_task_id": new_id})
    if report.done:
        log_operator_action(
            user_id=user_id,
            model=TaskResult,
            objects=[(item["id"], item["task_id"]) for item in report.done],
            message="Retried from the console (new task ids: "
            + ", ".join(item["new_task_id"] for item in report.done[:20])
            + ("…" if len(report.done) > 20 else "")
            + ")",
        )
    return report


@transaction.atomic
def results_revoke(*, ids: Iterable[int], user_id: int) -> ActionReport:
    """Revoke the tasks behind these rows: workers discard them if they have not started (a
    retry waiting out its countdown, a scheduled run not yet due). One broadcast for all.

    Rows not finished yet are marked REVOKED at once, as the worker would; finished rows keep
    their state (a revoke cannot undo a run) and the revoke is still broadcast, so a pending
    retry of that id is dropped too.
    """
    report = ActionReport()
    rows = list(
        TaskResult.objects.filter(pk__in=list(ids)).order_by("id").values_list("id", "task_id")
    )
    if not rows:
        return report
    task_ids = [task_id for _, task_id in rows]
    try:
        app.control.revoke(task_ids)
    except Exception as exc:  # noqa: BLE001 - broker down: say so, change nothing
        for pk, _ in rows:
            report.refused.append({"id": pk, "reason": f"broadcast failed: {exc}"})
        return report
    TaskResult.objects.filter(pk__in=[pk for pk, _ in rows]).exclude(
        status__in=states.READY_STATES
    ).update(status=states.REVOKED)
    report.done = [{"id": pk, "task_id": task_id} for pk, task_id in rows]
    log_operator_action(
        user_id=user_id,
        model=TaskResult,
        objects=rows,
        message="Revoked from the console",
    )
    logger.info("revoked %s task(s) from the console", len(rows))
    return report
