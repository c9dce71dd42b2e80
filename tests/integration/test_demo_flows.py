"""A customer walks the demo flows through the webhook; the sandbox shows the replies in order."""

from __future__ import annotations

import pytest
from django.utils import timezone

from flows.models import ConversationSession
from flows.tasks import cleanup_idle_conversations_task
from meta_integration.models import Contact, InboundMessage
from tests.conftest import wait_for
from tests.factories import new_wamid
from tests.integration.conftest import button_reply_event, inbound_event, message_text

pytestmark = pytest.mark.worker


def converse(hot_path, wa_id: str, event: dict) -> list[str]:
    """Send one message, wait for its replies, return their texts in order."""
    wamid = event["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert hot_path.post(event).status_code == 200
    hot_path.wait_reply(wamid)
    return [message_text(m) for m in hot_path.replies_to(wamid)]


def test_lead_capture_through_the_webhook(hot_path):
    hot_path.start_workers()
    wa_id = "15550002001"

    def say(text: str) -> list[str]:
        return converse(hot_path, wa_id, inbound_event(wa_id, text, wamid=new_wamid(), name="Ann"))

    def tap(reply_id: str, title: str) -> list[str]:
        return converse(hot_path, wa_id, button_reply_event(wa_id, reply_id, title, new_wamid()))

    assert say("hi") == ["Hi Ann! How can we help you today?"]
    assert tap("quote", "Get a quote") == ["Great! What's your name?"]
    assert say("Zoë {{ context.email }}") == [
        "Thanks, Zoë {{ context.email }}! What's your email address?"
    ]
    [retry] = say("not an email")
    assert "email" in retry
    [confirm] = say("zoe@example.com")
    assert confirm.startswith("Please confirm: Zoë {{ context.email }}, zoe@example.com.")
    [thanks] = tap("yes", "Yes")
    assert thanks.startswith("Thank you, Zoë {{ context.email }}! Our team will email you at")

    texts = [message_text(m) for m in hot_path.replies(wa_id)]
    assert texts[0] == "Hi Ann! How can we help you today?"
    assert texts[-1] == thanks  # the sandbox received every reply in conversation order


def test_support_hands_over_and_the_bot_goes_silent(hot_path):
    hot_path.start_workers()
    wa_id = "15550002002"
    converse(hot_path, wa_id, inbound_event(wa_id, "hi", wamid=new_wamid()))
    converse(hot_path, wa_id, button_reply_event(wa_id, "support", "Support", new_wamid()))
    [handover] = converse(hot_path, wa_id, inbound_event(wa_id, "my bet is missing", new_wamid()))
    assert "a person will reply" in handover
    assert Contact.objects.get(wa_id=wa_id).needs_human

    before = len(hot_path.replies(wa_id))
    silent = new_wamid()
    assert hot_path.post(inbound_event(wa_id, "hello?", wamid=silent)).status_code == 200
    from tests.conftest import wait_for

    wait_for(
        lambda: InboundMessage.objects.filter(wamid=silent).exclude(processed_at=None).exists()
    )
    assert len(hot_path.replies(wa_id)) == before


def test_an_idle_session_ends_with_the_timeout_message(hot_path):
    hot_path.start_workers(env={"SESSION_IDLE_TIMEOUT": "1"})
    wa_id = "15550002003"
    converse(hot_path, wa_id, inbound_event(wa_id, "hi", wamid=new_wamid()))
    session = ConversationSession.objects.get(contact__wa_id=wa_id)
    assert session.status == "active"
    wait_for(lambda: session.expires_at < timezone.now(), timeout=5)

    assert cleanup_idle_conversations_task.apply().get() == {"expired": 1}
    key = f"session-timeout:{session.id}"
    [sent] = wait_for(
        lambda: [m for m in hot_path.replies(wa_id) if m["biz_opaque_callback_data"] == key]
    )
    assert "closed after a period of inactivity" in message_text(sent)
    session.refresh_from_db()
    assert session.status == "expired" and session.ended_reason == "idle timeout"


def _list_reply_event(wa_id: str, reply_id: str, title: str) -> dict:
    event = inbound_event(wa_id, "", wamid=new_wamid())
    message = event["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message["type"] = "interactive"
    message["interactive"] = {"type": "list_reply", "list_reply": {"id": reply_id, "title": title}}
    return event


def test_football_bet_through_the_webhook_then_settled_and_notified(
    hot_path, celery_worker_factory
):
    from decimal import Decimal

    from football_data_app.models import BetTicket, Wallet
    from tests.football_data_app.betting_factories import finish, fixture_with_markets
    from whatsappcrm_backend.celery import app

    fixture, _ = fixture_with_markets()
    hot_path.start_workers()
    wa_id = "15550002011"

    def say(text: str) -> list[str]:
        return converse(hot_path, wa_id, inbound_event(wa_id, text, wamid=new_wamid()))

    def tap(reply_id: str, title: str) -> list[str]:
        return converse(hot_path, wa_id, button_reply_event(wa_id, reply_id, title, new_wamid()))

    say("hi")
    assert tap("football", "Football") == ["Football: what would you like to see?"]
    listing = converse(hot_path, wa_id, _list_reply_event(wa_id, "fixtures", "Fixtures"))
    assert listing[0] == "Pick a fixture to see its odds (home / draw / away)."
    [odds] = converse(hot_path, wa_id, _list_reply_event(wa_id, "1", fixture.home_team.name))
    assert odds.endswith("Home 2.00 · Draw 3.20 · Away 3.50")
    [pick] = tap("home", "Home")
    assert pick.endswith("Your balance: 100.00 USD.")
    tap("single", "Bet on this")
    [placed] = say("5")
    ticket = BetTicket.objects.get(contact__wa_id=wa_id)
    assert placed.startswith(f"✅ Ticket #{ticket.pk} placed (single), stake 5.00.")

    # The fixture finishes; the settlement pipeline runs on a football worker; the payout
    # enters the ledger and the customer's notification reaches the sandbox.
    finish(fixture, 2, 0)
    celery_worker_factory(queues="football_data", concurrency=1)
    app.send_task("settle_fixture_pipeline_task", args=[fixture.pk])

    def settled() -> list[str]:
        return [message_text(m) for m in hot_path.replies(wa_id) if "settled" in message_text(m)]

    [notice] = wait_for(settled, timeout=60)
    assert notice.startswith(f"🎟️ Ticket #{ticket.pk} is settled: won. 10.00 has been paid")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.payout) == ("won", Decimal("10.00"))
    assert Wallet.objects.get(contact__wa_id=wa_id).balance == Decimal("105.00")
