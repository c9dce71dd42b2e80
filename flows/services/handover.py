"""Humans in the conversation: hand-over, assignment, an agent's reply, hand-back, alerts.

While a contact is handed over (`Contact.needs_human`) the bot is silent: the flow task marks
its messages processed and answers nothing, its session is HANDED_OVER (never expired by the
idle sweeper), and no timeout text goes out. Every write here takes the contact's flows lock
(ContactState) first, like the flow task, so a message being processed finishes before the
conversation changes hands.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from flows.models import ContactState, ConversationSession, SessionStatus
from flows.services.state import contact_state_lock, reply_number, window_open
from meta_integration.messages import MessageValidationError, template_message, text_message
from meta_integration.models import Contact, MessageTemplate, OutboundMessage, TemplateStatus
from meta_integration.services import outbound_message_create
from whatsappcrm_backend.celery import Priority

logger = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
FLAG_BATCH = 500


class HandoverError(ValueError):
    """An operator action that cannot be done; the text says why (shown in the admin)."""


def state_mark_handed_over(*, state: ContactState, now: datetime, reason: str) -> None:
    """Record a hand-over on the (locked) state row and silence the bot on the contact."""
    if not state.contact.needs_human:
        Contact.objects.filter(pk=state.contact_id).update(needs_human=True)
        state.contact.needs_human = True
    if state.handed_over_at is None:
        state.handed_over_at = now
        state.handover_reason = reason[:200]
        state.agent_replied_at = None
        state.flagged_at = None
        state.save(
            update_fields=["handed_over_at", "handover_reason", "agent_replied_at", "flagged_at"]
        )


@transaction.atomic
def handover_start(
    *,
    contact_id: int,
    now: datetime | None = None,
    reason: str = "by an operator",
    assigned_to_id: int | None = None,
) -> bool:
    """Hand the conversation to a human. False if it already was (nothing changes then)."""
    now = now or timezone.now()
    state = contact_state_lock(contact_id)
    if state is None:
        raise HandoverError(f"contact {contact_id} does not exist")
    already = state.contact.needs_human and state.handed_over_at is not None
    state_mark_handed_over(state=state, now=now, reason=reason)
    if assigned_to_id is not None:
        _assign(state, assigned_to_id)
    # The active session stops where it is: HANDED_OVER is never swept, never timed out.
    ConversationSession.objects.filter(contact_id=contact_id, status=SessionStatus.ACTIVE).update(
        status=SessionStatus.HANDED_OVER, ended_reason="handover", last_activity_at=now
    )
    logger.info("contact %s handed over (%s)", contact_id, reason)
    return not already


@transaction.atomic
def handover_resolve(*, contact_id: int, now: datetime | None = None, resolved_by: str = "") -> int:
    """The operator is done: the bot answers this contact again. Returns sessions closed."""
    now = now or timezone.now()
    state = contact_state_lock(contact_id)
    if state is None:
        return 0
    Contact.objects.filter(pk=contact_id).update(needs_human=False)
    ContactState.objects.filter(pk=contact_id).update(
        handed_over_at=None,
        handover_reason="",
        assigned_to=None,
        agent_replied_at=None,
        flagged_at=None,
    )
    reason = f"resolved by {resolved_by}" if resolved_by else "resolved"
    closed = ConversationSession.objects.filter(
        contact_id=contact_id, status=SessionStatus.HANDED_OVER, ended_at__isnull=True
    ).update(ended_at=now, ended_reason=reason[:64])
    logger.info(
        "handover of contact %s resolved (%s); %s session(s) closed", contact_id, reason, closed
    )
    return closed


def _assign(state: ContactState, user_id: int | None) -> None:
    if user_id is not None:
        user_model = get_user_model()
        if not user_model.objects.filter(pk=user_id, is_staff=True, is_active=True).exists():
            raise HandoverError("a conversation is assigned to an active staff user only")
    state.assigned_to_id = user_id
    state.save(update_fields=["assigned_to"])


@transaction.atomic
def handover_assign(*, contact_id: int, user_id: int | None) -> None:
    """Assign the conversation to a staff user (None: unassign)."""
    state = contact_state_lock(contact_id)
    if state is None:
        raise HandoverError(f"contact {contact_id} does not exist")
    _assign(state, user_id)
    logger.info("conversation of contact %s assigned to user %s", contact_id, user_id)


def approved_templates(*, waba_id: str = "") -> list[MessageTemplate]:
    """The templates Meta lets us send (of the number's WABA when it names one)."""
    rows = MessageTemplate.objects.filter(status=TemplateStatus.APPROVED)
    if waba_id:
        rows = rows.filter(waba_id=waba_id)
    return list(rows.order_by("name", "language"))


@transaction.atomic
def agent_reply_send(
    *,
    contact_id: int,
    token: str,
    text: str = "",
    template_id: int | None = None,
    params: Sequence[str] = (),
    now: datetime | None = None,
) -> tuple[OutboundMessage, bool]:
    """An operator's reply, queued at REPLY priority from the number the customer wrote to.

    Free text only inside the customer's 24-hour window; outside it, an APPROVED template with
    exactly its parameters. `token` comes from the form (one per rendered form): the key
    `agent:<token>` makes a double submit send once. Returns (row, created).
    """
    now = now or timezone.now()
    if not TOKEN_RE.match(token or ""):
        raise HandoverError("the form has expired: reload the page and send again")
    state = contact_state_lock(contact_id)
    if state is None:
        raise HandoverError(f"contact {contact_id} does not exist")
    contact = state.contact
    if contact.blocked:
        raise HandoverError("this contact is blocked")
    number = reply_number(contact)
    text = (text or "").strip()
    if bool(text) == (template_id is not None):
        raise HandoverError("write a message or choose a template (one of the two)")
    try:
        if text:
            if not window_open(contact=contact, number=number, now=now):
                raise HandoverError(
                    "the customer's 24-hour window is closed: only an approved template can go"
                )
            message = text_message(text)
        else:
            template = MessageTemplate.objects.filter(
                pk=template_id, status=TemplateStatus.APPROVED
            ).first()
            if template is None:
                raise HandoverError("that template is not approved (any more)")
            values = [str(p).strip() for p in params]
            if len(values) != template.body_parameter_count or not all(values):
                raise HandoverError(
                    f"template {template.name} needs {template.body_parameter_count} "
                    "non-empty parameter(s)"
                )
            message = template_message(template.name, template.language, values or None)
    except MessageValidationError as exc:
        raise HandoverError(str(exc)) from exc
    outbound, created = outbound_message_create(
        contact=contact,
        number=number,
        idempotency_key=f"agent:{token}",
        message=message,
        priority=Priority.REPLY,
    )
    if created and state.handed_over_at is not None and state.agent_replied_at is None:
        # Answered: the hand-over is no longer waiting for a first reply.
        ContactState.objects.filter(pk=contact_id).update(agent_replied_at=now, flagged_at=None)
    if created:
        logger.info("agent reply %s queued for contact %s", outbound.pk, contact_id)
    return outbound, created


def handovers_flag_unanswered(*, now: datetime | None = None, limit: int = FLAG_BATCH) -> int:
    """Flag hand-overs nobody answered within FLOWS_HANDOVER_ALERT_SECONDS; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=int(getattr(settings, "FLOWS_HANDOVER_ALERT_SECONDS", 600)))
    ids = list(
        ContactState.objects.filter(
            handed_over_at__lte=cutoff,
            agent_replied_at__isnull=True,
            flagged_at__isnull=True,
            contact__needs_human=True,
        )
        .order_by("handed_over_at")
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return 0
    # Conditional: a reply or a hand-back that landed meanwhile is not flagged.
    flagged = ContactState.objects.filter(
        pk__in=ids, agent_replied_at__isnull=True, flagged_at__isnull=True
    ).update(flagged_at=now)
    for contact_id in ids:
        logger.warning("hand-over of contact %s unanswered since before %s", contact_id, cutoff)
    return flagged
