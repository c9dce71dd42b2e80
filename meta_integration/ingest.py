"""The webhook's two halves: store the raw event in the request, ingest it in a task.

The request does only what Meta needs from it (size limit, signature, valid JSON, one INSERT
of the raw body) and answers 200; everything else runs in `ingest_webhook_event_task`,
published after that INSERT commits: parsing, contact upsert, the (number, customer) windows,
the message inserts, the statuses (in bulk), template events. Guarantees kept: an event is
stored before anything is enqueued, so a lost task or a dead Redis loses nothing (the sweeper
re-enqueues events left unprocessed); a redelivered wamid inserts and enqueues nothing (unique
key); statuses only move forward (conditional UPDATEs); running an ingest twice is a no-op.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Case, CharField, DateTimeField, IntegerField, Q, Value, When
from django.utils import timezone

from meta_integration import parsing, ratelimit, selectors, templates
from meta_integration.models import (
    Contact,
    ConversationWindow,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    WebhookEvent,
    WhatsAppNumber,
)
from meta_integration.parsing import ContactProfile, ParsedMessage, ParsedStatus, WebhookBatch
from meta_integration.services import (
    FLOW_TASK,
    FORWARD_FROM,
    INGEST_TASK,
    RECEIPT_TASK,
    STATUS_DRAIN_TASK,
    TIMESTAMP_FIELD,
    outbound_status_apply,
)
from whatsappcrm_backend.celery import Priority
from whatsappcrm_backend.publishing import publish, publish_on_commit

logger = logging.getLogger(__name__)

MESSAGES_KEY = re.compile(rb'"messages"\s*:')

# An ingest applies the still unprocessed events received shortly before its own first (see
# webhook_event_ingest); older ones are the sweeper's.
INGEST_ORDER_WINDOW = timedelta(seconds=30)
INGEST_DRAIN_LIMIT = 50
# Status-only events (Meta's sent/delivered/read callbacks, three per reply) are not ingested
# one task each: a POST queues a drain only when none is queued (this key), and the drain
# applies every pending event in one transaction. A lost drain's key expires, and the next
# status POST queues another; the sweeper is the last resort.
STATUS_DRAIN_QUEUED_KEY = "meta:status-drain-queued"
STATUS_DRAIN_QUEUED_SECONDS = 10
# A drain starts this long after the status that queued it, so the statuses arriving meanwhile
# share it: each drain costs a task (a broker round trip, a transaction, ~5 ms of CPU) however
# few events it applies. Without the wait a worker with a free slot drained almost every POST
# (1.8 drains per reply at 20 msg/s). Nobody waits on a delivered/read tick to the second.
STATUS_DRAIN_DELAY_SECONDS = 0.5
STATUS_DRAIN_LIMIT = 200
# Statuses of one event are applied in this order, so sent -> delivered -> read of the same
# message in one POST all land (each UPDATE is conditional on the row's current status).
STATUS_ORDER = (
    OutboundStatus.SENT,
    OutboundStatus.DELIVERED,
    OutboundStatus.READ,
    OutboundStatus.FAILED,
)


# --- the request half -------------------------------------------------------------------------


def webhook_event_store(*, raw_body: str, carries_messages: bool = True) -> int:
    """Store one well-signed event (the request's only write). Returns the event id."""
    return WebhookEvent.objects.create(body=raw_body, carries_messages=carries_messages).pk


def ingest_priority(body: bytes) -> int:
    """REPLY for an event that may carry a customer's message; RECEIPT for the rest.

    Meta calls back with three statuses per reply (sent, delivered, read): published at REPLY
    they would queue among the flow and send tasks a customer is waiting on. A status-only
    body never has a "messages" key (its `"field": "messages"` is a value, not a key); a
    false positive only costs the higher priority, and a body this misses is still ingested,
    by the status drain.
    """
    return Priority.REPLY if MESSAGES_KEY.search(body) else Priority.RECEIPT


def webhook_event_dispatch(*, event_id: int, priority: int = Priority.REPLY) -> None:
    """Publish the stored event's ingest; the view calls it once the 200 has been sent.

    The INSERT has committed first (the view runs in autocommit), so the task never runs
    before its row exists, and a process that dies before this call loses nothing: the
    sweeper re-enqueues events left unprocessed. If the broker refuses the publish (Redis
    down), the event is ingested right here, as before the split: its messages are stored at
    once and the sweeper publishes their flow tasks when Redis is back.
    """
    if transaction.get_connection().in_atomic_block:
        # Inside a caller's transaction (tests, a script): after it commits.
        publish_on_commit(INGEST_TASK, event_id, priority=priority)
    elif priority == Priority.RECEIPT:
        _status_drain_request(event_id=event_id)
    elif not publish(INGEST_TASK, event_id, priority=priority):
        webhook_event_ingest(event_id=event_id)
    else:
        _chat_activity_mark()


def _chat_activity_mark() -> None:
    """Tell bulk sends a customer is waiting (meta_integration.ratelimit): they slow down."""
    try:
        ratelimit.chat_activity_mark()
    except Exception:  # a hint only; Redis answered the publish a moment ago
        logger.debug("chat activity mark failed", exc_info=True)


def _status_drain_request(*, event_id: int) -> None:
    """Queue a drain of the pending events unless one is queued already (it will take this one).

    The drain deletes the key before it reads, so an event committed before a refused `add`
    is always read by the queued drain. Redis down: the event is ingested right here.
    """
    try:
        queued_already = not cache.add(
            STATUS_DRAIN_QUEUED_KEY, event_id, STATUS_DRAIN_QUEUED_SECONDS
        )
    except Exception:  # noqa: BLE001 - the cache is Redis: down means publish fails too
        queued_already = False
    if queued_already:
        return
    if not publish(
        STATUS_DRAIN_TASK, priority=Priority.RECEIPT, countdown=STATUS_DRAIN_DELAY_SECONDS
    ):
        _forget_queued_drain()
        webhook_event_ingest(event_id=event_id)


def _forget_queued_drain() -> None:
    try:
        cache.delete(STATUS_DRAIN_QUEUED_KEY)
    except Exception:  # noqa: BLE001 - the key expires by itself
        logger.warning(
            "status drain key could not be deleted; it expires in %ss", STATUS_DRAIN_QUEUED_SECONDS
        )


# --- the task half ----------------------------------------------------------------------------


@dataclass
class IngestResult:
    event_id: int
    new_messages: int = 0
    duplicate_messages: int = 0
    unroutable_messages: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    flow_contact_ids: list[int] = field(default_factory=list)
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "new_messages": self.new_messages,
            "duplicate_messages": self.duplicate_messages,
            "unroutable_messages": self.unroutable_messages,
            "statuses": dict(self.statuses),
            "flow_contact_ids": list(self.flow_contact_ids),
            "skipped": self.skipped,
        }


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
    for wa_id, message in sorted(latest.items()):
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
    for wa_id, message in sorted(latest.items()):
        # The 24-hour window runs from the customer's latest message (Meta's clock), and a
        # redelivered old message must not move it back.
        Contact.objects.filter(pk=ids[wa_id]).filter(
            Q(last_inbound_at__isnull=True) | Q(last_inbound_at__lt=message.sent_at)
        ).update(last_inbound_at=message.sent_at)
    return ids


def _windows_upsert(
    messages: list[ParsedMessage], contact_ids: dict[str, int], numbers: dict[str, WhatsAppNumber]
) -> None:
    """Open or refresh the (business number, customer) windows of `messages`.

    Meta's clock (the message's own timestamp) decides, and an older message delivered late
    never moves a window back: new pairs are inserted, known ones move forward only.
    """
    latest: dict[tuple[int, int], Any] = {}
    for message in messages:
        pair = (numbers[message.phone_number_id].pk, contact_ids[message.wa_id])
        if pair not in latest or message.sent_at > latest[pair]:
            latest[pair] = message.sent_at
    ConversationWindow.objects.bulk_create(
        [
            ConversationWindow(number_id=number_id, contact_id=contact_id, last_inbound_at=at)
            for (number_id, contact_id), at in sorted(latest.items())
        ],
        ignore_conflicts=True,
    )
    for (number_id, contact_id), at in sorted(latest.items()):
        ConversationWindow.objects.filter(
            number_id=number_id, contact_id=contact_id, last_inbound_at__lt=at
        ).update(last_inbound_at=at)


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
    _windows_upsert(fresh, contact_ids, numbers)
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


def _template_events_apply(batch: WebhookBatch) -> None:
    """Template status/quality/category events (meta_integration.templates).

    In a savepoint, and a failure there is logged, not raised: a template event must never
    hold up a customer's message in the same POST.
    """
    if not batch.template_events:
        return
    try:
        with transaction.atomic():
            templates.template_events_apply(batch.template_events)
    except Exception:  # isolated on purpose, see the docstring
        logger.exception("template events of a webhook event could not be applied")


def _event_apply(event: WebhookEvent, result: IngestResult) -> list[int]:
    """Apply one stored event inside the caller's transaction; the new inbound ids."""
    try:
        batch = parsing.parse_event(parsing.load_json(event.body.encode("utf-8")))
    except parsing.PayloadError as exc:  # the view validated it; kept for old or odd rows
        logger.warning("webhook event %s cannot be read: %s", event.pk, exc)
        batch = WebhookBatch(skipped=[str(exc)])
    for part in batch.skipped:
        logger.warning("webhook event %s: part skipped: %s", event.pk, part)
    if batch.unhandled:
        logger.info("webhook event %s not handled: %s", event.pk, ", ".join(batch.unhandled[:20]))
    created = _messages_insert(batch, result) if batch.messages else []
    if batch.statuses:
        for outcome, count in outbound_statuses_apply(statuses=batch.statuses).items():
            result.statuses[outcome] = result.statuses.get(outcome, 0) + count
    _template_events_apply(batch)
    WebhookEvent.objects.filter(pk=event.pk).update(
        processed_at=timezone.now(),
        messages_count=len(batch.messages),
        statuses_count=len(batch.statuses),
    )
    return created


def webhook_event_ingest(*, event_id: int) -> IngestResult:
    """Ingest one stored event (see _ingest), unless an earlier ingest already drained it.

    Under load most ingest tasks find their event drained by an earlier one; the read here
    needs no write transaction, which on SQLite would take the database's only write lock
    just to find nothing to do.
    """
    if not WebhookEvent.objects.filter(pk=event_id, processed_at__isnull=True).exists():
        return IngestResult(event_id=event_id, skipped=True)
    return _ingest(event_id=event_id)


@transaction.atomic
def _ingest(*, event_id: int) -> IngestResult:
    """Apply one stored event, after any earlier one still pending: one transaction, idempotent.

    Order: a customer's burst arrives as consecutive POSTs, and two workers may pick their
    ingest tasks in any order; the flow answers a contact's messages in insertion order. So
    an ingest first applies the recent message-carrying events before its own that are still
    unprocessed, in id order (each in a savepoint: a failing one is logged and left to the
    sweeper, never blocking later events), then its own. The task of an event drained this
    way finds it processed and does nothing. Status callbacks are not its business (their
    order does not matter, statuses only move forward): the status drain takes them in bulk.

    After commit: the flow task once per contact that got a new message (REPLY), and a read
    receipt per new message (RECEIPT). A wamid seen before inserts and publishes nothing.
    """
    result = IngestResult(event_id=event_id)
    pending = WebhookEvent.objects.select_for_update().filter(processed_at__isnull=True)
    # Rows are locked in ascending id order by every ingest (the earlier ones, then its own),
    # so two ingests waiting on each other's events cannot deadlock.
    earlier = list(
        pending.filter(
            pk__lt=event_id,
            received_at__gte=timezone.now() - INGEST_ORDER_WINDOW,
            carries_messages=True,  # statuses are the drain's, off the customer's path
        )
        .order_by("pk")
        .only("pk", "body")[:INGEST_DRAIN_LIMIT]
    )
    own = pending.filter(pk=event_id).only("pk", "body").first()
    created = _events_apply(earlier, result)
    if own is None:
        result.skipped = True  # processed already (its task redelivered, or drained)
    else:
        created += _event_apply(own, result)
    _publish_after_commit(result, created)
    return result


def _events_apply(events: list[WebhookEvent], result: IngestResult) -> list[int]:
    """Apply events in order, each in a savepoint: a failing one is logged and left to the
    sweeper, never blocking later events. Returns the new inbound ids."""
    created: list[int] = []
    for event in events:
        try:
            with transaction.atomic():
                created += _event_apply(event, result)
        except Exception:  # one bad event must not hold up the later ones
            logger.exception("webhook event %s failed to ingest; left to the sweeper", event.pk)
    return created


def _publish_after_commit(result: IngestResult, created: list[int]) -> None:
    # Flow tasks first: a customer waits on those. In the ingest task all of these run in
    # its worker (whatsappcrm_backend.handoff), the receipts after every reply.
    for contact_id in result.flow_contact_ids:
        publish_on_commit(FLOW_TASK, contact_id, priority=Priority.REPLY)
    for inbound_id in created:
        publish_on_commit(RECEIPT_TASK, inbound_id, priority=Priority.RECEIPT)


# --- the status drain -------------------------------------------------------------------------


@dataclass
class DrainResult:
    events: int = 0
    status_only_events: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    more: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "status_only_events": self.status_only_events,
            "statuses": dict(self.statuses),
            "more": self.more,
        }


def status_events_drain(*, limit: int = STATUS_DRAIN_LIMIT) -> DrainResult:
    """Apply every pending event, oldest first, up to `limit`: the status drain's task.

    The queued-drain key goes first, so an event stored from now on queues the next drain.
    Status-only events (the usual case) are applied together: their statuses in one bulk call
    and one UPDATE marks them processed; an event with anything else (a message another
    ingest has not taken yet, a template event) goes through the per-event path in order.
    Rows another worker holds are skipped (PostgreSQL), and every step is idempotent.
    """
    _forget_queued_drain()
    with transaction.atomic():
        return _drain(limit=limit)


def _drain(*, limit: int) -> DrainResult:
    drain = DrainResult()
    events = list(
        WebhookEvent.objects.select_for_update(skip_locked=True)
        .filter(processed_at__isnull=True)
        .order_by("pk")
        .only("pk", "body")[:limit]
    )
    drain.events = len(events)
    drain.more = len(events) == limit
    status_only: dict[int, list[ParsedStatus]] = {}
    others: list[WebhookEvent] = []
    for event in events:
        statuses = _statuses_only(event)
        if statuses is None:
            others.append(event)
        else:
            status_only[event.pk] = statuses
    result = IngestResult(event_id=0)
    created = _events_apply(others, result)
    if status_only:
        try:
            with transaction.atomic():
                _status_events_apply(status_only, drain)
        except Exception:  # one bad status must not hold up the rest: one by one instead
            logger.exception("bulk status apply failed; applying events one by one")
            by_pk = {event.pk: event for event in events}
            created += _events_apply([by_pk[pk] for pk in status_only], result)
    for outcome, count in result.statuses.items():
        drain.statuses[outcome] = drain.statuses.get(outcome, 0) + count
    _publish_after_commit(result, created)
    if drain.more:
        publish_on_commit(STATUS_DRAIN_TASK, priority=Priority.RECEIPT)
    return drain


def _statuses_only(event: WebhookEvent) -> list[ParsedStatus] | None:
    """The statuses of an event that carries nothing else; None for any other event."""
    try:
        batch = parsing.parse_event(parsing.load_json(event.body.encode("utf-8")))
    except parsing.PayloadError:
        return None  # the per-event path logs it and marks it processed
    if batch.messages or batch.template_events or batch.skipped or batch.unhandled:
        return None
    return batch.statuses


def _status_events_apply(status_only: dict[int, list[ParsedStatus]], drain: DrainResult) -> None:
    statuses = [status for each in status_only.values() for status in each]
    if statuses:
        for outcome, count in outbound_statuses_apply(statuses=statuses).items():
            drain.statuses[outcome] = drain.statuses.get(outcome, 0) + count
    by_count: dict[int, list[int]] = defaultdict(list)
    for pk, each in status_only.items():
        by_count[len(each)].append(pk)
    now = timezone.now()
    for count, pks in by_count.items():
        WebhookEvent.objects.filter(pk__in=pks).update(
            processed_at=now, messages_count=0, statuses_count=count
        )
    drain.status_only_events += len(status_only)


# --- statuses in bulk -------------------------------------------------------------------------


def _by_wamid(statuses: dict[str, ParsedStatus], value: Any, output_field: Any) -> Case:
    return Case(
        *[
            When(wamid=wamid, then=Value(value(s), output_field=output_field))
            for wamid, s in statuses.items()
        ],
        output_field=output_field,
    )


def outbound_statuses_apply(*, statuses: list[ParsedStatus]) -> dict[str, int]:
    """Apply the statuses of one event, monotonically, in a few statements.

    One status (the usual callback) takes the single path. Several: one SELECT for the known
    wamids, then one conditional UPDATE per status value (sent, delivered, read, failed, in
    that order) for all their rows; only unknown wamids (the echo that completes a row we did
    not record) and stale statuses take a statement of their own. Returns counts by outcome.
    """
    counts: dict[str, int] = defaultdict(int)
    if len(statuses) == 1:
        counts[outbound_status_apply(status=statuses[0])] += 1
        return dict(counts)
    known = set(
        OutboundMessage.objects.filter(wamid__in={s.wamid for s in statuses}).values_list(
            "wamid", flat=True
        )
    )
    groups: dict[str, dict[str, ParsedStatus]] = {value: {} for value in STATUS_ORDER}
    for status in statuses:
        if status.wamid not in known:
            counts[outbound_status_apply(status=status)] += 1
            continue
        group = groups[status.status]
        # The same status twice for one message: the first time Meta reported it counts.
        if status.wamid not in group or status.timestamp < group[status.wamid].timestamp:
            group[status.wamid] = status
    for value in STATUS_ORDER:
        group = groups[value]
        if not group:
            continue
        ts_field = TIMESTAMP_FIELD[value]
        when: Case = _by_wamid(group, lambda s: s.timestamp, DateTimeField())
        updates: dict[str, Any] = {"status": value, ts_field: when}
        if value == OutboundStatus.FAILED:
            updates["error_code"] = _by_wamid(group, lambda s: s.error_code, IntegerField())
            updates["error_details"] = _by_wamid(
                group, lambda s: s.error_details or "failed status from Meta", CharField()
            )
            for status in group.values():
                logger.warning(
                    "outbound %s failed at Meta: %s %s",
                    status.wamid,
                    status.error_code,
                    status.error_details,
                )
        moved = OutboundMessage.objects.filter(
            wamid__in=list(group), status__in=FORWARD_FROM[value]
        ).update(**updates)
        counts["applied"] += moved
        if moved < len(group):
            counts["stale"] += len(group) - moved
            if value != OutboundStatus.FAILED:
                # A late `delivered` after `read` cannot move the row back; its time is true.
                OutboundMessage.objects.filter(
                    wamid__in=list(group), **{f"{ts_field}__isnull": True}
                ).exclude(status=OutboundStatus.FAILED).update(**{ts_field: when})
    return dict(counts)
