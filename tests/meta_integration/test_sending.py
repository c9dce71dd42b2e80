"""Sending services against the in-process sandbox: claim, window, outcomes, receipts, replay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from meta_integration import graph_api, sending, services
from meta_integration.errors import GraphOutcome, classify_transport
from meta_integration.messages import template_message, text_message
from meta_integration.models import OutboundMessage, OutboundStatus
from tests.factories import make_contact, make_inbound, make_number
from whatsappcrm_backend.celery import Priority

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_breaker():
    graph_api._process["breaker"] = None


def queue(contact, message=None, key="wamid.IN:0", priority=Priority.REPLY, **fields):
    row, _ = services.outbound_message_create(
        contact=contact,
        idempotency_key=key,
        message=message or text_message("hello"),
        priority=priority,
    )
    if fields:
        OutboundMessage.objects.filter(pk=row.pk).update(**fields)
        row.refresh_from_db()
    return row


def make_due(row) -> None:
    """Time passes: the row's backoff is over."""
    OutboundMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())


def test_create_publishes_the_send_after_commit_with_the_rows_priority(
    contact, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        row, created = services.outbound_message_create(
            contact=contact,
            idempotency_key="k:0",
            message=text_message("x"),
            priority=Priority.BULK,
        )
    assert created
    assert published.of("send_whatsapp_message_task") == [
        ([row.pk], {"priority": Priority.BULK, "retry": False})
    ]
    with django_capture_on_commit_callbacks(execute=True):
        again, created = services.outbound_message_create(
            contact=contact, idempotency_key="k:0", message=text_message("x")
        )
    assert (again.pk, created) == (row.pk, False)
    assert len(published.calls) == 1


def test_a_queued_row_is_sent_and_its_wamid_recorded(sandbox, contact):
    row = queue(contact)
    result = sending.outbound_send(outbound_id=row.pk)
    assert result.outcome == "sent"
    row.refresh_from_db()
    [recorded] = sandbox.app.sent_messages()
    assert (row.status, row.wamid, row.attempts) == (OutboundStatus.SENT, recorded["wamid"], 1)
    assert recorded["biz_opaque_callback_data"] == row.idempotency_key
    assert recorded["to"] == contact.wa_id
    assert row.sent_at is not None and row.error_code is None


@pytest.mark.parametrize(
    "status", [OutboundStatus.SENDING, OutboundStatus.SENT, OutboundStatus.FAILED]
)
def test_a_row_that_is_not_queued_is_left_alone(sandbox, contact, status):
    row = queue(contact, status=status)
    assert sending.outbound_send(outbound_id=row.pk).outcome == "skipped"
    assert sandbox.app.stats()["requests"] == 0
    row.refresh_from_db()
    assert (row.status, row.attempts) == (status, 0)


def test_a_missing_row_is_skipped(sandbox):
    assert sending.outbound_send(outbound_id=999999).outcome == "skipped"


@pytest.mark.parametrize("last_inbound", [timedelta(hours=25), None])
def test_outside_the_24_hour_window_a_free_form_message_fails_without_a_call(
    sandbox, contact, last_inbound
):
    contact.last_inbound_at = timezone.now() - last_inbound if last_inbound else None
    contact.save()
    row = queue(contact)
    result = sending.outbound_send(outbound_id=row.pk)
    assert (result.outcome, result.code) == ("failed", 131047)
    row.refresh_from_db()
    assert (row.status, row.error_code) == (OutboundStatus.FAILED, 131047)
    assert sandbox.app.stats()["requests"] == 0


def test_outside_the_window_a_template_is_sent(sandbox, contact):
    contact.last_inbound_at = timezone.now() - timedelta(days=3)
    contact.save()
    row = queue(contact, message=template_message("hello_world"))
    assert sending.outbound_send(outbound_id=row.pk).outcome == "sent"


def test_a_blocked_contact_is_not_sent_to(sandbox, contact):
    contact.blocked = True
    contact.save()
    row = queue(contact)
    assert sending.outbound_send(outbound_id=row.pk).outcome == "failed"
    assert sandbox.app.stats()["requests"] == 0


def test_a_permanent_error_fails_at_once_with_code_and_details(sandbox, contact):
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [131026]})
    row = queue(contact)
    result = sending.outbound_send(outbound_id=row.pk)
    assert (result.outcome, result.code, result.retry_in) == ("failed", 131026, None)
    row.refresh_from_db()
    assert (row.status, row.error_code, row.attempts) == (OutboundStatus.FAILED, 131026, 1)
    assert "131026" in row.error_details and row.failed_at


def test_a_retryable_error_requeues_the_row_with_a_backoff(sandbox, contact, settings):
    settings.META_SEND_RETRY_BASE_SECONDS = 0.2
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [130429]})
    row = queue(contact, priority=Priority.BULK)
    before = timezone.now()
    result = sending.outbound_send(outbound_id=row.pk)
    assert result.outcome == "retry"
    assert result.retry_in >= 1.0  # 130429's own minimum beats the small base
    assert result.priority == Priority.BULK
    row.refresh_from_db()
    assert (row.status, row.attempts, row.error_code) == (OutboundStatus.QUEUED, 1, 130429)
    assert row.next_attempt_at >= before + timedelta(seconds=1)
    sandbox.app.clear_faults()
    # Not before the backoff Meta asked for is over: an early task claims nothing.
    assert sending.outbound_send(outbound_id=row.pk).outcome == "early"
    assert sandbox.app.stats()["requests"] == 1
    make_due(row)
    assert sending.outbound_send(outbound_id=row.pk).outcome == "sent"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.error_code) == (OutboundStatus.SENT, 2, None)


def test_retries_are_bounded_by_the_rows_attempts(sandbox, contact, settings):
    settings.META_SEND_MAX_RETRIES = 2
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [500]})
    row = queue(contact)
    outcomes = []
    for _ in range(3):
        make_due(row)
        outcomes.append(sending.outbound_send(outbound_id=row.pk).outcome)
    assert outcomes == ["retry", "retry", "failed"]  # 1 attempt + 2 retries
    row.refresh_from_db()
    assert (row.status, row.attempts) == (OutboundStatus.FAILED, 3)
    assert row.error_details.startswith("gave up after 3 attempts")


def test_a_local_rate_limit_wait_is_not_counted_as_an_attempt(sandbox, contact, settings):
    settings.META_MESSAGES_PER_SECOND = 1
    settings.META_RATE_LIMIT_MAX_WAIT_SECONDS = 0.0
    first, second = queue(contact, key="a:0"), queue(contact, key="b:0")
    assert sending.outbound_send(outbound_id=first.pk).outcome == "sent"
    result = sending.outbound_send(outbound_id=second.pk)
    assert result.outcome == "retry" and result.retry_in <= 1.5
    second.refresh_from_db()
    assert (second.status, second.attempts) == (OutboundStatus.QUEUED, 0)


def test_an_echo_that_completes_the_row_mid_call_wins(contact, monkeypatch):
    """A read timeout after Meta accepted; the status echo completed the row meanwhile."""
    row = queue(contact)

    def send_message(number, to, message, biz_opaque_callback_data="", bulk=False):
        OutboundMessage.objects.filter(pk=row.pk).update(
            status=OutboundStatus.DELIVERED, wamid="wamid.E"
        )
        return graph_api.GraphResult(classify_transport("read_timeout", "slow"))

    monkeypatch.setattr(graph_api, "send_message", send_message)
    assert sending.outbound_send(outbound_id=row.pk).outcome == "skipped"
    row.refresh_from_db()
    assert (row.status, row.wamid) == (OutboundStatus.DELIVERED, "wamid.E")


def test_a_late_success_does_not_overwrite_a_completed_row(contact, monkeypatch):
    row = queue(contact)

    def send_message(number, to, message, biz_opaque_callback_data="", bulk=False):
        OutboundMessage.objects.filter(pk=row.pk).update(
            status=OutboundStatus.READ, wamid="wamid.E"
        )
        return graph_api.GraphResult(GraphOutcome("success"), wamid="wamid.E")

    monkeypatch.setattr(graph_api, "send_message", send_message)
    assert sending.outbound_send(outbound_id=row.pk).outcome == "sent"
    row.refresh_from_db()
    assert row.status == OutboundStatus.READ


# --- read receipts ---------------------------------------------------------------------------


def test_read_receipt_is_sent_once(sandbox, contact):
    inbound = make_inbound(contact)
    assert sending.read_receipt_send(inbound_message_id=inbound.pk).outcome == "sent"
    assert sending.read_receipt_send(inbound_message_id=inbound.pk).outcome == "skipped"
    assert [r["message_id"] for r in sandbox.app.reads] == [inbound.wamid]
    inbound.refresh_from_db()
    assert inbound.read_receipt_sent_at is not None


def test_a_refused_read_receipt_is_ignored(sandbox, contact, caplog):
    inbound = make_inbound(contact, wamid="not-a-wamid")
    result = sending.read_receipt_send(inbound_message_id=inbound.pk)
    assert (result.outcome, result.code) == ("ignored", 131009)
    assert "131009" in caplog.text


def test_a_retryable_read_receipt_retries_a_few_times(sandbox, contact, settings):
    settings.META_READ_RECEIPT_MAX_RETRIES = 2
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [500]})
    inbound = make_inbound(contact)
    assert sending.read_receipt_send(inbound_message_id=inbound.pk, retries=0).outcome == "retry"
    assert sending.read_receipt_send(inbound_message_id=inbound.pk, retries=1).retry_in is not None
    assert sending.read_receipt_send(inbound_message_id=inbound.pk, retries=2).outcome == "gave_up"


# --- replay ------------------------------------------------------------------------------------


def test_replay_requeues_failed_rows_only(contact, published, django_capture_on_commit_callbacks):
    failed = queue(contact, key="f:0", status=OutboundStatus.FAILED, error_code=131026, attempts=1)
    sent = queue(contact, key="s:0", status=OutboundStatus.SENT)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.outbound_replay([failed.pk, sent.pk]) == 1
    failed.refresh_from_db()
    assert (failed.status, failed.error_code, failed.error_details, failed.wamid) == (
        OutboundStatus.QUEUED,
        None,
        "",
        None,
    )
    assert failed.attempts == 1  # history kept; the replay is one new attempt
    assert published.of("send_whatsapp_message_task") == [
        ([failed.pk], {"priority": 0, "retry": False})
    ]
    sent.refresh_from_db()
    assert sent.status == OutboundStatus.SENT


# --- per-contact order: the chain ----------------------------------------------------------------


def test_a_later_reply_waits_for_an_earlier_one_without_republishing(
    sandbox, contact, published, django_capture_on_commit_callbacks
):
    first, second = queue(contact, key="m1:0"), queue(contact, key="m2:0")
    result = sending.outbound_send(outbound_id=second.pk)
    # It waits without a retry: nothing is re-published while it waits.
    assert (result.outcome, result.retry_in) == ("waiting", None)
    second.refresh_from_db()
    assert (second.status, second.attempts) == (OutboundStatus.QUEUED, 0)
    assert sandbox.app.stats()["requests"] == 0

    # The first one's send finishes and publishes the next of the conversation.
    with django_capture_on_commit_callbacks(execute=True):
        assert sending.outbound_send(outbound_id=first.pk).outcome == "sent"
    assert published.of("send_whatsapp_message_task") == [
        ([second.pk], {"priority": Priority.REPLY, "retry": False})
    ]
    assert sending.outbound_send(outbound_id=second.pk).outcome == "sent"
    assert [m["biz_opaque_callback_data"] for m in sandbox.app.sent_messages()] == ["m1:0", "m2:0"]


def test_an_earlier_send_being_made_also_holds_the_later_one(sandbox, contact):
    queue(contact, key="m1:0", status=OutboundStatus.SENDING, sending_at=timezone.now())
    second = queue(contact, key="m2:0")
    assert sending.outbound_send(outbound_id=second.pk).outcome == "waiting"


def test_a_retry_keeps_its_place(sandbox, contact, published, django_capture_on_commit_callbacks):
    """After a 131056 the earlier row backs off 6 s and the later ones keep waiting."""
    first, second = queue(contact, key="m1:0"), queue(contact, key="m2:0")
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [131056]})
    with django_capture_on_commit_callbacks(execute=True):
        assert sending.outbound_send(outbound_id=first.pk).outcome == "retry"
    assert published.calls == []  # a retry finishes nothing
    sandbox.app.clear_faults()
    assert sending.outbound_send(outbound_id=second.pk).outcome == "waiting"
    make_due(first)
    with django_capture_on_commit_callbacks(execute=True):
        assert sending.outbound_send(outbound_id=first.pk).outcome == "sent"
    assert published.of("send_whatsapp_message_task")[0][0] == [second.pk]
    assert sending.outbound_send(outbound_id=second.pk).outcome == "sent"
    assert [m["biz_opaque_callback_data"] for m in sandbox.app.sent_messages()] == ["m1:0", "m2:0"]


def test_a_permanent_failure_also_moves_the_chain_on(
    sandbox, contact, published, django_capture_on_commit_callbacks
):
    first, second = queue(contact, key="m1:0"), queue(contact, key="m2:0")
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [131026]})
    with django_capture_on_commit_callbacks(execute=True):
        assert sending.outbound_send(outbound_id=first.pk).outcome == "failed"
    assert published.of("send_whatsapp_message_task")[0][0] == [second.pk]


def test_a_bulk_message_never_holds_up_a_reply(sandbox, contact):
    queue(contact, key="bulk:0", priority=Priority.BULK)
    reply = queue(contact, key="m1:0", priority=Priority.REPLY)
    assert sending.outbound_send(outbound_id=reply.pk).outcome == "sent"


@pytest.mark.parametrize("status", [OutboundStatus.FAILED, OutboundStatus.SENT])
def test_a_finished_row_holds_nothing(sandbox, contact, status):
    queue(contact, key="m1:0", status=status)
    second = queue(contact, key="m2:0")
    assert sending.outbound_send(outbound_id=second.pk).outcome == "sent"


def test_another_contacts_pending_send_does_not_hold_anything(sandbox, contact):
    queue(make_contact(wa_id="16505550777"), key="other:0")
    mine = queue(contact, key="m1:0")
    assert sending.outbound_send(outbound_id=mine.pk).outcome == "sent"


def test_the_same_customer_on_another_business_number_is_another_conversation(sandbox, contact):
    other_number = make_number(phone_number_id="222200002222", display_phone_number="15550002222")
    queue(contact, key="m1:0")  # from the contact's number, still queued
    other = queue(contact, key="m2:0", number=other_number)
    assert sending.outbound_send(outbound_id=other.pk).outcome == "sent"
