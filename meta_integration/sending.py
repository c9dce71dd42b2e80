"""Sending services: one outbound row through the Graph API, and read receipts.

The send task is redelivered after a crash (acks_late + reject_on_worker_lost), re-published
by the sweeper and retried by Celery, so every entry point is idempotent: the row is claimed
with a conditional UPDATE (`queued -> sending`) and every later write is conditional on the
row still being `sending`. A row found `sending` is never sent again here: either a live
worker has it, or Meta's status echo will complete it, or the sweeper resends it after a
grace period (flagged as a possible duplicate).

The claim also honours Meta's backoff (a row is not taken before its `next_attempt_at`) and
the conversation's order (not while an earlier row of the same (number, customer) pair is
unfinished; see ordering.py): a send that loses the claim for either reason returns without
re-publishing anything, and whoever finishes a row publishes the next one.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, F
from django.utils import timezone

from meta_integration import conf, graph_api, ordering, selectors, templates
from meta_integration.errors import GraphOutcome, retry_delay
from meta_integration.models import InboundMessage, OutboundMessage, OutboundStatus, WhatsAppNumber
from whatsappcrm_backend.celery import Priority
from whatsappcrm_backend.instrumentation import instrumented

logger = logging.getLogger(__name__)

REENGAGEMENT_CODE = 131047
# A retry published with a countdown may start a hair before its row's next_attempt_at on a
# worker whose clock runs a little ahead; that is not "early".
CLAIM_EARLY_TOLERANCE = timedelta(seconds=0.5)


@dataclass(frozen=True)
class SendResult:
    """What a send attempt did. `retry_in` is set when the task must retry after it."""

    # "sent", "failed", "retry", "waiting" (an earlier row of the conversation is unfinished),
    # "early" (its backoff is not over), "skipped" (not queued)
    outcome: str
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


def _template_refusal(
    row: OutboundMessage, number: WhatsAppNumber | None
) -> tuple[int, str] | None:
    """The template catalogue's verdict: an unknown, unapproved or mis-filled template fails
    here with Meta's own code (132000, 132001, 132015, 132016) instead of at Meta."""
    waba_id = (number.waba_id if number else "") or settings.META_WABA_ID
    return templates.template_refusal(waba_id=waba_id, payload=row.payload)


def _refusal(row: OutboundMessage, number: WhatsAppNumber | None) -> tuple[int | None, str] | None:
    """Why this row must not be sent at all, decided without calling Meta."""
    contact = row.contact
    if contact.blocked:
        return None, "contact is blocked"
    if row.message_type == "template":
        return _template_refusal(row, number)
    # Free-form messages only within 24 h of the customer's last message TO THIS NUMBER (Meta
    # answers 131047, often asynchronously); failing here saves a call and says why at once.
    if not selectors.window_open(contact_id=contact.pk, number_id=number.pk if number else None):
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


def _not_claimed(row: OutboundMessage, now: datetime) -> SendResult:
    """Why the claim did not take a queued row: not queued any more, not due, or held back.

    Neither of the last two re-publishes anything. A row waiting out a backoff has its own
    retry scheduled (Celery's countdown, set with the same delay as next_attempt_at) and the
    sweeper re-publishes it if that was lost; a second, early task (a duplicate delivery, a
    sweeper re-publish) returns quietly instead of multiplying ETA messages in Redis. A row
    held back by an earlier one is published by that row's finisher (meta_integration.ordering).
    """
    current = (
        OutboundMessage.objects.filter(pk=row.pk).values_list("status", "next_attempt_at").first()
    )
    if current is None or current[0] != OutboundStatus.QUEUED:
        status = current[0] if current else "missing"
        logger.info("outbound %s is %s, not queued: nothing to send", row.pk, status)
        return SendResult("skipped", row.pk, details=f"status {status}")
    if current[1] > now + CLAIM_EARLY_TOLERANCE:
        logger.info("outbound %s is not due before %s: left to its retry", row.pk, current[1])
        return SendResult("early", row.pk, details=f"due at {current[1].isoformat()}")
    logger.debug("outbound %s waits for an earlier send of its conversation", row.pk)
    return SendResult("waiting", row.pk, priority=row.priority, details="earlier send unfinished")


def _finished(row: OutboundMessage) -> None:
    """The row is done (sent or failed for good): the next of its conversation may go."""
    ordering.publish_next(contact_id=row.contact_id, number_id=row.number_id)


@instrumented("send.outbound", warn_ms=1000, error_ms=5000)
def outbound_send(*, outbound_id: int) -> SendResult:
    """Claim, send and record one outbound row. Safe to call any number of times."""
    row = (
        OutboundMessage.objects.select_related("contact__number", "number")
        .filter(pk=outbound_id)
        .first()
    )
    if row is None or row.status != OutboundStatus.QUEUED:
        status = row.status if row else "missing"
        logger.info("outbound %s is %s, not queued: nothing to send", outbound_id, status)
        return SendResult("skipped", outbound_id, details=f"status {status}")
    now = timezone.now()
    # One conditional UPDATE: still queued, due (Meta's backoff is honoured), and nothing
    # earlier in its conversation unfinished (the chain). Losing any of these claims nothing.
    held_back = ordering.earlier_unfinished(
        outbound_id=row.pk,
        contact_id=row.contact_id,
        number_id=row.number_id,
        priority=row.priority,
    )
    claimed = (
        OutboundMessage.objects.filter(
            pk=row.pk,
            status=OutboundStatus.QUEUED,
            next_attempt_at__lte=now + CLAIM_EARLY_TOLERANCE,
        )
        .filter(~Exists(held_back))
        .update(status=OutboundStatus.SENDING, attempts=F("attempts") + 1, sending_at=now)
    )
    if not claimed:
        return _not_claimed(row, now)
    row.status = OutboundStatus.SENDING
    row.attempts += 1
    number = selectors.sending_number(row.contact, row.number)
    refusal = _refusal(row, number)
    if refusal is not None:
        code, details = refusal
        _fail(row.pk, code, details)
        logger.info("outbound %s refused before sending: %s", row.pk, details)
        _finished(row)
        return SendResult("failed", row.pk, code=code, details=details)
    if number is None:
        _fail(row.pk, None, "no active WhatsApp number to send from")
        _finished(row)
        return SendResult("failed", row.pk, details="no active WhatsApp number")

    result = graph_api.send_message(
        number,
        row.contact.wa_id,
        row.payload,
        biz_opaque_callback_data=row.idempotency_key,
        bulk=row.priority >= Priority.BULK,
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
        _finished(row)
        return SendResult("sent", row.pk, details=result.wamid or "accepted without a wamid")
    if outcome.retryable:
        retried = _retry_or_fail(row, outcome)
        if retried.outcome == "failed":
            _finished(row)
        return retried
    _fail(row.pk, outcome.code, outcome.details)
    logger.warning("outbound %s failed permanently: %s %s", row.pk, outcome.code, outcome.details)
    _finished(row)
    return SendResult("failed", row.pk, code=outcome.code, details=outcome.details)


@dataclass(frozen=True)
class ReceiptResult:
    outcome: str  # "sent", "ignored", "retry", "gave_up", "skipped"
    inbound_id: int
    retry_in: float | None = None
    code: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _receipt_given_up(inbound_id: int, reason: str) -> None:
    InboundMessage.objects.filter(pk=inbound_id, read_receipt_sent_at__isnull=True).update(
        read_receipt_error=reason[:200]
    )


@instrumented("send.read_receipt", warn_ms=1000, error_ms=5000)
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
        _receipt_given_up(inbound.pk, "no active WhatsApp number")
        return ReceiptResult("ignored", inbound_message_id)
    outcome = graph_api.mark_as_read(number, inbound.wamid).outcome
    if outcome.ok:
        InboundMessage.objects.filter(pk=inbound.pk, read_receipt_sent_at__isnull=True).update(
            read_receipt_sent_at=timezone.now(), read_receipt_error=""
        )
        return ReceiptResult("sent", inbound.pk)
    if outcome.permanent:
        # 131009: the id is unknown or older than 30 days. Nothing to retry or alert on.
        logger.info(
            "read receipt for inbound %s refused: %s %s", inbound.pk, outcome.code, outcome.details
        )
        _receipt_given_up(inbound.pk, f"{outcome.code}: {outcome.details}")
        return ReceiptResult("ignored", inbound.pk, code=outcome.code)
    if retries >= int(conf.get("META_READ_RECEIPT_MAX_RETRIES")):
        logger.warning("read receipt for inbound %s given up: %s", inbound.pk, outcome.details)
        _receipt_given_up(inbound.pk, f"gave up: {outcome.code}: {outcome.details}")
        return ReceiptResult("gave_up", inbound.pk, code=outcome.code)
    delay = retry_delay(
        retries,
        base=float(conf.get("META_SEND_RETRY_BASE_SECONDS")),
        cap=float(conf.get("META_SEND_RETRY_MAX_SECONDS")),
        min_delay=outcome.min_delay,
    )
    return ReceiptResult("retry", inbound.pk, retry_in=delay, code=outcome.code)
