"""Settlement notifications: one outbound WhatsApp row per settled ticket, at BULK priority.

The ticket is claimed by a conditional update of `notified_at` (only one caller wins), and the
outbound row carries the idempotency key `ticket:<id>:settled`, so even a claim that rolled back
after the row was created cannot send twice. Inside the customer's 24-hour window the message
is text; outside it only an approved template may be sent (`ticket_settled`, language `en`,
body parameters: ticket id, result, payout).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from football_data_app.models import BetTicket, TicketStatus
from meta_integration import messages as builders
from meta_integration.services import outbound_message_create
from whatsappcrm_backend.celery import Priority

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "ticket_settled"
TEMPLATE_LANGUAGE = "en"
WINDOW = timedelta(hours=24)
RESULT_WORDS = {
    TicketStatus.WON: "won",
    TicketStatus.LOST: "lost",
    TicketStatus.VOID: "void (stake refunded)",
}


def _window_open(contact, now: datetime) -> bool:
    """The per-(number, contact) window when meta_integration offers it, else last_inbound_at."""
    try:
        from meta_integration.selectors import window_open
    except ImportError:
        last = contact.last_inbound_at
        return bool(last and now - last < WINDOW)
    return bool(window_open(contact_id=contact.pk, number_id=contact.number_id))


def settlement_message(ticket: BetTicket, *, window_open: bool) -> dict:
    result = RESULT_WORDS.get(ticket.status, ticket.status)
    payout = f"{ticket.payout or 0:.2f}"
    if not window_open:
        return builders.template_message(
            TEMPLATE_NAME, TEMPLATE_LANGUAGE, [ticket.pk, result, payout]
        )
    lines = [f"🎟️ Ticket #{ticket.pk} is settled: {result}."]
    if ticket.status == TicketStatus.VOID:
        lines.append(f"{payout} has been returned to your balance.")
    elif ticket.payout:
        lines.append(f"{payout} has been paid to your balance.")
    lines.append('Send "menu" to see fixtures and your tickets.')
    return builders.text_message(" ".join(lines))


@transaction.atomic
def ticket_notify_settled(*, ticket_id: int, now: datetime | None = None) -> str:
    """Create the notification once: "created", "already", or "not_settled"."""
    now = now or timezone.now()
    claimed = BetTicket.objects.filter(
        pk=ticket_id, settled_at__isnull=False, notified_at__isnull=True
    ).update(notified_at=now)
    if not claimed:
        exists = BetTicket.objects.filter(pk=ticket_id, notified_at__isnull=False).exists()
        return "already" if exists else "not_settled"
    ticket = BetTicket.objects.select_related("contact").get(pk=ticket_id)
    message = settlement_message(ticket, window_open=_window_open(ticket.contact, now))
    _, created = outbound_message_create(
        contact=ticket.contact,
        idempotency_key=f"ticket:{ticket.pk}:settled",
        message=message,
        priority=Priority.BULK,
    )
    return "created" if created else "already"
