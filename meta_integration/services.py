"""Writes of the WhatsApp channel: inbound ingestion, statuses, queued sends and their replay.

Sending and the sweeper live beside this module (`sending.py`, `sweeper.py`); every function
that writes is keyword-only (except the admin's `outbound_replay(ids)`) and publishes its
tasks only after its transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from meta_integration import ordering
from meta_integration.messages import preview_text
from meta_integration.models import (
    Contact,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    WhatsAppNumber,
)
from meta_integration.parsing import ParsedStatus
from whatsappcrm_backend.celery import Priority
from whatsappcrm_backend.publishing import publish_on_commit

logger = logging.getLogger(__name__)

FLOW_TASK = "process_flow_for_message_task"
RECEIPT_TASK = "send_read_receipt_task"
SEND_TASK = "send_whatsapp_message_task"
INGEST_TASK = "ingest_webhook_event_task"
STATUS_DRAIN_TASK = "drain_status_events_task"

# A status may only move a row forward: sent < delivered < read; failed is terminal (and a
# read message cannot fail any more). The conditional UPDATE filters on these sets, so
# out-of-order or concurrent webhooks can never move a row backwards.
FORWARD_FROM: dict[str, tuple[str, ...]] = {
    OutboundStatus.SENT: (OutboundStatus.QUEUED, OutboundStatus.SENDING),
    OutboundStatus.DELIVERED: (OutboundStatus.QUEUED, OutboundStatus.SENDING, OutboundStatus.SENT),
    OutboundStatus.READ: (
        OutboundStatus.QUEUED,
        OutboundStatus.SENDING,
        OutboundStatus.SENT,
        OutboundStatus.DELIVERED,
    ),
    OutboundStatus.FAILED: (
        OutboundStatus.QUEUED,
        OutboundStatus.SENDING,
        OutboundStatus.SENT,
        OutboundStatus.DELIVERED,
    ),
}
TIMESTAMP_FIELD = {
    OutboundStatus.SENT: "sent_at",
    OutboundStatus.DELIVERED: "delivered_at",
    OutboundStatus.READ: "read_at",
    OutboundStatus.FAILED: "failed_at",
}


# --- outbound rows ------------------------------------------------------------------------------


def outbound_message_create(
    *,
    contact: Contact,
    idempotency_key: str,
    message: dict[str, Any],
    in_reply_to: InboundMessage | None = None,
    priority: int = Priority.REPLY,
    number: WhatsAppNumber | None = None,
) -> tuple[OutboundMessage, bool]:
    """Queue one outbound message; the send task is published after commit.

    `message` is a builder's output (meta_integration.messages). A key that already exists
    returns the existing row and publishes nothing: creating twice can never send twice.
    The unique key decides, not a read before the insert: on the hot path (one call per reply)
    that is a savepoint and an INSERT, with the lookup only when the key was taken.

    The number it leaves from: the one the customer wrote to when it answers `in_reply_to`
    (Meta's window is per business number), else `number`, else the contact's last number.
    """
    number_id = (in_reply_to.number_id if in_reply_to is not None else None) or (
        number.pk if number is not None else contact.number_id
    )
    try:
        with transaction.atomic():
            outbound = OutboundMessage.objects.create(
                contact=contact,
                number_id=number_id,
                in_reply_to=in_reply_to,
                idempotency_key=idempotency_key,
                message_type=message["type"],
                payload=message,
                text=preview_text(message)[:1000],
                priority=int(priority),
            )
    except IntegrityError:
        # Created before (a redelivered task) or by a concurrent creator just now.
        return OutboundMessage.objects.get(idempotency_key=idempotency_key), False
    publish_on_commit(SEND_TASK, outbound.pk, priority=int(priority))
    return outbound, True


class ReplayResult(int):
    """How many rows were re-queued (an int, as the admin counts it), and which were refused
    because Meta had acknowledged them (`refused`: resending would deliver them twice)."""

    refused: tuple[int, ...]

    def __new__(cls, replayed: int, refused: Iterable[int] = ()) -> ReplayResult:
        result = super().__new__(cls, replayed)
        result.refused = tuple(refused)
        return result


# A row Meta has acknowledged: it has a wamid (its send was accepted, or a status named it)
# or a time only a status from Meta sets.
ACKNOWLEDGED = (
    Q(wamid__isnull=False)
    | Q(sent_at__isnull=False)
    | Q(delivered_at__isnull=False)
    | Q(read_at__isnull=False)
)


@transaction.atomic
def outbound_replay(ids: Iterable[int]) -> ReplayResult:
    """Re-queue failed sends for one new attempt each (the admin's "replay" action).

    A failed row that Meta acknowledged (wamid, sent/delivered/read time) is refused and
    logged: Meta has it, and a replay would be a second message. The error is cleared: the
    replay is a new attempt. Returns the number re-queued; `.refused` lists the refused ids.
    Rows that are not `failed` (any more) are left alone.
    """
    now = timezone.now()
    failed = (
        OutboundMessage.objects.select_for_update()
        .filter(pk__in=list(ids), status=OutboundStatus.FAILED)
        .order_by("pk")
    )
    refused = list(failed.filter(ACKNOWLEDGED).values_list("pk", flat=True))
    rows = list(failed.exclude(ACKNOWLEDGED).values_list("pk", "priority"))
    for pk in refused:
        logger.warning("outbound %s not replayed: Meta acknowledged it (it has a wamid)", pk)
    OutboundMessage.objects.filter(pk__in=[pk for pk, _ in rows]).update(
        status=OutboundStatus.QUEUED,
        error_code=None,
        error_details="",
        failed_at=None,
        next_attempt_at=now,
    )
    for pk, priority in rows:
        logger.info("outbound %s replayed", pk)
        publish_on_commit(SEND_TASK, pk, priority=int(priority))
    return ReplayResult(len(rows), refused)


# --- contacts -----------------------------------------------------------------------------------


def contacts_set_blocked(*, ids: Iterable[int], blocked: bool) -> int:
    return Contact.objects.filter(pk__in=list(ids)).update(blocked=blocked)


def contacts_set_needs_human(*, ids: Iterable[int], needs_human: bool) -> int:
    """Hand contacts over to a human (the bot stays silent) or give them back to the bot."""
    return Contact.objects.filter(pk__in=list(ids)).update(needs_human=needs_human)


# --- statuses -----------------------------------------------------------------------------------


def _status_updates(status: ParsedStatus) -> dict[str, Any]:
    updates: dict[str, Any] = {
        "status": status.status,
        TIMESTAMP_FIELD[status.status]: status.timestamp,
    }
    if status.status == OutboundStatus.FAILED:
        updates["error_code"] = status.error_code
        updates["error_details"] = status.error_details or "failed status from Meta"
    return updates


def _status_complete(status: ParsedStatus) -> str:
    """A status for a wamid we never recorded, naming one of our rows by its idempotency key.

    This closes the crash-after-accept window: the worker died (or timed out) after Meta
    accepted the send and before it stored the wamid, so the row is still `sending` (or back
    in `queued` for a retry), or it was given up as `failed` (its answers were lost, so we
    counted the attempts as failures). Meta's echo completes it: the retry finds nothing to
    send, and an operator cannot replay a message Meta already has.
    """
    key = status.biz_opaque_callback_data
    rows = OutboundMessage.objects.filter(idempotency_key=key, wamid__isnull=True)
    updates = _status_updates(status)
    updates["wamid"] = status.wamid
    if status.status != OutboundStatus.SENT:
        updates["sent_at"] = Coalesce("sent_at", Value(status.timestamp))
    if status.status != OutboundStatus.FAILED:
        updates.update(error_code=None, error_details="", failed_at=None)
    try:
        with transaction.atomic():
            pending = list(
                rows.filter(status__in=(OutboundStatus.QUEUED, OutboundStatus.SENDING))
                .select_for_update()
                .values_list("pk", "contact_id", "number_id")
            )
            completed = rows.filter(pk__in=[pk for pk, _, _ in pending]).update(**updates)
            revived = (
                0 if completed else rows.filter(status=OutboundStatus.FAILED).update(**updates)
            )
            # A send whose 2xx answer we could not read is `sent` without a wamid: learn it.
            learned = (
                0
                if completed or revived
                else rows.filter(status=OutboundStatus.SENT).update(wamid=status.wamid)
            )
    except IntegrityError:
        logger.warning("status echo %s for key %r names a wamid in use", status.wamid, key)
        return "conflict"
    if completed:
        logger.info("outbound %r completed from Meta's status echo (%s)", key, status.status)
        for _, contact_id, number_id in pending:
            # The row is finished: the next send of its conversation may go (the chain).
            ordering.publish_next(contact_id=contact_id, number_id=number_id)
        return "completed"
    if revived:
        logger.warning(
            "outbound %r had failed here but Meta accepted it (echo %s, wamid %s): completed",
            key,
            status.status,
            status.wamid,
        )
        return "completed"
    if learned:
        return outbound_status_apply(status=status)
    # The key's row has another wamid: Meta holds this message twice (a resend after an
    # ambiguous failure). Flag it for the operator; nothing else can be done now.
    if (
        OutboundMessage.objects.filter(idempotency_key=key)
        .exclude(wamid=status.wamid)
        .exclude(wamid__isnull=True)
        .update(possible_duplicate=True)
    ):
        logger.warning(
            "outbound %r was accepted twice by Meta (second wamid %s)", key, status.wamid
        )
        return "duplicate"
    return "unknown"


def outbound_status_apply(*, status: ParsedStatus) -> str:
    """Apply one status webhook monotonically. Returns what happened, for logs and tests."""
    # The common case first, in one statement: a known wamid moving forward.
    moved = OutboundMessage.objects.filter(
        wamid=status.wamid, status__in=FORWARD_FROM[status.status]
    ).update(**_status_updates(status))
    if moved:
        if status.status == OutboundStatus.FAILED:
            logger.warning(
                "outbound %s failed at Meta: %s %s",
                status.wamid,
                status.error_code,
                status.error_details,
            )
        return "applied"
    if not OutboundMessage.objects.filter(wamid=status.wamid).exists():
        if status.biz_opaque_callback_data:
            return _status_complete(status)
        logger.info("status %s for unknown wamid %s ignored", status.status, status.wamid)
        return "unknown"
    if status.status != OutboundStatus.FAILED:
        # A late `delivered` after `read` cannot move the row back, but its time is still true.
        ts_field = TIMESTAMP_FIELD[status.status]
        OutboundMessage.objects.filter(wamid=status.wamid, **{f"{ts_field}__isnull": True}).exclude(
            status=OutboundStatus.FAILED
        ).update(**{ts_field: status.timestamp})
    return "stale"
