"""Status-only webhooks are applied by a coalesced drain, not one ingest task per POST.

Meta calls back three times per reply (sent, delivered, read). A POST queues a drain only when
none is queued; the drain applies every pending event in one transaction, its statuses in bulk
with a number of queries that does not grow with the events.
"""

from __future__ import annotations

import copy
import uuid

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from meta_integration import ingest
from meta_integration.models import InboundMessage, OutboundMessage, OutboundStatus, WebhookEvent
from meta_integration.signatures import HEADER, sign
from tests.factories import new_wamid
from tests.meta_integration.conftest import WEBHOOK_URL, encode, load_fixture, with_new_wamids
from tests.meta_integration.test_statuses import make_outbound
from tests.meta_integration.test_webhook import broker_down

DRAIN = "drain_status_events_task"
INGEST = "ingest_webhook_event_task"


def status_body(wamid: str, value: str, second: int = 0) -> str:
    event = copy.deepcopy(load_fixture("status__sent"))
    status = event["entry"][0]["changes"][0]["value"]["statuses"][0]
    status.update(id=wamid, status=value, timestamp=str(1_750_000_000 + second))
    return encode(event).decode()


def store(body: str) -> int:
    return ingest.webhook_event_store(raw_body=body)


@pytest.mark.django_db
def test_the_drain_applies_every_pending_status_event_and_marks_them_processed(contact):
    rows = [make_outbound(contact, status=OutboundStatus.SENDING) for _ in range(3)]
    for row in rows:
        for second, value in enumerate(["sent", "delivered", "read"], start=1):
            store(status_body(row.wamid, value, second))
    store(status_body(new_wamid(), "delivered"))  # a wamid we never sent: ignored, processed

    result = ingest.status_events_drain()

    assert (result.events, result.status_only_events, result.more) == (10, 10, False)
    assert result.statuses["applied"] == 9
    assert not WebhookEvent.objects.filter(processed_at__isnull=True).exists()
    assert set(WebhookEvent.objects.values_list("statuses_count", flat=True)) == {1}
    for row in OutboundMessage.objects.all():
        assert row.status == OutboundStatus.READ
        assert row.sent_at and row.delivered_at and row.read_at


@pytest.mark.django_db
def test_drain_queries_do_not_grow_with_the_number_of_status_events(contact):
    def queries_to_drain(replies: int) -> int:
        rows = [make_outbound(contact, status=OutboundStatus.SENDING) for _ in range(replies)]
        for row in rows:
            for value in ("sent", "delivered", "read"):
                store(status_body(row.wamid, value))
        with CaptureQueriesContext(connection) as queries:
            assert ingest.status_events_drain().status_only_events == 3 * replies
        return len(queries)

    assert queries_to_drain(2) == queries_to_drain(40)


@pytest.mark.django_db
def test_a_message_event_pending_in_the_drain_is_ingested_in_order_with_its_flow_owed(
    number, published, django_capture_on_commit_callbacks
):
    message = load_fixture("message__text")
    store(encode(with_new_wamids(message)).decode())
    store(status_body(new_wamid(), "sent"))

    with django_capture_on_commit_callbacks(execute=True):
        result = ingest.status_events_drain()

    assert (result.events, result.status_only_events) == (2, 1)
    inbound = InboundMessage.objects.get()
    assert published.of("process_flow_for_message_task") == [
        ([inbound.contact_id], {"priority": 0, "retry": False})
    ]
    assert not WebhookEvent.objects.filter(processed_at__isnull=True).exists()


@pytest.mark.django_db
def test_a_full_drain_queues_the_next_one(contact, published, django_capture_on_commit_callbacks):
    for _ in range(5):
        store(status_body(new_wamid(), "sent"))
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest.status_events_drain(limit=3)
    assert (result.events, result.more) == (3, True)
    assert published.names() == [DRAIN]
    assert WebhookEvent.objects.filter(processed_at__isnull=True).count() == 2


@pytest.mark.django_db
def test_a_status_the_bulk_path_cannot_apply_falls_back_to_one_event_at_a_time(
    contact, monkeypatch
):
    row = make_outbound(contact, status=OutboundStatus.SENDING)
    store(status_body(row.wamid, "sent"))
    store(status_body(row.wamid, "delivered", 2))

    def explode(**_):
        raise RuntimeError("bulk path broken")

    monkeypatch.setattr(ingest, "_status_events_apply", lambda *a: explode())
    ingest.status_events_drain()
    row.refresh_from_db()
    assert row.status == OutboundStatus.DELIVERED
    assert not WebhookEvent.objects.filter(processed_at__isnull=True).exists()


def post_signed(raw: bytes):
    """POST through the real view; the test client calls close(): the after-response dispatch."""
    return Client().post(
        WEBHOOK_URL,
        data=raw,
        content_type="application/json",
        headers={HEADER: sign(raw, "sandbox-app-secret")},
    )


def post_status(body: str):
    return post_signed(body.encode())


def post_message():
    return post_signed(encode(with_new_wamids(load_fixture("message__text"))))


@pytest.mark.django_db(transaction=True)
def test_status_posts_queue_one_drain_until_it_runs(contact, published):
    for _ in range(3):
        assert post_status(status_body(new_wamid(), "sent")).status_code == 200
    assert published.names() == [DRAIN]  # three POSTs, one drain
    # Delayed a little, so the statuses that arrive meanwhile share the drain.
    assert published.of(DRAIN) == [
        ([], {"priority": 3, "retry": False, "countdown": ingest.STATUS_DRAIN_DELAY_SECONDS})
    ]

    assert ingest.status_events_drain().status_only_events == 3
    post_status(status_body(new_wamid(), "sent"))  # stored after the drain began: a new one
    assert published.names() == [DRAIN, DRAIN]
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_message_post_still_gets_its_own_ingest_at_reply_priority(number, published):
    response = post_message()
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert published.calls == [(INGEST, [event.pk], {"priority": 0, "retry": False})]
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_a_status_post_is_applied_in_the_request(contact):
    row = make_outbound(contact, status=OutboundStatus.SENDING, wamid=f"wamid.{uuid.uuid4().hex}")
    with broker_down():
        assert post_status(status_body(row.wamid, "delivered")).status_code == 200
    row.refresh_from_db()
    assert row.status == OutboundStatus.DELIVERED
    assert WebhookEvent.objects.get().processed_at is not None
    # The failed publish gave its key back: the next status POST queues a drain at once.
    assert cache.get(ingest.STATUS_DRAIN_QUEUED_KEY) is None
    connection.close()


@pytest.mark.django_db
def test_a_message_ingest_leaves_earlier_status_events_to_the_drain(contact, number):
    row = make_outbound(contact, status=OutboundStatus.SENDING)
    status_event = ingest.webhook_event_store(
        raw_body=status_body(row.wamid, "sent"), carries_messages=False
    )
    earlier_message = store(encode(with_new_wamids(load_fixture("message__text"))).decode())
    own = store(encode(with_new_wamids(load_fixture("message__text"))).decode())

    result = ingest.webhook_event_ingest(event_id=own)

    assert result.new_messages == 2  # its own and the earlier message, in order
    pending = set(
        WebhookEvent.objects.filter(processed_at__isnull=True).values_list("pk", flat=True)
    )
    assert pending == {status_event}
    assert earlier_message not in pending
    assert ingest.status_events_drain().status_only_events == 1
    row.refresh_from_db()
    assert row.status == OutboundStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_the_view_marks_what_each_event_carries(number, published):
    post_status(status_body(new_wamid(), "read"))
    post_message()
    assert list(WebhookEvent.objects.order_by("pk").values_list("carries_messages", flat=True)) == [
        False,
        True,
    ]
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_customer_message_marks_the_chat_active_and_a_status_does_not(
    number, published, redis_conn
):
    from meta_integration import ratelimit

    post_status(status_body(new_wamid(), "sent"))
    assert not ratelimit.chat_active()
    post_message()
    assert ratelimit.chat_active()
    assert 0 < redis_conn.pttl(ratelimit.CHAT_ACTIVE_KEY) <= ratelimit.CHAT_ACTIVE_MS
    connection.close()
