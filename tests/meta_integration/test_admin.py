"""Admin pages: staff only, load with data, actions call services, the token is write-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from meta_integration.models import (
    Contact,
    OutboundMessage,
    OutboundStatus,
    WebhookEvent,
    WhatsAppNumber,
)
from tests.factories import make_inbound, new_wamid

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "contact",
    "inboundmessage",
    "outboundmessage",
    "failedoutboundmessage",
    "whatsappnumber",
    "webhookevent",
]
TOKEN = "EAAG-super-secret-token-0123456789"


@pytest.fixture
def data(contact):
    inbound = make_inbound(contact, "hello")
    sent = OutboundMessage.objects.create(
        contact=contact,
        number=contact.number,
        in_reply_to=inbound,
        idempotency_key="a:0",
        message_type="text",
        payload={"type": "text", "text": {"body": "hi"}},
        text="hi",
        status=OutboundStatus.SENT,
        wamid=new_wamid(),
    )
    failed = OutboundMessage.objects.create(
        contact=contact,
        number=contact.number,
        idempotency_key="b:0",
        message_type="text",
        payload={"type": "text", "text": {"body": "hi"}},
        text="hi",
        status=OutboundStatus.FAILED,
        error_code=131026,
        error_details="undeliverable",
        attempts=1,
    )
    event = WebhookEvent.objects.create(body='{"object":"whatsapp_business_account"}')
    return {"inbound": inbound, "sent": sent, "failed": failed, "event": event}


def changelist(model: str) -> str:
    return reverse(f"admin:meta_integration_{model}_changelist")


@pytest.mark.parametrize("model", CHANGELISTS)
def test_anonymous_users_are_sent_to_the_login(client, model):
    response = client.get(changelist(model))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("model", CHANGELISTS)
def test_changelists_load_for_staff(admin_client, data, model):
    response = admin_client.get(changelist(model))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("contact", {"q": "16505551234"}),
        ("contact", {"blocked__exact": "1"}),
        ("inboundmessage", {"processed": "no"}),
        ("inboundmessage", {"message_type": "text"}),
        ("outboundmessage", {"status__exact": "failed"}),
        ("outboundmessage", {"q": "a:0"}),
    ],
)
def test_filters_and_search(admin_client, data, model, query):
    assert admin_client.get(changelist(model), query).status_code == 200


def test_change_pages_load(admin_client, data, contact):
    for model, pk in [
        ("contact", contact.pk),
        ("inboundmessage", data["inbound"].pk),
        ("outboundmessage", data["sent"].pk),
        ("failedoutboundmessage", data["failed"].pk),
        ("webhookevent", data["event"].pk),
    ]:
        url = reverse(f"admin:meta_integration_{model}_change", args=[pk])
        assert admin_client.get(url).status_code == 200, model


def test_failed_sends_list_shows_only_failed_rows(admin_client, data):
    response = admin_client.get(changelist("failedoutboundmessage"))
    assert list(response.context["cl"].queryset) == [data["failed"]]


def test_replay_action_requeues_failed_sends(
    admin_client, data, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            changelist("failedoutboundmessage"),
            {"action": "replay_failed", "_selected_action": [data["failed"].pk]},
        )
    assert response.status_code == 302
    data["failed"].refresh_from_db()
    assert data["failed"].status == OutboundStatus.QUEUED
    assert published.of("send_whatsapp_message_task") == [
        ([data["failed"].pk], {"priority": 0, "retry": False})
    ]


@pytest.mark.parametrize(
    ("action", "field", "value"),
    [("block", "blocked", True), ("hand_over", "needs_human", True)],
)
def test_contact_actions(admin_client, contact, action, field, value):
    admin_client.post(changelist("contact"), {"action": action, "_selected_action": [contact.pk]})
    assert getattr(Contact.objects.get(pk=contact.pk), field) is value
    undo = {"block": "unblock", "hand_over": "resolve"}[action]
    admin_client.post(changelist("contact"), {"action": undo, "_selected_action": [contact.pk]})
    assert getattr(Contact.objects.get(pk=contact.pk), field) is not value


def test_webhook_events_are_read_only(admin_client, data):
    assert admin_client.get(reverse("admin:meta_integration_webhookevent_add")).status_code == 403
    url = reverse("admin:meta_integration_webhookevent_delete", args=[data["event"].pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert WebhookEvent.objects.count() == 1


# --- the number's access token is write-only ---------------------------------------------------


def number_form(number: WhatsAppNumber, **changes) -> dict:
    form = {
        "phone_number_id": number.phone_number_id,
        "waba_id": number.waba_id,
        "display_phone_number": number.display_phone_number,
        "api_version": number.api_version,
        "active": "on",
        "access_token_override": "",
    }
    form.update(changes)
    return form


def test_the_stored_token_is_never_rendered(admin_client, number):
    number.access_token_override = TOKEN
    number.save()
    change = reverse("admin:meta_integration_whatsappnumber_change", args=[number.pk])
    for url in (change, changelist("whatsappnumber")):
        response = admin_client.get(url)
        assert response.status_code == 200
        assert TOKEN not in response.content.decode()


def test_a_blank_token_keeps_the_stored_one_and_a_new_one_replaces_it(admin_client, number):
    number.access_token_override = TOKEN
    number.save()
    url = reverse("admin:meta_integration_whatsappnumber_change", args=[number.pk])
    response = admin_client.post(url, number_form(number, display_phone_number="15550000000"))
    assert response.status_code == 302
    number.refresh_from_db()
    assert (number.access_token_override, number.display_phone_number) == (TOKEN, "15550000000")

    admin_client.post(url, number_form(number, access_token_override="new-token"))
    number.refresh_from_db()
    assert number.access_token_override == "new-token"

    admin_client.post(url, number_form(number, clear_access_token="on"))
    number.refresh_from_db()
    assert number.access_token_override == ""


def test_adding_a_number_with_a_token(admin_client):
    response = admin_client.post(
        reverse("admin:meta_integration_whatsappnumber_add"),
        number_form(
            WhatsAppNumber(phone_number_id="555", api_version="v23.0"), access_token_override="t0k"
        ),
    )
    assert response.status_code == 302
    assert WhatsAppNumber.objects.get(phone_number_id="555").access_token_override == "t0k"
