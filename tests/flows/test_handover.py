"""Hand-over for real: the bot is silent, the session never expires and no timeout text goes out
while a human has the conversation; hand-back resumes the flows; unanswered ones are flagged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from flows.models import ContactState, ConversationSession, SessionStatus
from flows.schedules import SCHEDULES
from flows.services import (
    HandoverError,
    agent_reply_send,
    handover_assign,
    handover_resolve,
    handover_start,
    handovers_flag_unanswered,
    session_expire,
    sessions_expire_idle,
    timeout_message_send,
)
from flows.tasks import cleanup_idle_conversations_task, flag_unanswered_handovers_task
from meta_integration.models import Contact, OutboundMessage
from tests.factories import make_contact
from tests.flows.conftest import flow, reply_texts

pytestmark = pytest.mark.django_db

MENU = flow(
    "menu",
    [
        {
            "name": "ask",
            "type": "question",
            "config": {
                "prompt": {"type": "text", "body": "Name?"},
                "expect": "text",
                "save_as": "name",
            },
            "transitions": [{"to": "again", "condition": {}}],
        },
        {
            "name": "again",
            "type": "question",
            "config": {"prompt": {"type": "text", "body": "City?"}, "expect": "text"},
        },
    ],
    is_default=True,
    timeout_message="Closed for inactivity.",
)
HANDOVER = flow(
    "help",
    [{"name": "h", "type": "handover", "config": {"message": "A human will answer."}}],
    trigger_keywords=["help"],
    priority=10,
)


@pytest.fixture
def menu(load_flows):
    load_flows(MENU, HANDOVER)


def bot_rows():
    return OutboundMessage.objects.exclude(idempotency_key__startswith="agent:")


def test_an_operator_hand_over_silences_the_bot_and_the_idle_sweep(menu, say, settings):
    settings.SESSION_IDLE_TIMEOUT = 60
    t0 = timezone.now()
    contact = make_contact()
    say(contact, "hi", received_at=t0)  # an active session waiting at "Name?"
    assert handover_start(contact_id=contact.pk, now=t0, reason="customer asked") is True
    session = ConversationSession.objects.get()
    assert session.status == SessionStatus.HANDED_OVER and session.ended_at is None
    contact.refresh_from_db()
    assert contact.needs_human
    state = ContactState.objects.get(pk=contact.pk)
    assert (state.handed_over_at, state.handover_reason) == (t0, "customer asked")

    before = bot_rows().count()
    silent = say(contact, "Ann", received_at=t0 + timedelta(seconds=10))
    assert silent.processed_at is not None and reply_texts(silent) == []
    # Long past the idle timeout: the sweep neither expires it nor sends "closed".
    assert sessions_expire_idle(now=t0 + timedelta(hours=2)) == 0
    assert cleanup_idle_conversations_task() == {"expired": 0}
    assert session_expire(session_id=session.pk, now=t0 + timedelta(hours=2)) is False
    assert bot_rows().count() == before
    assert ConversationSession.objects.get().status == SessionStatus.HANDED_OVER

    assert handover_resolve(contact_id=contact.pk, resolved_by="ops") == 1
    assert not ContactState.objects.get(pk=contact.pk).handed_over_at
    assert reply_texts(say(contact, "hello again")) == ["Name?"]


def test_needs_human_set_on_the_contact_directly_also_stops_expiry_and_timeout(menu, say):
    t0 = timezone.now()
    contact = make_contact()
    say(contact, "hi", received_at=t0)
    session = ConversationSession.objects.get()
    Contact.objects.filter(pk=contact.pk).update(needs_human=True)  # the contact admin
    contact.refresh_from_db()
    later = t0 + timedelta(hours=1)
    assert sessions_expire_idle(now=later) == 0
    # Even called directly (the admin's "expire now"), a handed-over contact gets no text.
    assert session_expire(session_id=session.pk, now=later, only_if_due=False) is False
    assert not timeout_message_send(
        contact=contact,
        session_id=session.pk,
        context={},
        template="",
        now=later,
        check_window=False,
    )
    assert not OutboundMessage.objects.filter(idempotency_key__startswith="session-timeout:")
    # The session follows the contact: handed over, and the time of the hand-over is recorded.
    assert ConversationSession.objects.get().status == SessionStatus.HANDED_OVER
    say(contact, "anyone?")
    assert ContactState.objects.get(pk=contact.pk).handed_over_at is not None


def test_the_hand_over_step_records_the_hand_over_and_gets_no_timeout(menu, say, settings):
    settings.SESSION_IDLE_TIMEOUT = 60
    t0 = timezone.now()
    contact = make_contact()
    assert reply_texts(say(contact, "help", received_at=t0, now=t0)) == ["A human will answer."]
    state = ContactState.objects.get(pk=contact.pk)
    assert state.handed_over_at == t0 and state.handover_reason == "flow hand-over step"
    assert reply_texts(say(contact, "menu")) == []  # even commands: a human has it
    assert sessions_expire_idle(now=t0 + timedelta(days=1)) == 0
    assert list(bot_rows().values_list("text", flat=True)) == ["A human will answer."]


def test_unanswered_hand_overs_are_flagged_after_the_alert_time(menu, say, settings):
    settings.FLOWS_HANDOVER_ALERT_SECONDS = 600
    t0 = timezone.now() - timedelta(hours=1)
    waiting, answered = make_contact(), make_contact("16505550000")
    for contact in (waiting, answered):
        handover_start(contact_id=contact.pk, now=t0)
    agent_reply_send(contact_id=answered.pk, token="token-answered", text="Hi, Ann here.")
    assert handovers_flag_unanswered(now=t0 + timedelta(seconds=599)) == 0
    assert handovers_flag_unanswered(now=t0 + timedelta(seconds=601)) == 1
    assert ContactState.objects.get(pk=waiting.pk).flagged_at == t0 + timedelta(seconds=601)
    assert ContactState.objects.get(pk=answered.pk).flagged_at is None
    assert handovers_flag_unanswered(now=t0 + timedelta(hours=2)) == 0  # flagged once
    assert flag_unanswered_handovers_task() == {"flagged": 0}
    # Answering a flagged hand-over takes the flag away.
    agent_reply_send(contact_id=waiting.pk, token="token-waiting", text="Sorry for the wait!")
    assert ContactState.objects.get(pk=waiting.pk).flagged_at is None
    assert "flag_unanswered_handovers_task" in {s["task"] for s in SCHEDULES}


def test_assign_only_to_active_staff(menu):
    contact = make_contact()
    users = get_user_model().objects
    staff = users.create_user("agent", is_staff=True)
    customer = users.create_user("someone", is_staff=False)
    handover_assign(contact_id=contact.pk, user_id=staff.pk)
    assert ContactState.objects.get(pk=contact.pk).assigned_to == staff
    with pytest.raises(HandoverError):
        handover_assign(contact_id=contact.pk, user_id=customer.pk)
    assert ContactState.objects.get(pk=contact.pk).assigned_to == staff  # unchanged
    handover_assign(contact_id=contact.pk, user_id=None)
    assert ContactState.objects.get(pk=contact.pk).assigned_to is None
