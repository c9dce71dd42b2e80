"""Sending services: one outbound row through the Graph API, and read receipts.

The send task is redelivered after a crash (acks_late + reject_on_worker_lost), re-published
by the sweeper and retried by Celery, so every entry point is idempotent: the row is claimed
with a conditional UPDATE (`queued -> sending`) and every later write is conditional on the
row still being `sending`. A row found `sending` is never sent again here: either a live
worker has it, or Meta's status echo will complete it, or the sweeper resends it after a
grace period (flagged as a possible duplicate).
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from meta_integration import conf, graph_api, selectors
from meta_integration.errors import GraphOutcome, retry_delay
from meta_integration.models import InboundMessage, OutboundMessage, OutboundStatus

logger = logging.getLogger(__name__)

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
REENGAGEMENT_CODE = 131047
# Per-contact order: how long a later send waits between checks, and which earlier rows count
# as "on their way" (see _earlier_send_in_flight).
ORDER_WAIT_SECONDS = 0.1
ORDER_QUEUED_WINDOW = timedelta(seconds=15)
ORDER_DUE_SOON = timedelta(seconds=2)
ORDER_SENDING_WINDOW = timedelta(seconds=30)  # the send task's hard time limit


@dataclass(frozen=True)
class SendResult:
    """What a send attempt did. `retry_in` is set when the task must retry after it."""

    outcome: str  # "sent", "failed", "retry", "waiting", "skipped"
    outbound_id: int
    retry_in: float | None = None
    priority: int = 0
    code: int | None = None
    details: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fail(outbound_id: int, code: int | None, details: str) -> bool:
    return bool(
        OutboundMessage.objects.filter(pk=outbound_id, status=OutboundStatus.SENDING).update(
            status=OutboundStatus.FAILED,
            error_code=code,
            error_details=details[:2000],
            failed_at=timezone.now(),
        )
    )


def _refusal(row: OutboundMessage) -> tuple[int | None, str] | None:
    """Why this row must not be sent at all, decided without calling Meta."""
    contact = row.contact
    if contact.blocked:
        return None, "contact is blocked"
    if row.message_type != "template":
        # Free-form messages only within 24 h of the customer's last message (Meta answers
        # 131047, often asynchronously); failing here saves a call and says why at once.
        last = contact.last_inbound_at
        if last is None or timezone.now() - last > CUSTOMER_SERVICE_WINDOW:
            return REENGAGEMENT_CODE, "outside the 24-hour customer service window: send a template"
    return None


def _retry_or_fail(row: OutboundMessage, outcome: GraphOutcome) -> SendResult:
    max_retries = int(settings.META_SEND_MAX_RETRIES)
    # The row's attempts (real HTTP attempts, kept across redeliveries, sweeps and replays) is
    # the retry budget; Celery's own counter restarts with every re-published task.
    attempts = row.attempts if outcome.attempted else row.attempts - 1
    if outcome.attempted and attempts > max_retries:
        _fail(row.pk, outcome.code, f"gave up after {attempts} attempts: {outcome.details}")
        logger.warning(
            "outbound %s failed after %s attempts: %s", row.pk, attempts, outcome.details
        )
        return SendResult("failed", row.pk, code=outcome.code, details=outcome.details)
    cap = float(conf.get("META_SEND_RETRY_MAX_SECONDS"))
    if outcome.attempted:
        delay = retry_delay(
            max(0, attempts - 1),
            base=float(conf.get("META_SEND_RETRY_BASE_SECONDS")),
            cap=cap,
            min_delay=outcome.min_delay,
        )
    else:
        # Nothing was sent (rate-limit slot or open breaker): come back when told, spread a
        # little so waiting sends do not all return in the same instant.
        delay = round(min(cap, outcome.min_delay * random.uniform(1.0, 1.2) + 0.05), 3)
    requeued = OutboundMessage.objects.filter(pk=row.pk, status=OutboundStatus.SENDING).update(
        status=OutboundStatus.QUEUED,
        attempts=attempts,
        error_code=outcome.code,
        error_details=outcome.details[:2000],
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    if not requeued:  # Meta's echo completed the row meanwhile
        return SendResult("skipped", row.pk, details="completed by a status webhook")
    logger.info(
        "outbound %s: retryable %s (%s), retry in %.1fs",
        row.pk,
        outcome.code,
        outcome.details,
        delay,
    )
    return SendResult(
        "retry",
        row.pk,
        retry_in=delay,
        priority=row.priority,
        code=outcome.code,
        details=outcome.details,
    )


def _earlier_send_in_flight(outbound_id: int) -> int | None:
    """The row's priority if an earlier message to the same contact, of the same or a more
    urgent priority, is still on its way (queued and due, or being sent by a live worker).

    Two workers may hold a contact's consecutive replies at once; Meta delivers in the order
    it accepts, so the later one waits for the earlier one. A bulk row never holds up a
    reply (priority), and a row that is stranded (long overdue, or `sending` longer than the
    hard time limit) does not hold anything up: order gives way to liveness there.
    """
    now = timezone.now()
    earlier_in_flight = OutboundMessage.objects.filter(
        contact_id=OuterRef("contact_id"), pk__lt=OuterRef("pk"), priority__lte=OuterRef("priority")
    ).filter(
        Q(
            status=OutboundStatus.QUEUED,
            next_attempt_at__gte=now - ORDER_QUEUED_WINDOW,
            next_attempt_at__lte=now + ORDER_DUE_SOON,
        )
        | Q(status=OutboundStatus.SENDING, sending_at__gte=now - ORDER_SENDING_WINDOW)
    )
    # One query: the row (if still queued) and whether anything earlier holds it up.
    row = (
        OutboundMessage.objects.filter(pk=outbound_id, status=OutboundStatus.QUEUED)
        .annotate(blocked=Exists(earlier_in_flight))
        .values("priority", "blocked")
        .first()
    )
    return row["priority"] if row and row["blocked"] else None


def outbound_send(*, outbound_id: int) -> SendResult:
    """Claim, send and record one outbound row. Safe to call any number of times."""
    waiting_priority = _earlier_send_in_flight(outbound_id)
    if waiting_priority is not None:
        delay = round(ORDER_WAIT_SECONDS * random.uniform(1.0, 1.5), 3)
        logger.debug("outbound %s waits for an earlier send to its contact", outbound_id)
        return SendResult(
            "waiting",
            outbound_id,
            retry_in=delay,
            priority=waiting_priority,
            details="earlier send in flight",
        )
    claimed = OutboundMessage.objects.filter(pk=outbound_id, status=OutboundStatus.QUEUED).update(
        status=OutboundStatus.SENDING, attempts=F("attempts") + 1, sending_at=timezone.now()
    )
    if not claimed:
        current = (
            OutboundMessage.objects.filter(pk=outbound_id).values_list("status", flat=True).first()
        )
        logger.info("outbound %s is %s, not queued: nothing to send", outbound_id, current)
        return SendResult("skipped", outbound_id, details=f"status {current}")
    row = OutboundMessage.objects.select_related("contact__number", "number").get(pk=outbound_id)
    refusal = _refusal(row)
    if refusal is not None:
        code, details = refusal
        _fail(row.pk, code, details)
        logger.info("outbound %s refused before sending: %s", row.pk, details)
        return SendResult("failed", row.pk, code=code, details=details)
    number = selectors.sending_number(row.contact, row.number)
    if number is None:
        _fail(row.pk, None, "no active WhatsApp number to send from")
        return SendResult("failed", row.pk, details="no active WhatsApp number")

    result = graph_api.send_message(
        number, row.contact.wa_id, row.payload, biz_opaque_callback_data=row.idempotency_key
    )
    outcome = result.outcome
    if outcome.ok:
        stored = OutboundMessage.objects.filter(pk=row.pk, status=OutboundStatus.SENDING).update(
            status=OutboundStatus.SENT,
            wamid=result.wamid,
            number=number,
            sent_at=timezone.now(),
            error_code=None,
            error_details="",
        )
        if not stored:
            logger.info("outbound %s was completed by its status echo first", row.pk)
        return SendResult("sent", row.pk, details=result.wamid or "accepted without a wamid")
    if outcome.retryable:
        return _retry_or_fail(row, outcome)
    _fail(row.pk, outcome.code, outcome.details)
    logger.warning("outbound %s failed permanently: %s %s", row.pk, outcome.code, outcome.details)
    return SendResult("failed", row.pk, code=outcome.code, details=outcome.details)


@dataclass(frozen=True)
class ReceiptResult:
    outcome: str  # "sent", "ignored", "retry", "gave_up", "skipped"
    inbound_id: int
    retry_in: float | None = None
    code: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_receipt_send(*, inbound_message_id: int, retries: int = 0) -> ReceiptResult:
    """Mark one inbound message as read at Meta. Idempotent; a lost receipt is harmless."""
    inbound = (
        InboundMessage.objects.select_related("number", "contact__number")
        .filter(pk=inbound_message_id)
        .first()
    )
    if inbound is None or inbound.read_receipt_sent_at is not None:
        return ReceiptResult("skipped", inbound_message_id)
    number = selectors.sending_number(inbound.contact, inbound.number)
    if number is None:
        return ReceiptResult("ignored", inbound_message_id)
    outcome = graph_api.mark_as_read(number, inbound.wamid).outcome
    if outcome.ok:
        InboundMessage.objects.filter(pk=inbound.pk, read_receipt_sent_at__isnull=True).update(
            read_receipt_sent_at=timezone.now()
        )
        return ReceiptResult("sent", inbound.pk)
    if outcome.permanent:
        # 131009: the id is unknown or older than 30 days. Nothing to retry or alert on.
        logger.info(
            "read receipt for inbound %s refused: %s %s", inbound.pk, outcome.code, outcome.details
        )
        return ReceiptResult("ignored", inbound.pk, code=outcome.code)
    if retries >= int(conf.get("META_READ_RECEIPT_MAX_RETRIES")):
        logger.warning("read receipt for inbound %s given up: %s", inbound.pk, outcome.details)
        return ReceiptResult("gave_up", inbound.pk, code=outcome.code)
    delay = retry_delay(
        retries,
        base=float(conf.get("META_SEND_RETRY_BASE_SECONDS")),
        cap=float(conf.get("META_SEND_RETRY_MAX_SECONDS")),
        min_delay=outcome.min_delay,
    )
    return ReceiptResult("retry", inbound.pk, retry_in=delay, code=outcome.code)
