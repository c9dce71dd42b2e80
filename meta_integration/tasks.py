"""Celery tasks of the WhatsApp channel: thin, by id, owning only retry policy.

Routes and priorities come from whatsappcrm_backend.celery.TASK_ROUTES; an outbound row's
`priority` is what its send task is (re)published with, so a bulk send stays bulk on retry.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError

from meta_integration import ingest, sending, sweeper
from whatsappcrm_backend.celery import LATENCY_QUEUE, MAINTENANCE_QUEUE, Priority, send_queue
from whatsappcrm_backend.handoff import follow_ups_here, runs_here
from whatsappcrm_backend.locks import single_run
from whatsappcrm_backend.publishing import publish

logger = logging.getLogger(__name__)


@shared_task(
    name="send_whatsapp_message_task",
    # No fixed queue: a task's own queue would override the router, which sends BULK sends
    # to the bulk queue (whatsappcrm_backend.celery.route_bulk_sends).
    bind=True,
    # The row's `attempts` bounds retries (META_SEND_MAX_RETRIES), not Celery's counter,
    # which restarts whenever the sweeper or a replay publishes a fresh task.
    max_retries=None,
    soft_time_limit=20,
    time_limit=30,
    acks_late=True,
)
def send_whatsapp_message_task(self, outbound_id: int) -> dict[str, Any]:
    try:
        with follow_ups_here():  # the next send of its conversation, when this one frees it
            result = sending.outbound_send(outbound_id=outbound_id)
    except SoftTimeLimitExceeded:
        # The request may have reached Meta: leave the row `sending` for the status echo or,
        # after the grace period, the sweeper. Never resend blindly from here.
        logger.warning(
            "send of outbound %s hit its soft time limit; left to the sweeper", outbound_id
        )
        return {"outcome": "timeout", "outbound_id": outbound_id}
    if result.retry_in is not None:
        raise self.retry(**_send_retry_options(result))
    return result.as_dict()


def _send_retry_options(result: sending.SendResult) -> dict[str, Any]:
    """When and where a send that must wait runs again: a bulk send retries on the bulk worker."""
    return {
        "countdown": result.retry_in,
        "priority": result.priority,
        "queue": send_queue(result.priority),
    }


@runs_here("send_whatsapp_message_task")
def send_here(outbound_id: int) -> None:
    """A reply's send in the worker that made the reply (whatsappcrm_backend.handoff)."""
    result = sending.outbound_send(outbound_id=outbound_id)
    if result.retry_in is not None:
        publish(send_whatsapp_message_task, outbound_id, **_send_retry_options(result))


@shared_task(
    name="ingest_webhook_event_task",
    queue=LATENCY_QUEUE,
    bind=True,
    max_retries=5,  # then the sweeper re-enqueues the still unprocessed event
    soft_time_limit=20,
    time_limit=30,
    acks_late=True,
)
def ingest_webhook_event_task(self, event_id: int) -> dict[str, Any]:
    try:
        # The flow of each contact with a new message, its replies, then the messages' read
        # receipts run next in this worker instead of as tasks of their own
        # (whatsappcrm_backend.handoff).
        with follow_ups_here():
            result = ingest.webhook_event_ingest(event_id=event_id)
    except OperationalError as exc:
        # A locked or unreachable database: the event row is safe; come back shortly.
        raise self.retry(exc=exc, countdown=0.2 * (2**self.request.retries)) from exc
    return result.as_dict()


@shared_task(
    name="drain_status_events_task",
    queue=LATENCY_QUEUE,  # at RECEIPT priority: behind every reply
    bind=True,
    max_retries=5,  # then the next status POST queues another drain, or the sweeper
    soft_time_limit=20,
    time_limit=30,
    acks_late=True,
)
def drain_status_events_task(self) -> dict[str, Any]:
    try:
        result = ingest.status_events_drain()
    except OperationalError as exc:
        raise self.retry(exc=exc, countdown=0.2 * (2**self.request.retries)) from exc
    return result.as_dict()


@shared_task(
    name="send_read_receipt_task",
    queue=LATENCY_QUEUE,
    bind=True,
    max_retries=None,  # bounded by META_READ_RECEIPT_MAX_RETRIES in the service
    soft_time_limit=20,
    time_limit=30,
    acks_late=True,
)
def send_read_receipt_task(self, inbound_message_id: int) -> dict[str, Any]:
    result = sending.read_receipt_send(
        inbound_message_id=inbound_message_id, retries=self.request.retries or 0
    )
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in, priority=Priority.RECEIPT)
    return result.as_dict()


@runs_here("send_read_receipt_task", priority=Priority.RECEIPT)
def read_receipt_here(inbound_message_id: int) -> None:
    """A message's read receipt in the worker that answered it, after the reply
    (whatsappcrm_backend.handoff): a task of its own cost the worker as much CPU as the
    receipt itself. A receipt that must wait retries as the task, at its own priority."""
    result = sending.read_receipt_send(inbound_message_id=inbound_message_id)
    if result.retry_in is not None:
        publish(
            send_read_receipt_task,
            inbound_message_id,
            countdown=result.retry_in,
            priority=Priority.RECEIPT,
        )


@shared_task(
    name="sweep_stranded_messages_task",
    queue=MAINTENANCE_QUEUE,
    ignore_result=False,  # the console shows what each scheduled run did
    soft_time_limit=50,
    time_limit=60,
)
@single_run("sweep_stranded_messages_task", timeout=60)
def sweep_stranded_messages_task() -> dict[str, Any]:
    return sweeper.stranded_messages_sweep()


@shared_task(
    name="purge_webhook_events_task",
    queue=MAINTENANCE_QUEUE,
    ignore_result=False,
    soft_time_limit=300,
    time_limit=330,
)
@single_run("purge_webhook_events_task", timeout=330)
def purge_webhook_events_task() -> dict[str, Any]:
    return sweeper.webhook_events_purge()
