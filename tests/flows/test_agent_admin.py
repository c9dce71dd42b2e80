"""The agent's view in the admin: waiting list, thread, reply box (free text or template), assign,
hand over and back, search, parked messages with replay; every action in the admin log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from flows.models import ContactState
from flows.services import handover_start, handovers_flag_unanswered
from meta_integration.models import (
    Contact,
    InboundMessage,
    MessageTemplate,
    OutboundMessage,
    OutboundStatus,
    TemplateStatus,
)
from tests.factories import make_contact, make_inbound
from whatsappcrm_backend.celery import Priority

pytestmark = pytest.mark.django_db

LIST = "admin:flows_conversation_changelist"


def page(contact: Contact) -> str:
    return reverse("admin:flows_conversation_change", args=[contact.pk])


def log_messages(contact: Contact) -> list[str]:
    return list(
        LogEntry.objects.filter(object_id=str(contact.pk))
        .order_by("id")
        .values_list("change_message", flat=True)
    )


@pytest.fixture
def template(db) -> MessageTemplate:
    return MessageTemplate.objects.create(
        waba_id="",
        name="order_update",
        language="en_US",
        status=TemplateStatus.APPROVED,
        body_parameter_count=2,
    )


def test_the_waiting_list_is_oldest_first_with_flagged_ones_marked(admin_client, settings):
    settings.FLOWS_HANDOVER_ALERT_SECONDS = 600
    now = timezone.now()
    newer = make_contact("111", profile_name="Newer Customer")
    older = make_contact("222", profile_name="Older Customer")
    make_contact("333", profile_name="Bot Customer")
    handover_start(contact_id=newer.pk, now=now - timedelta(minutes=1))
    handover_start(contact_id=older.pk, now=now - timedelta(hours=1))
    assert handovers_flag_unanswered(now=now) == 1
    html = admin_client.get(reverse(LIST)).content.decode()
    assert html.index("Older Customer") < html.index("Newer Customer")
    assert "Bot Customer" not in html  # not waiting for a human
    assert html.count("UNANSWERED") == 1
    flagged = admin_client.get(reverse(LIST), {"show": "flagged"}).content.decode()
    assert "Older Customer" in flagged and "Newer Customer" not in flagged
    assert "Bot Customer" in admin_client.get(reverse(LIST), {"show": "all"}).content.decode()
    assert "/admin/flows/conversation/" in admin_client.get(reverse("admin:index")).content.decode()


def test_the_thread_interleaves_messages_with_status_and_errors(admin_client):
    contact = make_contact()
    make_inbound(contact, "where is my order?")
    OutboundMessage.objects.create(
        contact=contact,
        idempotency_key="k1",
        message_type="text",
        payload={"type": "text", "text": {"body": "Looking into it"}},
        text="Looking into it",
        status=OutboundStatus.FAILED,
        error_code=131047,
        error_details="Re-engagement message",
    )
    make_inbound(contact, "hello??")
    html = admin_client.get(page(contact)).content.decode()
    first, reply, second = (
        html.index("where is my order?"),
        html.index("Looking into it"),
        html.index("hello??"),
    )
    assert first < reply < second
    assert "131047 Re-engagement message" in html and "failed" in html


def test_a_free_text_reply_inside_the_window_is_queued_once_and_logged(
    admin_client, django_capture_on_commit_callbacks
):
    contact = make_contact()  # last_inbound_at now: the window is open
    make_inbound(contact, "hi")
    handover_start(contact_id=contact.pk)
    post = {"op": "reply", "token": "a" * 32, "text": "Hello, Ann from support here."}
    with django_capture_on_commit_callbacks():
        response = admin_client.post(page(contact), post)
    assert response.status_code == 302
    [row] = OutboundMessage.objects.all()
    assert (row.text, row.priority, row.idempotency_key) == (
        "Hello, Ann from support here.",
        Priority.REPLY,
        "agent:" + "a" * 32,
    )
    admin_client.post(page(contact), post)  # a double submit of the same form
    assert OutboundMessage.objects.count() == 1
    assert ContactState.objects.get(pk=contact.pk).agent_replied_at is not None
    [entry] = LogEntry.objects.filter(change_message__startswith="Replied")
    assert entry.user.get_username() == "admin"
    assert entry.change_message == f"Replied (text), outbound {row.pk}."


def test_outside_the_window_only_an_approved_template_goes(admin_client, template):
    contact = make_contact(last_inbound_at=timezone.now() - timedelta(days=2))
    html = admin_client.get(page(contact)).content.decode()
    assert "window <strong>closed</strong>" in html and "order_update (en_US)" in html

    refused = admin_client.post(page(contact), {"op": "reply", "token": "b" * 32, "text": "Hi!"})
    assert refused.status_code == 200
    assert "window is closed" in refused.content.decode()
    wrong = {"op": "reply", "token": "b" * 32, "template": template.pk, "param_1": "Ann"}
    assert "exactly 2 parameter" in admin_client.post(page(contact), wrong).content.decode()
    MessageTemplate.objects.filter(pk=template.pk).update(status=TemplateStatus.PAUSED)
    paused = {**wrong, "param_2": "shipped"}
    assert admin_client.post(page(contact), paused).status_code == 200
    assert not OutboundMessage.objects.exists()  # a wrong form changes nothing

    MessageTemplate.objects.filter(pk=template.pk).update(status=TemplateStatus.APPROVED)
    assert admin_client.post(page(contact), paused).status_code == 302
    [row] = OutboundMessage.objects.all()
    assert row.message_type == "template"
    assert row.payload["template"]["name"] == "order_update"
    params = row.payload["template"]["components"][0]["parameters"]
    assert [p["text"] for p in params] == ["Ann", "shipped"]


def test_assign_hand_over_and_hand_back_are_logged(admin_client, say_hi_flow):
    contact = make_contact()
    agent = get_user_model().objects.create_user("agent", is_staff=True)
    response = admin_client.post(page(contact), {"op": "handover", "reason": "VIP"})
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.needs_human
    assert (
        admin_client.post(page(contact), {"op": "assign", "assigned_to": agent.pk}).status_code
        == 302
    )
    assert ContactState.objects.get(pk=contact.pk).assigned_to == agent
    bad = admin_client.post(page(contact), {"op": "assign", "assigned_to": 999999})
    assert bad.status_code == 200 and ContactState.objects.get(pk=contact.pk).assigned_to == agent
    assert admin_client.post(page(contact), {"op": "handback"}).status_code == 302
    contact.refresh_from_db()
    assert not contact.needs_human
    assert log_messages(contact) == [
        "Handed over: VIP.",
        "Assigned to agent.",
        "Handed back to the bot.",
    ]


@pytest.fixture
def say_hi_flow(load_flows):
    from tests.flows.conftest import flow

    load_flows(
        flow(
            "hi",
            [{"name": "s", "type": "send", "config": {"type": "text", "body": "Hi from the bot"}}],
            is_default=True,
        )
    )


def test_search_finds_conversations_by_message_text(admin_client):
    said, sent, other = make_contact("1"), make_contact("2"), make_contact("3")
    make_inbound(said, "my parcel is LOST somewhere")
    OutboundMessage.objects.create(
        contact=sent, idempotency_key="k", message_type="text", payload={}, text="Your parcel left"
    )
    make_inbound(other, "unrelated")
    html = admin_client.get(reverse(LIST), {"show": "all", "q": "parcel"}).content.decode()
    assert page(said) in html and page(sent) in html and page(other) not in html


def test_the_agent_view_is_staff_only(client):
    contact = make_contact()
    user = get_user_model().objects.create_user("customer", password="pw")
    client.force_login(user)
    for url in (reverse(LIST), page(contact)):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]
    assert client.post(page(contact), {"op": "handover"}).status_code == 302
    contact.refresh_from_db()
    assert not contact.needs_human


def test_parked_messages_are_listed_and_replayed(admin_client, monkeypatch):
    from whatsappcrm_backend import publishing

    monkeypatch.setattr(publishing.app, "send_task", lambda *a, **kw: None)
    contact = make_contact()
    parked = make_inbound(contact, "boom")
    InboundMessage.objects.filter(pk=parked.pk).update(
        parked_at=timezone.now(), processing_attempts=3, processing_error="DataError: too long"
    )
    make_inbound(contact, "fine")
    url = reverse("admin:flows_parkedinboundmessage_changelist")
    html = admin_client.get(url).content.decode()
    assert "DataError: too long" in html and "fine" not in html
    response = admin_client.post(url, {"action": "replay", "_selected_action": [str(parked.pk)]})
    assert response.status_code == 302
    parked.refresh_from_db()
    assert parked.parked_at is None and parked.processing_attempts == 0
    assert LogEntry.objects.filter(object_id=str(parked.pk), change_message="Replayed.").exists()
