"""The sweeper: re-enqueue what a lost publish, a dead broker or a killed worker stranded.

Rows are written before anything is enqueued, so the database always knows what is owed.
Every task is idempotent (a conditional claim, a unique key), so a sweep can never send twice;
the only resend that may duplicate, a row stuck in `sending` after its worker died, waits for
META_SENDING_GRACE_SECONDS (longer than the task's hard limit and than Meta's status echo
usually takes) and is flagged `possible_duplicate` for the operator.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from meta_integration import conf, ingest
from meta_integration.models import InboundMessage, OutboundMessage, OutboundStatus, WebhookEvent
from meta_integration.ordering import UNFINISHED
from meta_integration.services import (
    FLOW_TASK,
    INGEST_TASK,
    RECEIPT_TASK,
    SEND_TASK,
    STATUS_DRAIN_TASK,
)
from whatsappcrm_backend.celery import Priority
from whatsappcrm_backend.publishing import publish

logger = logging.getLogger(__name__)

PURGE_CHUNK = 5000
# Rounds of the status drain (200 events each) a sweep runs before it resends `sending` rows.
SWEEP_DRAIN_ROUNDS = 10


def stranded_messages_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """One sweep. Returns counts of what it re-enqueued (and how many publishes failed)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=int(settings.META_SWEEP_GRACE_SECONDS))
    # Inbound work (events, flows) has a shorter grace: a customer is waiting, and its tasks
    # are idempotent, so publishing one whose task is merely slow costs a no-op task.
    inbound_cutoff = now - timedelta(seconds=int(conf.get("META_SWEEP_INBOUND_GRACE_SECONDS")))
    oldest = now - timedelta(seconds=int(conf.get("META_SWEEP_MAX_AGE_SECONDS")))
    limit = int(conf.get("META_SWEEP_BATCH_SIZE"))
    report = {
        "events": 0,
        "status_drains": 0,
        "flows": 0,
        "receipts": 0,
        "queued": 0,
        "resent": 0,
        "publish_failures": 0,
    }

    def send(task: str, pk: int, priority: int, key: str) -> None:
        if publish(task, pk, priority=priority):
            report[key] += 1
        else:
            report["publish_failures"] += 1

    # Webhook events stored and answered but never ingested (task lost, or Redis was down):
    # a customer's message gets its own ingest; status callbacks one drain for all of them.
    stranded = WebhookEvent.objects.filter(
        processed_at__isnull=True, received_at__lt=inbound_cutoff, received_at__gte=oldest
    )
    event_ids = list(
        stranded.filter(carries_messages=True)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for event_id in event_ids:
        send(INGEST_TASK, event_id, Priority.REPLY, "events")
    if stranded.filter(carries_messages=False).exists():
        if publish(STATUS_DRAIN_TASK, priority=Priority.RECEIPT):
            report["status_drains"] += 1
        else:
            report["publish_failures"] += 1

    # Inbound messages the flow never processed (its task lost, or the broker was down). A
    # parked message (poison: its processing kept failing) waits for an operator instead.
    contact_ids = list(
        InboundMessage.objects.filter(
            processed_at__isnull=True,
            parked_at__isnull=True,
            received_at__lt=inbound_cutoff,
            received_at__gte=oldest,
        )
        .order_by()
        .values_list("contact_id", flat=True)
        .distinct()[:limit]
    )
    for contact_id in contact_ids:
        send(FLOW_TASK, contact_id, Priority.REPLY, "flows")

    # Read receipts a hard-killed worker held (Redis gives its task back only after the
    # visibility timeout, an hour): neither sent nor given up, recent enough to matter. A
    # second mark-as-read of the same message is harmless at Meta.
    receipts_oldest = now - timedelta(seconds=int(conf.get("META_RECEIPT_SWEEP_MAX_AGE_SECONDS")))
    receipt_ids = list(
        InboundMessage.objects.filter(
            read_receipt_sent_at__isnull=True,
            read_receipt_error="",
            received_at__lt=cutoff,
            received_at__gte=max(oldest, receipts_oldest),
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for inbound_id in receipt_ids:
        send(RECEIPT_TASK, inbound_id, Priority.RECEIPT, "receipts")

    # Queued sends whose task is gone: the heads of their conversations only (a row behind an
    # unfinished earlier one is published by that row's finisher, see ordering.py).
    # next_attempt_at moves on, so a row is re-published at most once per grace period (and a
    # retry waiting out its backoff is not due yet).
    earlier = OutboundMessage.objects.filter(
        contact_id=OuterRef("contact_id"),
        pk__lt=OuterRef("pk"),
        priority__lte=OuterRef("priority"),
        status__in=UNFINISHED,
    )
    held_back = Q(number__isnull=False) & Exists(earlier.filter(number_id=OuterRef("number_id")))
    held_back |= Q(number__isnull=True) & Exists(earlier.filter(number__isnull=True))
    due = list(
        OutboundMessage.objects.filter(status=OutboundStatus.QUEUED, next_attempt_at__lt=cutoff)
        .exclude(held_back)
        .order_by("next_attempt_at")
        .values_list("pk", "priority")[:limit]
    )
    if due:
        OutboundMessage.objects.filter(
            pk__in=[pk for pk, _ in due], status=OutboundStatus.QUEUED
        ).update(next_attempt_at=now)
    for pk, priority in due:
        send(SEND_TASK, pk, priority, "queued")

    # Sends whose worker died between the claim and recording the answer. Meta's echo would
    # have completed them by now if Meta had accepted them; resend, flagged. Under a backlog
    # the echo may be stored but not applied yet (the drain queues behind replies): apply the
    # pending events first, so an accepted send is completed, not sent twice.
    sending_cutoff = now - timedelta(seconds=int(settings.META_SENDING_GRACE_SECONDS))
    stuck_rows = OutboundMessage.objects.filter(
        status=OutboundStatus.SENDING, sending_at__lt=sending_cutoff
    )
    if stuck_rows.exists():
        report["echoes_applied"] = _pending_events_apply()
    stuck = list(
        stuck_rows.order_by("sending_at").values_list("pk", "priority", "sending_at")[:limit]
    )
    for pk, priority, sending_at in stuck:
        returned = OutboundMessage.objects.filter(
            pk=pk, status=OutboundStatus.SENDING, sending_at=sending_at
        ).update(status=OutboundStatus.QUEUED, possible_duplicate=True, next_attempt_at=now)
        if returned:
            logger.warning(
                "outbound %s stuck in sending since %s: resending, possible duplicate",
                pk,
                sending_at,
            )
            send(SEND_TASK, pk, priority, "resent")
    if any(report.values()):
        logger.info("sweep: %s", report)
    return report


def _pending_events_apply(rounds: int = SWEEP_DRAIN_ROUNDS) -> int:
    """Apply stored, unprocessed events (Meta's echoes among them) now; how many were read."""
    applied = 0
    for _ in range(rounds):
        drained = ingest.status_events_drain()
        applied += drained.events
        if not drained.more:
            break
    return applied


def webhook_events_purge(*, now: datetime | None = None) -> dict[str, int]:
    """Delete raw webhook events older than the retention, in chunks (short transactions)."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=int(settings.META_WEBHOOK_EVENT_RETENTION_DAYS))
    deleted = 0
    while True:
        pks = list(
            WebhookEvent.objects.filter(received_at__lt=cutoff).values_list("pk", flat=True)[
                :PURGE_CHUNK
            ]
        )
        if not pks:
            break
        deleted += WebhookEvent.objects.filter(pk__in=pks).delete()[0]
    return {"deleted": deleted}
