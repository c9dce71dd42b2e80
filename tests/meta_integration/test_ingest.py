"""The webhook's ingest half: idempotent, never raises on what the parser lets through, and
with Redis down the request ingests the event itself so nothing waits for a sweep."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings

from meta_integration import ingest, sweeper
from meta_integration.models import InboundMessage, OutboundMessage, WebhookEvent
from meta_integration.signatures import HEADER, sign
from tests.factories import make_number
from tests.meta_integration.conftest import (
    WEBHOOK_URL,
    encode,
    load_fixture,
    with_new_wamids,
)
from tests.meta_integration.test_webhook import broker_down, queued_tasks
from tests.meta_integration.test_webhook_fuzz import json_values, shaped

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_request_ingests_the_event_itself(broker_conn):
    make_number()
    body = encode(with_new_wamids(load_fixture("message__text")))
    with broker_down():
        response = Client().post(
            WEBHOOK_URL,
            data=body,
            content_type="application/json",
            headers={HEADER: sign(body, "sandbox-app-secret")},
        )
    assert response.status_code == 200
    # Stored at once (not waiting for a sweep), its flow task owed.
    inbound = InboundMessage.objects.get()
    assert inbound.processed_at is None
    assert WebhookEvent.objects.get().processed_at is not None
    assert queued_tasks(broker_conn) == []

    # Redis is back: the sweeper publishes the flow; there is no event left to ingest.
    InboundMessage.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    report = sweeper.stranded_messages_sweep()
    assert (report["flows"], report["events"]) == (1, 0)
    connection.close()


@pytest.mark.django_db
def test_an_event_ingested_twice_changes_nothing_the_second_time(
    published, django_capture_on_commit_callbacks
):
    make_number()
    event = WebhookEvent.objects.create(
        body=encode(with_new_wamids(load_fixture("message__text"))).decode()
    )
    with django_capture_on_commit_callbacks(execute=True):
        first = ingest.webhook_event_ingest(event_id=event.pk)
    assert (first.new_messages, first.skipped) == (1, False)
    # The same event again (a redelivered task, a sweep racing it), even if marked unprocessed.
    WebhookEvent.objects.update(processed_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        again = ingest.webhook_event_ingest(event_id=event.pk)
    assert (again.new_messages, again.duplicate_messages) == (0, 1)
    assert InboundMessage.objects.count() == 1
    assert len(published.of("process_flow_for_message_task")) == 1


@pytest.mark.django_db
def test_a_missing_event_is_skipped():
    assert ingest.webhook_event_ingest(event_id=987654).skipped


@pytest.mark.django_db
@FUZZ
@given(event=shaped(json_values))
def test_any_meta_shaped_event_ingests_without_raising(published, event):
    make_number()
    stored = WebhookEvent.objects.create(body=json.dumps(event))
    result = ingest.webhook_event_ingest(event_id=stored.pk)
    assert not result.skipped
    assert WebhookEvent.objects.get(pk=stored.pk).processed_at is not None
    assert OutboundMessage.objects.count() == 0


@pytest.mark.django_db
def test_a_later_events_task_applies_the_earlier_pending_event_first(
    published, django_capture_on_commit_callbacks
):
    """Two workers may take a burst's ingest tasks in any order; messages keep POST order."""
    make_number()
    first, second = (
        WebhookEvent.objects.create(
            body=encode(with_new_wamids(load_fixture("message__text"))).decode()
        )
        for _ in range(2)
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest.webhook_event_ingest(event_id=second.pk)
    assert result.new_messages == 2
    wamids = [
        json.loads(e.body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        for e in (first, second)
    ]
    assert list(InboundMessage.objects.order_by("pk").values_list("wamid", flat=True)) == wamids
    assert ingest.webhook_event_ingest(event_id=first.pk).skipped
    assert len(published.of("process_flow_for_message_task")) == 1  # one per contact


@pytest.mark.django_db
def test_an_earlier_event_that_fails_does_not_hold_up_the_later_one(monkeypatch, published):
    make_number()
    bad = WebhookEvent.objects.create(
        body=encode(with_new_wamids(load_fixture("message__text"))).decode()
    )
    good = WebhookEvent.objects.create(
        body=encode(with_new_wamids(load_fixture("message__text"))).decode()
    )
    real = ingest._messages_insert

    def explode(batch, result):
        if WebhookEvent.objects.get(pk=bad.pk).processed_at is None and not getattr(
            explode, "done", False
        ):
            explode.done = True
            raise RuntimeError("poison")
        return real(batch, result)

    monkeypatch.setattr(ingest, "_messages_insert", explode)
    assert ingest.webhook_event_ingest(event_id=good.pk).new_messages == 1
    assert WebhookEvent.objects.get(pk=bad.pk).processed_at is None  # left to the sweeper
    assert WebhookEvent.objects.get(pk=good.pk).processed_at is not None


@pytest.mark.django_db(transaction=True)
def test_the_ingest_is_published_only_once_the_answer_is_sent(published, rf):
    """The view answers from the INSERT alone; the server's close() (after the body is
    written) publishes the ingest task."""
    from meta_integration.views import whatsapp_webhook

    make_number()
    body = encode(with_new_wamids(load_fixture("message__text")))
    request = rf.post(
        WEBHOOK_URL,
        data=body,
        content_type="application/json",
        headers={HEADER: sign(body, "sandbox-app-secret")},
    )
    response = whatsapp_webhook(request)
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert published.calls == []  # nothing on the broker while Meta waits
    response.close()
    assert published.of("ingest_webhook_event_task") == [
        ([event.pk], {"priority": 0, "retry": False})
    ]
    connection.close()


def test_status_only_events_are_ingested_behind_customer_messages():
    from meta_integration.ingest import ingest_priority
    from whatsappcrm_backend.celery import Priority

    message = b'{"entry":[{"changes":[{"value":{"messages":[{"id":"wamid.1"}]}}]}]}'
    statuses = b'{"entry":[{"changes":[{"value":{"statuses":[{"id":"wamid.1"}]}}]}]}'
    assert ingest_priority(message) == Priority.REPLY
    assert ingest_priority(statuses) == Priority.RECEIPT
    # Meta's status callbacks say `"field": "messages"`: a value, not the messages key.
    real_status = b'{"entry":[{"changes":[{"value":{"statuses":[]},"field":"messages"}]}]}'
    assert ingest_priority(real_status) == Priority.RECEIPT
    assert ingest_priority(b'{"value": {"messages" : []}}') == Priority.REPLY
