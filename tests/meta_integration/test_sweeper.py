"""The sweeper re-enqueues what was stranded, never what is merely waiting; the purge."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from django.utils import timezone

from meta_integration import schedules, sweeper
from meta_integration.models import InboundMessage, OutboundMessage, OutboundStatus, WebhookEvent
from meta_integration.tasks import purge_webhook_events_task, sweep_stranded_messages_task
from tests.factories import make_contact, make_inbound, new_wamid
from whatsappcrm_backend import publishing
from whatsappcrm_backend.celery import TASK_ROUTES, Priority

pytestmark = pytest.mark.django_db

FLOW = "process_flow_for_message_task"
SEND = "send_whatsapp_message_task"


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def outbound(contact, status, **fields):
    return OutboundMessage.objects.create(
        contact=contact,
        idempotency_key=new_wamid() + ":0",
        message_type="text",
        payload={"type": "text", "text": {"body": "x"}},
        status=status,
        **fields,
    )


def inbound(contact, received_seconds_ago: float, **fields):
    row = make_inbound(contact, **fields)
    InboundMessage.objects.filter(pk=row.pk).update(received_at=ago(received_seconds_ago))
    return row


def test_unprocessed_inbound_past_the_grace_gets_its_flow_task_once_per_contact(contact, published):
    other = make_contact(wa_id="16505550999")
    inbound(contact, 60)
    inbound(contact, 45)
    inbound(other, 5)  # within the grace: the flow task may still be on its way
    inbound(other, 60, processed_at=timezone.now())
    inbound(make_contact(wa_id="16505550888"), 3 * 86400)  # too old to keep retrying
    report = sweeper.stranded_messages_sweep()
    assert report["flows"] == 1
    assert published.of(FLOW) == [([contact.pk], {"priority": Priority.REPLY, "retry": False})]


def test_a_queued_send_past_the_grace_is_republished_with_its_priority_once(contact, published):
    lost = outbound(contact, OutboundStatus.QUEUED, priority=Priority.BULK, next_attempt_at=ago(60))
    outbound(contact, OutboundStatus.QUEUED, next_attempt_at=ago(5))
    outbound(contact, OutboundStatus.QUEUED, next_attempt_at=timezone.now() + timedelta(seconds=90))
    assert sweeper.stranded_messages_sweep()["queued"] == 1
    assert published.of(SEND) == [([lost.pk], {"priority": Priority.BULK, "retry": False})]
    # Re-published now: not again until another grace period has passed.
    assert sweeper.stranded_messages_sweep()["queued"] == 0


def test_a_row_stuck_in_sending_is_requeued_flagged_and_republished(contact, published, settings):
    settings.META_SENDING_GRACE_SECONDS = 120
    stuck = outbound(contact, OutboundStatus.SENDING, sending_at=ago(200), attempts=1, priority=3)
    busy = outbound(contact, OutboundStatus.SENDING, sending_at=ago(10), attempts=1)
    report = sweeper.stranded_messages_sweep()
    assert report["resent"] == 1
    stuck.refresh_from_db()
    assert (stuck.status, stuck.possible_duplicate) == (OutboundStatus.QUEUED, True)
    assert published.of(SEND) == [([stuck.pk], {"priority": 3, "retry": False})]
    busy.refresh_from_db()
    assert (busy.status, busy.possible_duplicate) == (OutboundStatus.SENDING, False)


def test_nothing_to_do_is_a_quiet_sweep(published):
    assert sweeper.stranded_messages_sweep() == {
        "events": 0,
        "status_drains": 0,
        "flows": 0,
        "receipts": 0,
        "queued": 0,
        "resent": 0,
        "publish_failures": 0,
    }
    assert published.calls == []


def test_failed_publishes_are_counted_and_retried_next_grace(contact, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(publishing.app, "send_task", refuse)
    inbound(contact, 60)
    # Its flow task and its read receipt.
    assert sweeper.stranded_messages_sweep()["publish_failures"] == 2


def test_a_parked_message_is_never_re_enqueued(contact, published):
    """A poison message parked by the flow waits for an operator; the contact's other
    unprocessed messages are still swept."""
    inbound(contact, 60, parked_at=timezone.now(), processing_attempts=5)
    assert sweeper.stranded_messages_sweep()["flows"] == 0
    inbound(contact, 60)
    assert sweeper.stranded_messages_sweep()["flows"] == 1


def test_a_read_receipt_left_unsent_is_re_sent_once_past_the_grace(contact, published):
    lost = inbound(contact, 60, processed_at=timezone.now())
    inbound(contact, 5, processed_at=timezone.now())  # within the grace: its task may be on its way
    inbound(contact, 60, processed_at=timezone.now(), read_receipt_sent_at=timezone.now())
    inbound(contact, 60, processed_at=timezone.now(), read_receipt_error="131009: too old")
    inbound(contact, 3600, processed_at=timezone.now())  # too late to be of use
    assert sweeper.stranded_messages_sweep()["receipts"] == 1
    assert published.of("send_read_receipt_task") == [
        ([lost.pk], {"priority": Priority.RECEIPT, "retry": False})
    ]


def test_an_event_stored_but_never_ingested_is_re_enqueued(published):
    stuck = WebhookEvent.objects.create(body="{}")
    WebhookEvent.objects.filter(pk=stuck.pk).update(received_at=ago(60))
    WebhookEvent.objects.create(body="{}")  # within the grace: its task may be on its way
    done = WebhookEvent.objects.create(body="{}", processed_at=timezone.now())
    WebhookEvent.objects.filter(pk=done.pk).update(received_at=ago(60))
    assert sweeper.stranded_messages_sweep()["events"] == 1
    assert published.of("ingest_webhook_event_task") == [
        ([stuck.pk], {"priority": Priority.REPLY, "retry": False})
    ]


def test_stranded_status_callbacks_get_one_drain_not_an_ingest_each(published):
    for _ in range(3):
        event = WebhookEvent.objects.create(body="{}", carries_messages=False)
        WebhookEvent.objects.filter(pk=event.pk).update(received_at=ago(60))
    report = sweeper.stranded_messages_sweep()
    assert (report["events"], report["status_drains"]) == (0, 1)
    assert published.names() == ["drain_status_events_task"]
    assert published.of("drain_status_events_task") == [
        ([], {"priority": Priority.RECEIPT, "retry": False})
    ]


def test_inbound_work_has_a_shorter_grace_than_outbound_sends(contact, published, settings):
    """A customer waits on an event or a flow: stranded ones (a publish lost while Redis was
    down) are re-published after 10 s, so all are answered within ~40 s of Redis returning;
    a queued send keeps the longer grace."""
    settings.META_SWEEP_INBOUND_GRACE_SECONDS = 10
    event = WebhookEvent.objects.create(body="{}")
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=ago(15))
    message = inbound(contact, 15)
    fresh = WebhookEvent.objects.create(body="{}")
    WebhookEvent.objects.filter(pk=fresh.pk).update(received_at=ago(5))
    outbound(contact, OutboundStatus.QUEUED, next_attempt_at=ago(15))

    report = sweeper.stranded_messages_sweep()

    assert (report["events"], report["flows"], report["queued"]) == (1, 1, 0)
    assert published.of("ingest_webhook_event_task") == [
        ([event.pk], {"priority": Priority.REPLY, "retry": False})
    ]
    assert published.of("process_flow_for_message_task") == [
        ([message.contact_id], {"priority": Priority.REPLY, "retry": False})
    ]


def test_only_the_head_of_a_conversation_is_re_published(contact, published):
    """The rows behind an unfinished earlier one are published by its finisher, not swept."""
    head = outbound(contact, OutboundStatus.QUEUED, next_attempt_at=ago(60))
    outbound(contact, OutboundStatus.QUEUED, next_attempt_at=ago(60))
    backing_off = make_contact(wa_id="16505550111")
    outbound(backing_off, OutboundStatus.QUEUED, next_attempt_at=timezone.now() + timedelta(300))
    outbound(backing_off, OutboundStatus.QUEUED, next_attempt_at=ago(60))  # keeps its place
    assert sweeper.stranded_messages_sweep()["queued"] == 1
    assert published.of(SEND) == [([head.pk], {"priority": Priority.REPLY, "retry": False})]


def test_purge_deletes_events_older_than_the_retention(settings):
    settings.META_WEBHOOK_EVENT_RETENTION_DAYS = 7
    old = WebhookEvent.objects.create(body="{}")
    WebhookEvent.objects.filter(pk=old.pk).update(received_at=ago(8 * 86400))
    recent = WebhookEvent.objects.create(body="{}")
    assert sweeper.webhook_events_purge() == {"deleted": 1}
    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [recent.pk]


def test_overlapping_scheduled_runs_are_skipped(redis_conn, published):
    lock = redis_conn.lock("lock:sweep_stranded_messages_task", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert sweep_stranded_messages_task() == {"skipped": True}
    finally:
        lock.release()
    assert sweep_stranded_messages_task()["flows"] == 0
    assert purge_webhook_events_task() == {"deleted": 0}


def test_schedules_are_declared_for_beat():
    by_task = {entry["task"]: entry for entry in schedules.SCHEDULES}
    assert by_task["sweep_stranded_messages_task"]["every_seconds"] == 30
    assert by_task["purge_webhook_events_task"]["every_seconds"] == 3600
    for entry in schedules.SCHEDULES:
        assert entry["task"] in TASK_ROUTES and entry["name"] and entry["description"]


def test_a_sending_row_whose_echo_is_stored_but_not_applied_is_completed_not_resent(
    contact, published, settings
):
    # Under a backlog the status drain waits behind replies: the echo Meta sent for an accepted
    # send is in the database, unapplied, when the grace runs out. Resending would double it.
    from tests.meta_integration.conftest import encode, load_fixture

    settings.META_SENDING_GRACE_SECONDS = 120
    row = outbound(contact, OutboundStatus.SENDING, sending_at=ago(200), attempts=1)
    wamid = new_wamid()
    event = copy.deepcopy(load_fixture("status__sent"))
    event["entry"][0]["changes"][0]["value"]["statuses"][0].update(
        id=wamid, status="delivered", biz_opaque_callback_data=row.idempotency_key
    )
    body = encode(event).decode()
    WebhookEvent.objects.create(body=body, carries_messages=False)

    report = sweeper.stranded_messages_sweep()

    row.refresh_from_db()
    assert (row.status, row.wamid, row.possible_duplicate) == (
        OutboundStatus.DELIVERED,
        wamid,
        False,
    )
    assert report["resent"] == 0 and report["echoes_applied"] == 1
    assert published.of(SEND) == []
    assert not WebhookEvent.objects.filter(processed_at__isnull=True).exists()
