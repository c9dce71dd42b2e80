"""The demo flows, walked end to end through the services (as the flow task runs them)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from flows.actions import ActionResult, register, registered_actions, unregister
from flows.demo import load_demo
from flows.models import ConversationSession, Flow, SessionStatus, Step, Transition
from meta_integration.models import OutboundMessage
from tests.factories import make_contact
from tests.flows.conftest import replies_to, reply_texts

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    return load_demo()


def test_load_demo_is_idempotent(demo):
    counts = (Flow.objects.count(), Step.objects.count(), Transition.objects.count())
    assert load_demo() == {
        "flows": 3,
        "created": [],
        "updated": ["main_menu", "lead_capture", "support"],
    }
    assert (Flow.objects.count(), Step.objects.count(), Transition.objects.count()) == counts
    assert demo["created"] == ["main_menu", "lead_capture", "support"]


def test_every_message_gets_a_reply_and_the_menu_gives_up_politely(demo, say):
    contact = make_contact()
    first = say(contact, "good morning")
    [menu] = replies_to(first)
    assert menu.idempotency_key == f"{first.wamid}:0"
    assert (
        menu.payload["interactive"]["body"]["text"]
        == "Hi Sheena Nelson! How can we help you today?"
    )
    assert reply_texts(say(contact, "pizza")) == [
        "Please tap one of the buttons below.\n\nHi Sheena Nelson! How can we help you today?"
    ]
    assert reply_texts(say(contact, "pizza!!")) == [
        'Sorry, I didn\'t get that. Send "menu" any time to see the options again.'
    ]
    assert reply_texts(say(contact, "menu")) == ["Hi Sheena Nelson! How can we help you today?"]
    for text in ["📷", "?", "cancel", "cancel"]:
        inbound = say(contact, text)
        assert OutboundMessage.objects.filter(idempotency_key=f"{inbound.wamid}:0").exists(), text


def test_main_menu_to_lead_capture_with_email_validation_and_confirmation(demo, say):
    contact = make_contact()
    say(contact, "hi")
    assert reply_texts(say(contact, "Get a quote", reply_id="quote")) == [
        "Great! What's your name?"
    ]
    assert reply_texts(say(contact, "Jane {{ context.email }}")) == [
        "Thanks, Jane {{ context.email }}! What's your email address?"
    ]
    assert reply_texts(say(contact, "jane at example")) == [
        "That doesn't look like an email address (for example: jane@example.com).\n\n"
        "Thanks, Jane {{ context.email }}! What's your email address?"
    ]
    assert reply_texts(say(contact, "jane@Example.com")) == [
        "Please confirm: Jane {{ context.email }}, jane@example.com. Is that right?"
    ]
    # "Change email" loops back to the email question; then confirm.
    assert reply_texts(say(contact, "Change email", reply_id="change"))[0].startswith(
        "Thanks, Jane"
    )
    say(contact, "j@example.org")
    done = say(contact, "Yes", reply_id="yes")
    assert reply_texts(done) == [
        "Thank you, Jane {{ context.email }}! Our team will email you at j@example.org within one "
        "business day."
    ]
    lead = ConversationSession.objects.get(flow__name="lead_capture")
    assert lead.status == SessionStatus.COMPLETED
    assert lead.context == {
        "name": "Jane {{ context.email }}",
        "email": "j@example.org",
        "confirmed": "yes",
    }
    assert (
        ConversationSession.objects.get(flow__name="main_menu").ended_reason
        == "started lead_capture"
    )


def test_support_hands_over_goes_silent_and_answers_again_after_resolve_in_admin(
    demo, say, admin_client
):
    contact = make_contact()
    assert reply_texts(say(contact, "I need HELP")) == [
        "Sorry to hear you need help, Sheena Nelson. Please describe the problem in one message."
    ]
    assert reply_texts(say(contact, "My order never arrived")) == [
        "Thanks! I've passed this to our team; a person will reply here shortly."
    ]
    assert contact.needs_human
    session = ConversationSession.objects.get(status=SessionStatus.HANDED_OVER)
    assert session.context == {"problem": "My order never arrived"}
    silent = say(contact, "hello??")
    assert silent.processed_at is not None and reply_texts(silent) == []
    assert reply_texts(say(contact, "menu")) == []  # even commands: a human has the conversation

    response = admin_client.post(
        reverse("admin:flows_conversationsession_changelist"),
        {"action": "resolve_handover", "_selected_action": [str(session.pk)]},
    )
    assert response.status_code == 302
    contact.refresh_from_db()
    assert not contact.needs_human
    session.refresh_from_db()
    assert session.ended_at is not None and session.ended_reason == "resolved by admin"
    assert reply_texts(say(contact, "thanks!")) == ["Hi Sheena Nelson! How can we help you today?"]


def test_football_entry_points_say_coming_soon_without_the_action(demo, say):
    # football_data_app registers football.fixtures; without it the error branch answers.
    original = registered_actions()["football.fixtures"]
    unregister("football.fixtures")
    try:
        contact = make_contact()
        say(contact, "hi")
        assert reply_texts(say(contact, "Football", reply_id="football")) == [
            "Football: what would you like to see?"
        ]
        assert reply_texts(say(contact, "Fixtures", reply_id="fixtures")) == [
            '⚽ Fixtures and tickets are coming soon! Send "menu" any time to see the options '
            "again."
        ]
    finally:
        register("football.fixtures", replace=True)(original)


def test_football_entry_points_run_a_registered_action(demo, say):
    original = registered_actions()["football.my_tickets"]

    @register("football.my_tickets", replace=True)
    def my_tickets(call):
        return ActionResult(
            context={"count": 1},
            messages=[{"type": "text", "body": f"1 open ticket for {call.contact['wa_id']}"}],
        )

    try:
        contact = make_contact()
        say(contact, "hi")
        say(contact, "Football", reply_id="football")
        inbound = say(contact, "My tickets", reply_id="tickets")
    finally:
        register("football.my_tickets", replace=True)(original)
    assert reply_texts(inbound) == [f"1 open ticket for {contact.wa_id}"]
    assert ConversationSession.objects.get(
        flow__name="main_menu", status=SessionStatus.COMPLETED
    ).context["tickets"] == {"count": 1}
