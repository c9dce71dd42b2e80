"""Session lifecycle writes: idle expiry (sweep and lazy), retention.

A handed-over conversation belongs to a human: it never expires and never gets the bot's
"conversation closed" text (hand-over and hand-back are in flows/services/handover.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flows import selectors
from flows.engine import DEFAULT_TEXTS, render
from flows.models import ConversationSession, SessionStatus
from flows.services.config import engine_options
from flows.services.state import (
    CUSTOMER_WINDOW,
    contact_state_lock,
    reply_number,
    window_open,
)
from meta_integration.messages import MessageValidationError, text_message
from meta_integration.models import Contact, WhatsAppNumber
from meta_integration.services import outbound_message_create
from whatsappcrm_backend.celery import Priority

logger = logging.getLogger(__name__)

__all__ = ["CUSTOMER_WINDOW"]
SWEEP_BATCH = 500


def idle_timeout_seconds(flow: dict[str, Any] | None) -> int:
    if flow and flow.get("idle_timeout_seconds"):
        return int(flow["idle_timeout_seconds"])
    return int(getattr(settings, "SESSION_IDLE_TIMEOUT", 300))


def contact_fields(contact: Contact) -> dict[str, Any]:
    """The contact as flows see it: placeholders may use name, profile_name and wa_id."""
    return {
        "id": contact.pk,
        "wa_id": contact.wa_id,
        "profile_name": contact.profile_name,
        "name": contact.profile_name,
    }


def timeout_message_send(
    *,
    contact: Contact,
    session_id: int,
    context: dict[str, Any],
    template: str,
    now: datetime,
    check_window: bool,
    number: WhatsAppNumber | None = None,
) -> bool:
    """Queue the timeout message once per session (key session-timeout:<id>).

    It leaves from `number` (the number the customer wrote to; looked up when not given).

    Priority REPLY, not MAINTENANCE: it is customer-visible and must keep its place in the
    conversation. On the lazy path it is followed at once by the reply to the message that
    found the session expired; a lower priority would let that reply overtake it ("Main menu"
    before "this conversation was closed"). Timeout messages are few, so they cannot starve
    anything.
    """
    if contact.blocked:
        return False
    if contact.needs_human:
        # A human has the conversation: the bot's "closed" text would land in the middle of it.
        logger.info(
            "session %s: contact %s is handed over, no timeout message", session_id, contact.pk
        )
        return False
    number = number or reply_number(contact)
    if check_window and not window_open(contact=contact, number=number, now=now):
        logger.info(
            "session %s expired outside the 24 h window of contact %s: no timeout message",
            session_id,
            contact.pk,
        )
        return False
    body = render(
        template or engine_options().text("timeout"),
        contact=contact_fields(contact),
        context=context,
    )
    try:
        message = text_message(body[:4096])
    except MessageValidationError:
        message = text_message(DEFAULT_TEXTS["timeout"])  # an override too long for Meta
    outbound_message_create(
        contact=contact,
        number=number,
        idempotency_key=f"session-timeout:{session_id}",
        message=message,
        priority=Priority.REPLY,
    )
    return True


@transaction.atomic
def session_expire(
    *,
    session_id: int,
    now: datetime | None = None,
    reason: str = "idle timeout",
    only_if_due: bool = True,
) -> bool:
    """Expire one active session and queue its timeout message; False if it moved on.

    Takes the contact's lock first (as the flow task does), then a conditional update: a
    message that refreshed the session meanwhile, or another sweeper, makes this a no-op. A
    contact handed over to a human never expires: its active session becomes handed over.
    """
    now = now or timezone.now()
    contact_id = (
        ConversationSession.objects.filter(pk=session_id)
        .values_list("contact_id", flat=True)
        .first()
    )
    if contact_id is None:
        return False
    state = contact_state_lock(contact_id)
    if state is None:
        return False
    contact = state.contact
    if contact.needs_human:
        ConversationSession.objects.filter(pk=session_id, status=SessionStatus.ACTIVE).update(
            status=SessionStatus.HANDED_OVER, ended_reason="handover"
        )
        return False
    due = ConversationSession.objects.filter(pk=session_id, status=SessionStatus.ACTIVE)
    if only_if_due:
        due = due.filter(expires_at__lte=now)
    if not due.update(status=SessionStatus.EXPIRED, ended_at=now, ended_reason=reason[:64]):
        return False
    session = ConversationSession.objects.select_related("flow").get(pk=session_id)
    timeout_message_send(
        contact=contact,
        session_id=session.pk,
        context=session.context,
        template=session.flow.timeout_message if session.flow else "",
        now=now,
        check_window=True,
    )
    logger.info("session %s of contact %s expired (%s)", session_id, contact_id, reason)
    return True


def sessions_expire_idle(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> int:
    """Expire every active session past expires_at (each in its own short transaction)."""
    now = now or timezone.now()
    expired = 0
    for session_id in selectors.expired_session_ids(now=now, limit=limit):
        if session_expire(session_id=session_id, now=now, reason="idle timeout"):
            expired += 1
    return expired


def sessions_prune(
    *,
    now: datetime | None = None,
    retention_days: int | None = None,
    batch_size: int = 1000,
    max_batches: int = 100,
) -> int:
    """Delete sessions ended more than the retention period ago, in small batches."""
    now = now or timezone.now()
    days = (
        retention_days
        if retention_days is not None
        else int(getattr(settings, "FLOWS_SESSION_RETENTION_DAYS", 30))
    )
    cutoff = now - timedelta(days=days)
    deleted = 0
    for _ in range(max_batches):
        ids = list(
            ConversationSession.objects.filter(ended_at__lt=cutoff).values_list("id", flat=True)[
                :batch_size
            ]
        )
        if not ids:
            break
        deleted += ConversationSession.objects.filter(pk__in=ids).delete()[0]
    return deleted
