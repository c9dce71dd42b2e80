"""Enqueue tasks only after the transaction that wrote their rows has committed.

A task published inside a transaction can run before the commit (and see nothing) or for a row
that rolls back. `publish_on_commit` defers the publish to `transaction.on_commit`, and a broker
that is down at that moment is logged, not raised: the row is already stored, and the sweeper
re-enqueues whatever was stranded.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import Task
from django.db import transaction

from whatsappcrm_backend import handoff
from whatsappcrm_backend.celery import app

logger = logging.getLogger(__name__)


def publish(task: Task | str, *args: Any, **options: Any) -> bool:
    """Publish now. Returns False (and logs) when the broker refuses; never raises."""
    name = task if isinstance(task, str) else task.name
    if handoff.keep_here(name, args, options):
        return True  # this worker runs it next (whatsappcrm_backend.handoff)
    options.setdefault("ignore_result", ignores_result(name))
    try:
        # retry=False: a webhook must answer in milliseconds even when Redis is down.
        app.send_task(name, args=list(args), retry=False, **options)
    except Exception:  # noqa: BLE001 - any broker failure is survivable here
        logger.warning("publish of %s%r failed; the sweeper will re-enqueue it", name, args)
        return False
    return True


@functools.cache
def ignores_result(name: str) -> bool:
    """The task's own `ignore_result` (the app's default for a task this process lacks).

    `send_task` stamps every message `ignore_result=False` unless told otherwise, and the
    worker lets the message's flag override the task's: without this, every hot-path task
    wrote a django-celery-results row (a SELECT and an INSERT per task) that nobody reads.
    """
    registered = app.tasks.get(name)
    if registered is None:
        app.loader.import_default_modules()  # a web process has not imported every tasks module
        registered = app.tasks.get(name)
    return registered.ignore_result if registered is not None else app.conf.task_ignore_result


def publish_on_commit(task: Task | str, *args: Any, **options: Any) -> None:
    """Publish after the current transaction commits (at once when none is open)."""
    transaction.on_commit(lambda: publish(task, *args, **options))
