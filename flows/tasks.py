"""Flow tasks: thin wrappers that own retry and time limits; the work is in flows.services."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import MaxRetriesExceededError
from django.db import OperationalError

from flows import services
from whatsappcrm_backend.celery import LATENCY_QUEUE, MAINTENANCE_QUEUE, Priority
from whatsappcrm_backend.handoff import follow_ups_here, runs_here
from whatsappcrm_backend.locks import single_run
from whatsappcrm_backend.publishing import publish

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="process_flow_for_message_task",
    queue=LATENCY_QUEUE,
    # A lock wait that timed out, a deadlock, or a session changed under us: the transaction
    # rolled back whole, so running again is safe (and finds nothing if another run finished).
    autoretry_for=(OperationalError, services.SessionConflict),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=20,
    time_limit=30,
)
def process_flow_for_message_task(self: Any, contact_id: int) -> dict[str, int]:
    with follow_ups_here():  # the replies it queues are sent by this worker, next
        result = services.contact_messages_process(contact_id=contact_id)
    if result.get("failed"):
        # A message failed and was counted (it is parked after FLOWS_MAX_PROCESSING_ATTEMPTS):
        # try again soon rather than wait for the sweeper, so the contact is not held up long.
        try:
            raise self.retry(countdown=min(2**self.request.retries, 30))
        except MaxRetriesExceededError:
            logger.warning("contact %s: retries exhausted; the sweeper takes over", contact_id)
    return result


@runs_here("process_flow_for_message_task")
def process_flow_here(contact_id: int) -> None:
    """The flow task's work in the worker that ingested the message (whatsappcrm_backend.handoff).

    A lock wait or a conflict raises, and the handoff publishes the task, whose policy retries.
    """
    result = services.contact_messages_process(contact_id=contact_id)
    if result.get("failed"):
        publish(process_flow_for_message_task, contact_id, priority=Priority.REPLY, countdown=1)


@shared_task(
    name="cleanup_idle_conversations_task",
    queue=MAINTENANCE_QUEUE,
    soft_time_limit=50,
    time_limit=60,
)
@single_run("cleanup_idle_conversations_task", timeout=120)
def cleanup_idle_conversations_task() -> dict[str, int]:
    return {"expired": services.sessions_expire_idle()}


@shared_task(
    name="prune_ended_sessions_task",
    queue=MAINTENANCE_QUEUE,
    soft_time_limit=240,
    time_limit=300,
)
@single_run("prune_ended_sessions_task", timeout=600)
def prune_ended_sessions_task() -> dict[str, int]:
    return {"deleted": services.sessions_prune()}


@shared_task(
    name="flag_unanswered_handovers_task",
    queue=MAINTENANCE_QUEUE,
    soft_time_limit=50,
    time_limit=60,
)
@single_run("flag_unanswered_handovers_task", timeout=120)
def flag_unanswered_handovers_task() -> dict[str, int]:
    return {"flagged": services.handovers_flag_unanswered()}
