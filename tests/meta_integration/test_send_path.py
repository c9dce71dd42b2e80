"""The send path's guarantees: Meta's echo completes a row given up here and replay refuses
it; retries wait out Meta's backoff; the window and the reply number per (business number,
customer) pair; the template check before calling Meta."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from meta_integration import graph_api, ingest, selectors, sending, services, sweeper
from meta_integration.errors import PERMANENT, classify_code
from meta_integration.messages import template_message, text_message
from meta_integration.models import (
    ConversationWindow,
    InboundMessage,
    MessageTemplate,
    OutboundMessage,
    OutboundStatus,
    TemplateStatus,
)
from meta_integration.parsing import ParsedStatus
from tests.factories import make_number
from tests.meta_integration.conftest import load_fixture, with_new_wamids

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_breaker():
    graph_api._process["breaker"] = None


def queue(contact, key="wamid.IN:0", message=None, **fields) -> OutboundMessage:
    row, _ = services.outbound_message_create(
        contact=contact, idempotency_key=key, message=message or text_message("hello")
    )
    if fields:
        OutboundMessage.objects.filter(pk=row.pk).update(**fields)
        row.refresh_from_db()
    return row


def echo(key: str, value: str = "sent", wamid: str = "wamid.ECHO") -> ParsedStatus:
    return ParsedStatus(
        wamid=wamid,
        status=value,
        timestamp=datetime.fromtimestamp(1_750_000_000, tz=UTC),
        biz_opaque_callback_data=key,
    )


# --- 1. a failed row that Meta accepted ----------------------------------------------------------


def test_the_echo_completes_a_row_given_up_here_and_says_so(contact, caplog):
    """Read timeouts exhausted the retries (so the row failed) but Meta had the message."""
    row = queue(
        contact,
        status=OutboundStatus.FAILED,
        attempts=9,
        error_details="gave up after 9 attempts: read_timeout",
        failed_at=timezone.now(),
    )
    with caplog.at_level(logging.WARNING, logger="meta_integration.services"):
        assert services.outbound_status_apply(status=echo(row.idempotency_key)) == "completed"
    row.refresh_from_db()
    assert (row.status, row.wamid, row.error_code, row.error_details, row.failed_at) == (
        OutboundStatus.SENT,
        "wamid.ECHO",
        None,
        "",
        None,
    )
    assert row.sent_at is not None
    assert "had failed here but Meta accepted it" in caplog.text
    # Later statuses move it on by its wamid.
    services.outbound_status_apply(status=echo(row.idempotency_key, "read"))
    row.refresh_from_db()
    assert row.status == OutboundStatus.READ


def test_replay_is_refused_after_the_echo_and_nothing_is_sent(
    contact, published, django_capture_on_commit_callbacks
):
    row = queue(contact, status=OutboundStatus.FAILED, error_details="gave up")
    services.outbound_status_apply(status=echo(row.idempotency_key))
    with django_capture_on_commit_callbacks(execute=True):
        result = services.outbound_replay([row.pk])
    assert result == 0  # it is sent now, not failed: nothing to replay
    assert published.calls == []


@pytest.mark.parametrize(
    "acknowledged",
    [
        {"wamid": "wamid.META"},  # Meta accepted it, then failed it asynchronously
        {"sent_at": "now"},  # a 2xx without a readable wamid
        {"delivered_at": "now"},
    ],
)
def test_replay_refuses_a_failed_row_meta_acknowledged(
    contact, published, django_capture_on_commit_callbacks, caplog, acknowledged
):
    fields = {k: (timezone.now() if v == "now" else v) for k, v in acknowledged.items()}
    acked = queue(contact, key="acked:0", status=OutboundStatus.FAILED, error_code=131026, **fields)
    plain = queue(contact, key="plain:0", status=OutboundStatus.FAILED, error_code=131026)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.outbound_replay([acked.pk, plain.pk])
    assert (int(result), result.refused) == (1, (acked.pk,))
    assert [args for args, _ in published.of("send_whatsapp_message_task")] == [[plain.pk]]
    acked.refresh_from_db()
    assert (acked.status, acked.error_code) == (OutboundStatus.FAILED, 131026)
    assert f"outbound {acked.pk} not replayed: Meta acknowledged it" in caplog.text


# --- 2. retries honour Meta's backoff ------------------------------------------------------------


@pytest.mark.parametrize("code", [4, 80007])
def test_an_early_task_does_not_cut_metas_backoff(sandbox, contact, settings, code):
    settings.META_SWEEP_GRACE_SECONDS = 30
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [code]})
    row = queue(contact)
    result = sending.outbound_send(outbound_id=row.pk)
    assert (result.outcome, result.retry_in) == ("retry", 300.0)
    row.refresh_from_db()
    assert row.next_attempt_at >= timezone.now() + timedelta(seconds=290)
    sandbox.app.clear_faults()

    # A duplicate delivery of the task, or any early publish: claims nothing, sends nothing.
    assert sending.outbound_send(outbound_id=row.pk).outcome == "early"
    # The sweeper leaves a row waiting out its backoff alone.
    assert sweeper.stranded_messages_sweep()["queued"] == 0
    assert sandbox.app.stats()["requests"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (OutboundStatus.QUEUED, 1)

    # Once the backoff is over (its own retry), it goes.
    OutboundMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert sending.outbound_send(outbound_id=row.pk).outcome == "sent"


def test_the_task_returns_quietly_when_early(sandbox, contact, published):
    """The task does not re-publish itself: the retry that set the backoff is scheduled."""
    from meta_integration.tasks import send_whatsapp_message_task

    row = queue(contact, next_attempt_at=timezone.now() + timedelta(seconds=300))
    outcome = send_whatsapp_message_task(row.pk)
    assert outcome["outcome"] == "early"
    assert published.calls == []


# --- 4. the window and the reply number per (business number, customer) pair --------------------


def inbound_to(post_webhook, number, wa_id="16505551234") -> InboundMessage:
    event = with_new_wamids(load_fixture("message__text"))
    value = event["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = number.phone_number_id
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = wa_id
    value["messages"][0]["timestamp"] = str(int(timezone.now().timestamp()))
    assert post_webhook(event).status_code == 200
    return InboundMessage.objects.get(wamid=value["messages"][0]["id"])


@pytest.fixture
def post_and_ingest(post_webhook, published, django_capture_on_commit_callbacks):
    def post(event):
        response = post_webhook(event)
        for args, _ in published.of("ingest_webhook_event_task"):
            with django_capture_on_commit_callbacks(execute=True):
                ingest.webhook_event_ingest(event_id=args[0])
        published.calls.clear()
        return response

    return post


@pytest.fixture
def two_numbers(db):
    first = make_number()
    second = make_number(phone_number_id="222200002222", display_phone_number="15550002222")
    return first, second


def test_a_customer_writing_to_two_numbers_gets_each_reply_from_the_number_written_to(
    sandbox, post_and_ingest, two_numbers
):
    first, second = two_numbers
    to_first = inbound_to(post_and_ingest, first)
    to_second = inbound_to(post_and_ingest, second)
    contact = to_first.contact
    assert to_second.contact_id == contact.pk
    contact.refresh_from_db()
    assert contact.number_id == second.pk  # the last number written to

    # Replies, answered in the opposite order to make sure the contact's last number is not
    # what decides.
    reply_first, _ = services.outbound_message_create(
        contact=contact,
        idempotency_key=f"{to_first.wamid}:0",
        message=text_message("from first"),
        in_reply_to=to_first,
    )
    reply_second, _ = services.outbound_message_create(
        contact=contact,
        idempotency_key=f"{to_second.wamid}:0",
        message=text_message("from second"),
        in_reply_to=to_second,
    )
    assert (reply_first.number_id, reply_second.number_id) == (first.pk, second.pk)
    for row in (reply_first, reply_second):
        assert sending.outbound_send(outbound_id=row.pk).outcome == "sent"
    sent = {
        m["biz_opaque_callback_data"]: m["phone_number_id"] for m in sandbox.app.sent_messages()
    }
    assert sent == {
        reply_first.idempotency_key: first.phone_number_id,
        reply_second.idempotency_key: second.phone_number_id,
    }
    assert set(ConversationWindow.objects.values_list("number_id", flat=True)) == {
        first.pk,
        second.pk,
    }


def test_the_window_is_per_number(sandbox, post_and_ingest, two_numbers):
    first, second = two_numbers
    to_first = inbound_to(post_and_ingest, first)
    contact = to_first.contact
    assert selectors.window_open(contact_id=contact.pk, number_id=first.pk)
    assert not selectors.window_open(contact_id=contact.pk, number_id=second.pk)

    # Free-form from the number the customer never wrote to: 131047 at once, no call.
    row, _ = services.outbound_message_create(
        contact=contact, idempotency_key="k:0", message=text_message("hi"), number=second
    )
    result = sending.outbound_send(outbound_id=row.pk)
    assert (result.outcome, result.code) == ("failed", 131047)
    assert sandbox.app.stats()["requests"] == 0
    # A template may open the conversation from it.
    template, _ = services.outbound_message_create(
        contact=contact,
        idempotency_key="t:0",
        message=template_message("hello_world"),
        number=second,
    )
    assert sending.outbound_send(outbound_id=template.pk).outcome == "sent"
    [recorded] = sandbox.app.sent_messages()
    assert recorded["phone_number_id"] == second.phone_number_id


def test_a_window_closes_24_hours_after_the_customers_last_message(post_and_ingest, two_numbers):
    first, _ = two_numbers
    contact = inbound_to(post_and_ingest, first).contact
    ConversationWindow.objects.update(last_inbound_at=timezone.now() - timedelta(hours=25))
    assert not selectors.window_open(contact_id=contact.pk, number_id=first.pk)
    # number_id=None: the number a send would use (the contact's last one).
    assert not selectors.window_open(contact_id=contact.pk, number_id=None)
    ConversationWindow.objects.update(last_inbound_at=timezone.now() - timedelta(hours=23))
    assert selectors.window_open(contact_id=contact.pk, number_id=None)


def test_an_older_message_delivered_late_does_not_move_the_window_back(
    post_and_ingest, two_numbers
):
    first, _ = two_numbers
    contact = inbound_to(post_and_ingest, first).contact
    opened = ConversationWindow.objects.get().last_inbound_at
    event = with_new_wamids(load_fixture("message__text"))
    value = event["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = contact.wa_id
    value["messages"][0]["timestamp"] = str(int(opened.timestamp()) - 3600)
    post_and_ingest(event)
    assert ConversationWindow.objects.get().last_inbound_at == opened


def test_a_contact_stored_before_the_pair_windows_uses_its_last_inbound_time(contact):
    assert not ConversationWindow.objects.exists()
    assert selectors.window_open(contact_id=contact.pk, number_id=contact.number_id)
    contact.last_inbound_at = timezone.now() - timedelta(days=2)
    contact.save()
    assert not selectors.window_open(contact_id=contact.pk, number_id=contact.number_id)


# --- 5. the template check before calling Meta ---------------------------------------------------


@pytest.mark.parametrize("code", [132000, 132001, 132005, 132007, 132012, 132015, 132016])
def test_template_errors_are_permanent(code):
    assert classify_code(code, 400).kind == PERMANENT


@pytest.mark.parametrize(
    ("status", "parameters", "code"),
    [
        (TemplateStatus.PAUSED, 1, 132015),
        (TemplateStatus.DISABLED, 1, 132016),
        (TemplateStatus.APPROVED, 0, 132000),
    ],
)
def test_a_template_the_catalogue_refuses_fails_without_a_call(
    sandbox, contact, settings, status, parameters, code
):
    MessageTemplate.objects.create(
        waba_id=settings.META_WABA_ID,
        name="order_update",
        language="en_US",
        status=status,
        body_parameter_count=1,
    )
    row = queue(contact, message=template_message("order_update", body_params=["x"] * parameters))
    result = sending.outbound_send(outbound_id=row.pk)
    assert (result.outcome, result.code) == ("failed", code)
    assert sandbox.app.stats()["requests"] == 0


def test_an_approved_template_goes(sandbox, contact, settings):
    MessageTemplate.objects.create(
        waba_id=settings.META_WABA_ID,
        name="hello_world",
        language="en_US",
        status=TemplateStatus.APPROVED,
    )
    contact.last_inbound_at = timezone.now() - timedelta(days=3)
    contact.save()
    row = queue(contact, message=template_message("hello_world"))
    assert sending.outbound_send(outbound_id=row.pk).outcome == "sent"
