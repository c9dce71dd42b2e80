"""Idle timeout with controlled time: expired by the sweep, expired lazily, never twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_redis import get_redis_connection

from flows.models import ConversationSession, SessionStatus
from flows.services import handover_resolve, sessions_expire_idle, sessions_prune
from flows.tasks import cleanup_idle_conversations_task, prune_ended_sessions_task
from meta_integration.models import OutboundMessage
from tests.factories import make_contact, make_inbound
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
            "config": {
                "prompt": {"type": "text", "body": "City, {{ context.name }}?"},
                "expect": "text",
            },
        },
    ],
    is_default=True,
    timeout_message="Bye {{ context.name }}, closed for inactivity.",
)


@pytest.fixture
def menu(load_flows):
    load_flows(MENU)


def timeout_rows():
    return OutboundMessage.objects.filter(idempotency_key__startswith="session-timeout:")


def test_expires_at_follows_the_setting_and_the_per_flow_override(load_flows, say, settings):
    settings.SESSION_IDLE_TIMEOUT = 120
    load_flows(
        MENU,
        flow(
            "slow",
            [{**MENU["steps"][0], "transitions": []}],
            trigger_keywords=["slow"],
            idle_timeout_seconds=3600,
        ),
    )
    t0 = timezone.now()
    say(make_contact("1"), "hi", received_at=t0)
    say(make_contact("2"), "slow", received_at=t0)
    sessions = {s.flow.name: s for s in ConversationSession.objects.select_related("flow")}
    assert sessions["menu"].expires_at == t0 + timedelta(seconds=120)
    assert sessions["slow"].expires_at == t0 + timedelta(seconds=3600)


def test_sweep_expires_due_sessions_once_and_sends_the_timeout_message(menu, say):
    t0 = timezone.now()
    contact = make_contact()
    say(contact, "hi", received_at=t0)
    say(contact, "Ann", received_at=t0 + timedelta(seconds=10))
    session = ConversationSession.objects.get()
    assert sessions_expire_idle(now=t0 + timedelta(seconds=309)) == 0  # not yet due
    assert sessions_expire_idle(now=t0 + timedelta(seconds=311)) == 1
    session.refresh_from_db()
    assert (session.status, session.ended_reason) == (SessionStatus.EXPIRED, "idle timeout")
    [message] = timeout_rows()
    assert message.idempotency_key == f"session-timeout:{session.pk}"
    assert message.text == "Bye Ann, closed for inactivity."
    assert sessions_expire_idle(now=t0 + timedelta(seconds=400)) == 0
    assert timeout_rows().count() == 1


def test_sweep_leaves_a_session_with_a_waiting_message_to_the_flow_task(menu, say):
    t0 = timezone.now()
    contact = make_contact()
    say(contact, "hi", received_at=t0)
    make_inbound(contact, "Ann")  # arrived in time, still queued
    assert sessions_expire_idle(now=t0 + timedelta(seconds=400)) == 0
    assert ConversationSession.objects.get().status == SessionStatus.ACTIVE


def test_message_after_expiry_but_before_the_sweep_expires_then_starts_fresh(menu, say):
    t0 = timezone.now()
    contact = make_contact()
    say(contact, "hi", received_at=t0)
    old = ConversationSession.objects.get()
    late = say(contact, "Ann", received_at=t0 + timedelta(seconds=301))
    old.refresh_from_db()
    assert old.status == SessionStatus.EXPIRED
    rows = list(OutboundMessage.objects.order_by("id").values_list("idempotency_key", "text"))
    # The timeout message first (same key as the sweep would use), then the fresh start.
    assert rows[-2:] == [
        (f"session-timeout:{old.pk}", "Bye , closed for inactivity."),
        (f"{late.wamid}:0", "Name?"),
    ]
    new = ConversationSession.objects.get(status=SessionStatus.ACTIVE)
    assert new.pk != old.pk and new.current_step.name == "ask"
    assert sessions_expire_idle(now=t0 + timedelta(seconds=302)) == 0
    assert timeout_rows().count() == 1


def test_a_message_in_time_but_processed_late_continues_the_session(menu, say):
    t0 = timezone.now()
    contact = make_contact()
    say(contact, "hi", received_at=t0)
    inbound = say(
        contact, "Ann", received_at=t0 + timedelta(seconds=299), now=t0 + timedelta(seconds=900)
    )
    assert reply_texts(inbound) == ["City, Ann?"]
    assert not timeout_rows().exists()


def test_no_timeout_message_outside_the_24_hour_window(menu, say, settings):
    settings.SESSION_IDLE_TIMEOUT = 2 * 24 * 3600
    t0 = timezone.now()
    contact = make_contact()
    say(contact, "hi", received_at=t0)
    contact.last_inbound_at = t0
    contact.save()
    assert sessions_expire_idle(now=t0 + timedelta(days=3)) == 1
    assert not timeout_rows().exists()


def test_cleanup_task_returns_a_small_dict_and_skips_when_another_run_holds_the_lock(menu, say):
    t0 = timezone.now() - timedelta(hours=1)
    say(make_contact(), "hi", received_at=t0)
    lock = get_redis_connection("default").lock("lock:cleanup_idle_conversations_task", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert cleanup_idle_conversations_task() == {"skipped": True}
    finally:
        lock.release()
    assert cleanup_idle_conversations_task() == {"expired": 1}


def test_prune_deletes_only_sessions_ended_before_the_retention_period(menu, say, settings):
    settings.FLOWS_SESSION_RETENTION_DAYS = 30
    now = timezone.now()
    contact = make_contact()
    _old, recent, open_session = (
        ConversationSession.objects.create(
            contact=contact, status=SessionStatus.COMPLETED, ended_at=now - timedelta(days=31)
        ),
        ConversationSession.objects.create(
            contact=contact, status=SessionStatus.EXPIRED, ended_at=now - timedelta(days=29)
        ),
        ConversationSession.objects.create(
            contact=contact, status=SessionStatus.HANDED_OVER, started_at=now - timedelta(days=90)
        ),
    )
    assert sessions_prune(now=now, batch_size=1) == 1
    assert set(ConversationSession.objects.values_list("pk", flat=True)) == {
        recent.pk,
        open_session.pk,
    }
    assert prune_ended_sessions_task() == {"deleted": 0}


def test_handover_resolve_closes_the_session_and_lifts_the_silence(load_flows, say):
    load_flows(
        flow(
            "h",
            [{"name": "h", "type": "handover", "config": {"message": "A human will answer."}}],
            is_default=True,
        )
    )
    contact = make_contact()
    say(contact, "help")
    assert contact.needs_human
    assert reply_texts(say(contact, "hello?")) == []
    assert handover_resolve(contact_id=contact.pk, resolved_by="ops") == 1
    session = ConversationSession.objects.get()
    assert (session.status, session.ended_reason) == (SessionStatus.HANDED_OVER, "resolved by ops")
    assert session.ended_at is not None
    assert reply_texts(say(contact, "hi again")) == ["A human will answer."]
