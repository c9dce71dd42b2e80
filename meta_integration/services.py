"""Writes of the WhatsApp channel: inbound ingestion, statuses, queued sends and their replay.

Sending and the sweeper live beside this module (`sending.py`, `sweeper.py`); every function
that writes is keyword-only (except the admin's `outbound_replay(ids)`) and publishes its
tasks only after its transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from meta_integration import selectors
from meta_integration.messages import preview_text
from meta_integration.models import (
    Contact,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    WebhookEvent,
    WhatsAppNumber,
)
from meta_integration.parsing import ContactProfile, ParsedMessage, ParsedStatus, WebhookBatch
from whatsappcrm_backend.celery import Priority
from whatsappcrm_backend.publishing import publish_on_commit

logger = logging.getLogger(__name__)

FLOW_TASK = "process_flow_for_message_task"
RECEIPT_TASK = "send_read_receipt_task"
SEND_TASK = "send_whatsapp_message_task"

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
) -> tuple[OutboundMessage, bool]:
    """Queue one outbound message; the send task is published after commit.

    `message` is a builder's output (meta_integration.messages). A key that already exists
    returns the existing row and publishes nothing: creating twice can never send twice.
    The unique key decides, not a read before the insert: on the hot path (one call per reply)
    that is a savepoint and an INSERT, with the lookup only when the key was taken.
    """
    try:
        with transaction.atomic():
            outbound = OutboundMessage.objects.create(
                contact=contact,
                number_id=contact.number_id,
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


@transaction.atomic
def outbound_replay(ids: Iterable[int]) -> int:
    """Re-queue failed sends for one new attempt each (the admin's "replay" action).

    The old wamid and error are cleared: the replay is a new message to Meta. Returns how many
    rows were re-queued; rows that are not `failed` (any more) are left alone.
    """
    now = timezone.now()
    rows = list(
        OutboundMessage.objects.select_for_update()
        .filter(pk__in=list(ids), status=OutboundStatus.FAILED)
        .values_list("pk", "priority")
    )
    OutboundMessage.objects.filter(pk__in=[pk for pk, _ in rows]).update(
        status=OutboundStatus.QUEUED,
        error_code=None,
        error_details="",
        failed_at=None,
        wamid=None,
        next_attempt_at=now,
    )
    for pk, priority in rows:
        logger.info("outbound %s replayed", pk)
        publish_on_commit(SEND_TASK, pk, priority=int(priority))
    return len(rows)


# --- contacts -----------------------------------------------------------------------------------


def contacts_set_blocked(*, ids: Iterable[int], blocked: bool) -> int:
    return Contact.objects.filter(pk__in=list(ids)).update(blocked=blocked)


def contacts_set_needs_human(*, ids: Iterable[int], needs_human: bool) -> int:
    """Hand contacts over to a human (the bot stays silent) or give them back to the bot."""
    return Contact.objects.filter(pk__in=list(ids)).update(needs_human=needs_human)


def _contacts_upsert(
    messages: list[ParsedMessage],
    profiles: dict[str, ContactProfile],
    numbers: dict[str, WhatsAppNumber],
) -> dict[str, int]:
    """Insert or update the senders of `messages` in one statement per field set: wa_id -> id."""
    now = timezone.now()
    latest: dict[str, ParsedMessage] = {}
    for message in messages:
        current = latest.get(message.wa_id)
        if current is None or message.sent_at >= current.sent_at:
            latest[message.wa_id] = message
    groups: dict[tuple[str, ...], list[Contact]] = {}
    for wa_id, message in latest.items():
        profile = profiles.get(wa_id) or ContactProfile(wa_id=wa_id)
        fields = ["number", "last_seen_at"]
        # A blank name or user id in this event must not erase the one we know.
        fields += ["profile_name"] if profile.profile_name else []
        fields += ["user_id"] if profile.user_id else []
        contact = Contact(
            wa_id=wa_id,
            number=numbers[message.phone_number_id],
            profile_name=profile.profile_name,
            user_id=profile.user_id,
            last_seen_at=now,
        )
        groups.setdefault(tuple(fields), []).append(contact)
    ids: dict[str, int] = {}
    for fields, contacts in groups.items():
        # One INSERT .. ON CONFLICT (wa_id) DO UPDATE: race-free against a concurrent POST.
        Contact.objects.bulk_create(
            contacts, update_conflicts=True, unique_fields=["wa_id"], update_fields=list(fields)
        )
        ids.update({c.wa_id: c.pk for c in contacts if c.pk is not None})
    missing = [wa_id for wa_id in latest if wa_id not in ids]
    if missing:  # a backend that does not return ids from an upsert
        ids.update(Contact.objects.filter(wa_id__in=missing).values_list("wa_id", "pk"))
    for wa_id, message in latest.items():
        # The 24-hour window runs from the customer's latest message (Meta's clock), and a
        # redelivered old message must not move it back.
        Contact.objects.filter(pk=ids[wa_id]).filter(
            Q(last_inbound_at__isnull=True) | Q(last_inbound_at__lt=message.sent_at)
        ).update(last_inbound_at=message.sent_at)
    return ids


# --- the webhook: one transaction per POST -----------------------------------------------------


@dataclass
class IngestResult:
    event_id: int
    new_messages: int = 0
    duplicate_messages: int = 0
    unroutable_messages: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    flow_contact_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "new_messages": self.new_messages,
            "duplicate_messages": self.duplicate_messages,
            "unroutable_messages": self.unroutable_messages,
            "statuses": dict(self.statuses),
            "flow_contact_ids": list(self.flow_contact_ids),
        }


def _messages_insert(batch: WebhookBatch, result: IngestResult) -> list[int]:
    """Insert the new inbound messages; returns the ids of the rows this call created."""
    numbers = selectors.active_numbers(m.phone_number_id for m in batch.messages)
    routable: list[ParsedMessage] = []
    for message in batch.messages:
        if message.phone_number_id in numbers:
            routable.append(message)
        else:
            result.unroutable_messages += 1
            logger.warning(
                "inbound %s for unknown or inactive phone_number_id %r skipped",
                message.wamid,
                message.phone_number_id,
            )
    known = set(
        InboundMessage.objects.filter(wamid__in=[m.wamid for m in routable]).values_list(
            "wamid", flat=True
        )
    )
    fresh: list[ParsedMessage] = []
    for message in routable:
        if message.wamid in known:
            result.duplicate_messages += 1
        else:
            known.add(message.wamid)  # the same wamid twice in one POST counts once
            fresh.append(message)
    if not fresh:
        return []
    contact_ids = _contacts_upsert(fresh, batch.contacts, numbers)
    created: list[int] = []
    for message in fresh:
        contact_id = contact_ids[message.wa_id]
        try:
            # The unique wamid is the de-duplication: a concurrent redelivery blocks on the
            # index and then fails here, inside its own savepoint, instead of inserting twice.
            with transaction.atomic():
                inbound = InboundMessage.objects.create(
                    wamid=message.wamid,
                    contact_id=contact_id,
                    number=numbers[message.phone_number_id],
                    message_type=message.message_type,
                    text=message.text,
                    reply_id=message.reply_id,
                    context_wamid=message.context_wamid,
                    payload=message.payload,
                    sent_at=message.sent_at,
                )
        except IntegrityError:
            result.duplicate_messages += 1
            continue
        result.new_messages += 1
        created.append(inbound.pk)
        if contact_id not in result.flow_contact_ids:
            result.flow_contact_ids.append(contact_id)
    return created


@transaction.atomic
def webhook_event_ingest(*, raw_body: str, batch: WebhookBatch) -> IngestResult:
    """Store the raw event, upsert contacts, insert new messages, apply statuses: one commit.

    After commit: the flow task once per contact that got a new message (REPLY), and a read
    receipt per new message (RECEIPT). A redelivered wamid inserts and enqueues nothing. A
    broker that is down only logs; the rows are stored and the sweeper re-enqueues them.
    """
    event = WebhookEvent.objects.create(
        body=raw_body, messages_count=len(batch.messages), statuses_count=len(batch.statuses)
    )
    result = IngestResult(event_id=event.pk)
    created = _messages_insert(batch, result) if batch.messages else []
    for status in batch.statuses:
        outcome = outbound_status_apply(status=status)
        result.statuses[outcome] = result.statuses.get(outcome, 0) + 1
    # Flow tasks first: a customer waits on those; receipts are a lower priority anyway.
    for contact_id in result.flow_contact_ids:
        publish_on_commit(FLOW_TASK, contact_id, priority=Priority.REPLY)
    for inbound_id in created:
        publish_on_commit(RECEIPT_TASK, inbound_id, priority=Priority.RECEIPT)
    return result


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
    in `queued` for a retry). Meta's echo completes it and the retry finds nothing to send.
    """
    key = status.biz_opaque_callback_data
    rows = OutboundMessage.objects.filter(idempotency_key=key, wamid__isnull=True)
    updates = _status_updates(status)
    updates["wamid"] = status.wamid
    if status.status != OutboundStatus.SENT:
        updates["sent_at"] = Coalesce("sent_at", Value(status.timestamp))
    try:
        with transaction.atomic():
            completed = rows.filter(
                status__in=(OutboundStatus.QUEUED, OutboundStatus.SENDING)
            ).update(**updates)
            # A send whose 2xx answer we could not read is `sent` without a wamid: learn it.
            learned = (
                0
                if completed
                else rows.filter(status=OutboundStatus.SENT).update(wamid=status.wamid)
            )
    except IntegrityError:
        logger.warning("status echo %s for key %r names a wamid in use", status.wamid, key)
        return "conflict"
    if completed:
        logger.info("outbound %r completed from Meta's status echo (%s)", key, status.status)
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
