"""Settlement notifications: text inside the 24-hour window, the template outside, once, BULK."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from football_data_app.models import BetTicket
from football_data_app.services.notifications import ticket_notify_settled
from meta_integration.models import ConversationWindow, OutboundMessage
from tests.football_data_app.betting_factories import funded_wallet, new_contact
from whatsappcrm_backend.celery import Priority

pytestmark = pytest.mark.django_db


def settled_ticket(*, last_inbound_ago: timedelta, status="won", payout="25.00") -> BetTicket:
    seen = timezone.now() - last_inbound_ago
    contact = new_contact(last_inbound_at=seen)
    # The per-(number, contact) window, for when meta_integration reads it.
    ConversationWindow.objects.create(number=contact.number, contact=contact, last_inbound_at=seen)
    funded_wallet(contact)
    return BetTicket.objects.create(
        contact=contact,
        kind="single",
        stake=Decimal("10"),
        status=status,
        payout=Decimal(payout),
        settled_at=timezone.now(),
    )


def test_inside_the_window_a_text_at_bulk_priority(django_capture_on_commit_callbacks):
    ticket = settled_ticket(last_inbound_ago=timedelta(hours=2))
    with django_capture_on_commit_callbacks() as callbacks:
        assert ticket_notify_settled(ticket_id=ticket.pk) == "created"
    row = OutboundMessage.objects.get(idempotency_key=f"ticket:{ticket.pk}:settled")
    assert row.contact_id == ticket.contact_id
    assert row.priority == Priority.BULK
    assert row.message_type == "text"
    assert row.payload["text"]["body"].startswith(f"🎟️ Ticket #{ticket.pk} is settled: won.")
    assert "25.00 has been paid" in row.payload["text"]["body"]
    assert len(callbacks) == 1  # the send task, after commit
    ticket.refresh_from_db()
    assert ticket.notified_at is not None


def test_outside_the_window_the_approved_template():
    ticket = settled_ticket(last_inbound_ago=timedelta(hours=30), status="void", payout="10.00")
    assert ticket_notify_settled(ticket_id=ticket.pk) == "created"
    row = OutboundMessage.objects.get(idempotency_key=f"ticket:{ticket.pk}:settled")
    assert row.message_type == "template"
    template = row.payload["template"]
    assert template["name"] == "ticket_settled"
    assert template["language"]["code"] == "en"
    params = [p["text"] for p in template["components"][0]["parameters"]]
    assert params == [str(ticket.pk), "void (stake refunded)", "10.00"]
    assert row.priority == Priority.BULK


def test_created_once_whatever_runs_twice():
    ticket = settled_ticket(last_inbound_ago=timedelta(hours=1))
    assert ticket_notify_settled(ticket_id=ticket.pk) == "created"
    assert ticket_notify_settled(ticket_id=ticket.pk) == "already"
    # Even with the claim undone (a rolled-back claim), the idempotency key holds.
    BetTicket.objects.filter(pk=ticket.pk).update(notified_at=None)
    assert ticket_notify_settled(ticket_id=ticket.pk) == "already"
    assert OutboundMessage.objects.filter(contact=ticket.contact).count() == 1


def test_an_open_ticket_is_not_notified():
    contact = new_contact()
    ticket = BetTicket.objects.create(contact=contact, kind="single", stake=Decimal("1"))
    assert ticket_notify_settled(ticket_id=ticket.pk) == "not_settled"
    assert not OutboundMessage.objects.exists()
    ticket.refresh_from_db()
    assert ticket.notified_at is None
