"""The webhook view and its ingest: verification, signature over raw bytes, limits, one stored
event per POST, then (in the ingest task, run here as a worker would) one transaction and the
publishes."""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from meta_integration import ingest, sweeper
from meta_integration.models import Contact, InboundMessage, WebhookEvent
from meta_integration.signatures import HEADER, sign
from tests.factories import make_contact, new_wamid
from tests.meta_integration.conftest import (
    FIXTURES,
    WEBHOOK_URL,
    encode,
    load_fixture,
    messages_of,
    with_new_wamids,
)
from whatsappcrm_backend import publishing
from whatsappcrm_backend.celery import Priority

pytestmark = pytest.mark.django_db

FLOW = "process_flow_for_message_task"
RECEIPT = "send_read_receipt_task"
INGEST = "ingest_webhook_event_task"


def run_ingests(published, capture) -> list[int]:
    """Run the ingest tasks the webhook published (a worker's part), then forget them, so the
    record shows what the ingest published. Returns the event ids."""
    event_ids = [args[0] for args, _ in published.of(INGEST)]
    published.calls[:] = [call for call in published.calls if call[0] != INGEST]
    for event_id in event_ids:
        with capture(execute=True):
            ingest.webhook_event_ingest(event_id=event_id)
    return event_ids


@pytest.fixture
def post_webhook(post_webhook, published, django_capture_on_commit_callbacks):
    """POST (conftest's post_webhook), then run the ingest it published."""

    def post(*args, **kwargs):
        response = post_webhook(*args, **kwargs)
        run_ingests(published, django_capture_on_commit_callbacks)
        return response

    return post


# --- GET: the subscription handshake ----------------------------------------------------------


def test_verification_answers_the_raw_challenge(client, settings):
    response = client.get(
        WEBHOOK_URL,
        {
            "hub.mode": "subscribe",
            "hub.verify_token": settings.META_VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.content == b"1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {
            "hub.mode": "unsubscribe",
            "hub.verify_token": "sandbox-verify-token",
            "hub.challenge": "1",
        },
        {"hub.challenge": "1"},
        {},
    ],
)
def test_verification_refuses_a_wrong_token_or_mode(client, params):
    assert client.get(WEBHOOK_URL, params).status_code == 403


def test_other_methods_are_refused(client):
    assert client.put(WEBHOOK_URL).status_code == 405


# --- POST: signature -------------------------------------------------------------------------


def test_a_valid_signature_is_accepted_and_stored(post_webhook, number, published):
    response = post_webhook(with_new_wamids(load_fixture("message__text")))
    assert response.status_code == 200
    assert InboundMessage.objects.count() == 1
    assert WebhookEvent.objects.count() == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,  # missing
        "sha256=" + "0" * 64,  # wrong
        "sha256=",
        "md5=abc",
        "sha256=" + sign(b"other body", "sandbox-app-secret")[7:],
        "sha256=ÿÿ",  # not ASCII
    ],
)
def test_a_missing_or_wrong_signature_is_403_and_writes_nothing(
    post_webhook, number, published, signature
):
    response = post_webhook(load_fixture("message__text"), signature=signature)
    assert response.status_code == 403
    assert WebhookEvent.objects.count() == 0
    assert InboundMessage.objects.count() == 0
    assert published.calls == []


def test_a_body_signed_with_another_secret_is_refused(post_webhook, number):
    assert post_webhook(load_fixture("message__text"), secret="not-the-secret").status_code == 403


def test_non_ascii_signed_over_the_raw_utf8_bytes(post_webhook, number, published):
    raw = (FIXTURES / "message__emoji.json").read_bytes()  # raw UTF-8 emoji, pretty-printed
    assert "😮".encode() in raw
    response = post_webhook(raw)
    assert response.status_code == 200
    inbound = InboundMessage.objects.get()
    assert inbound.text == "Olá 😮 — ¿qué tal? 你好 👍🏽"
    assert inbound.contact.profile_name == "Zoë Ångström 🎉"


def test_non_ascii_signed_over_metas_escaped_bytes(post_webhook, number, published):
    raw = encode(with_new_wamids(load_fixture("message__emoji")))
    assert b"\\ud83d\\ude2e" in raw  # Meta's escaped-unicode serialisation
    assert post_webhook(raw).status_code == 200
    assert "😮" in InboundMessage.objects.get().text


def test_a_signature_over_re_serialised_json_does_not_match(post_webhook, number):
    # Why the view verifies the raw bytes: the same JSON serialised differently is other bytes.
    event = load_fixture("message__emoji")
    raw = json.dumps(event, ensure_ascii=False).encode()
    other = encode(event)
    assert post_webhook(raw, signature=sign(other, "sandbox-app-secret")).status_code == 403


def test_an_empty_app_secret_refuses_with_503(post_webhook, settings):
    body = encode(load_fixture("message__text"))
    signature = sign(body, settings.META_APP_SECRET)
    settings.META_APP_SECRET = ""
    assert post_webhook(body, signature=signature).status_code == 503
    assert WebhookEvent.objects.count() == 0


# --- POST: limits and malformed bodies -------------------------------------------------------


def test_a_body_over_the_limit_is_413(post_webhook, settings, number):
    settings.META_WEBHOOK_MAX_BYTES = 100
    assert post_webhook(load_fixture("message__text")).status_code == 413
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe{}", b"[1, NaN]", b"", b'"a string"'])
def test_broken_json_that_is_signed_is_400(post_webhook, raw):
    assert post_webhook(raw).status_code == 400
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize("fixture", ["message_echoes__text", "status__played"])
def test_a_signed_event_we_do_not_handle_is_200_and_logged(
    post_webhook, published, caplog, fixture
):
    with caplog.at_level(logging.INFO, logger="meta_integration.ingest"):
        assert post_webhook(load_fixture(fixture)).status_code == 200
    assert "not handled" in caplog.text
    assert WebhookEvent.objects.get().processed_at is not None
    assert published.calls == []


def test_a_template_event_is_200_stored_and_processed(post_webhook, published):
    assert post_webhook(load_fixture("template_status_update__approved")).status_code == 200
    assert WebhookEvent.objects.get().processed_at is not None
    assert not {FLOW, RECEIPT} & set(published.names())


def test_a_message_for_an_unknown_number_is_skipped_with_200(
    post_webhook, number, published, caplog
):
    assert post_webhook(with_new_wamids(load_fixture("message__unknown_number"))).status_code == 200
    assert InboundMessage.objects.count() == 0
    assert published.calls == []
    assert "unknown or inactive phone_number_id" in caplog.text


def test_an_inactive_number_does_not_route(post_webhook, number, published):
    number.active = False
    number.save()
    post_webhook(with_new_wamids(load_fixture("message__text")))
    assert InboundMessage.objects.count() == 0


# --- POST: ingestion and publishes -----------------------------------------------------------


def test_new_message_publishes_the_flow_task_and_a_read_receipt(post_webhook, number, published):
    event = with_new_wamids(load_fixture("message__text"))
    post_webhook(event)
    inbound = InboundMessage.objects.get()
    assert inbound.wamid == messages_of(event)[0]["id"]
    assert published.of(FLOW) == [
        ([inbound.contact_id], {"priority": Priority.REPLY, "retry": False})
    ]
    assert published.of(RECEIPT) == [([inbound.pk], {"priority": Priority.RECEIPT, "retry": False})]
    # The reply's task goes first.
    assert published.names() == [FLOW, RECEIPT]


def test_the_same_webhook_posted_five_times_stores_and_publishes_once(
    post_webhook, number, published
):
    body = encode(with_new_wamids(load_fixture("message__text")))
    for _ in range(5):
        assert post_webhook(body).status_code == 200
    assert InboundMessage.objects.count() == 1
    assert len(published.of(FLOW)) == 1
    assert len(published.of(RECEIPT)) == 1
    assert WebhookEvent.objects.count() == 5  # every delivery is kept as evidence


def test_a_batch_handles_every_entry_change_and_message(post_webhook, number, published):
    post_webhook(load_fixture("message__batched"))
    assert set(InboundMessage.objects.values_list("wamid", flat=True)) == {
        "wamid.BATCH1",
        "wamid.BATCH2",
        "wamid.BATCH3",
    }
    ann = Contact.objects.get(wa_id="16505550001")
    bob = Contact.objects.get(wa_id="16505550002")
    # One flow task per contact (Ann wrote twice), one receipt per message.
    assert sorted(args[0] for args, _ in published.of(FLOW)) == sorted([ann.pk, bob.pk])
    assert len(published.of(RECEIPT)) == 3
    assert WebhookEvent.objects.get().messages_count == 3


def test_a_batch_with_a_known_and_a_new_message_publishes_for_the_new_one(
    post_webhook, number, published
):
    event = load_fixture("message__batched")
    post_webhook(event)
    published.calls.clear()
    messages_of(event)[1]["id"] = "wamid.BATCH-NEW"  # Bob's message is new, Ann's are known
    post_webhook(event)
    bob = Contact.objects.get(wa_id="16505550002")
    assert published.of(FLOW) == [([bob.pk], {"priority": Priority.REPLY, "retry": False})]
    assert len(published.of(RECEIPT)) == 1


def test_the_contact_is_upserted_with_profile_user_id_and_window(post_webhook, number, published):
    event = with_new_wamids(load_fixture("message__text"))
    post_webhook(event)
    contact = Contact.objects.get(wa_id="972987654321")
    assert contact.profile_name == "Test Name"
    assert contact.user_id == "US.13491208655302741918"
    assert contact.number == number
    assert contact.last_seen_at is not None
    assert contact.last_inbound_at == InboundMessage.objects.get().sent_at


def test_a_later_event_without_a_name_keeps_the_known_name(post_webhook, number, published):
    post_webhook(with_new_wamids(load_fixture("message__text")))
    event = with_new_wamids(load_fixture("message__system"))  # no contacts[] at all
    messages_of(event)[0]["from"] = "972987654321"
    post_webhook(event)
    contact = Contact.objects.get(wa_id="972987654321")
    assert contact.profile_name == "Test Name"
    assert contact.inbound_messages.count() == 2


def test_an_older_message_never_moves_the_window_back(post_webhook, number, published):
    newer = with_new_wamids(load_fixture("message__text"))
    messages_of(newer)[0]["timestamp"] = "1800000000"
    older = with_new_wamids(load_fixture("message__text"))
    messages_of(older)[0]["timestamp"] = "1700000000"
    post_webhook(newer)
    post_webhook(older)
    contact = Contact.objects.get(wa_id="972987654321")
    assert contact.last_inbound_at.timestamp() == 1800000000


def test_interactive_reply_is_stored_with_reply_id_title_and_context(
    post_webhook, number, published
):
    post_webhook(with_new_wamids(load_fixture("message__interactive_list_reply")))
    inbound = InboundMessage.objects.get()
    assert (inbound.message_type, inbound.reply_id, inbound.text) == (
        "interactive",
        "callback_data",
        "title",
    )
    assert inbound.context_wamid == "wamid.xyzxyz"
    assert inbound.payload["interactive"]["list_reply"]["description"] == "description"


def test_the_request_does_one_insert_and_publishes_only_the_ingest(
    client, number, published, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    body = encode(with_new_wamids(load_fixture("message__text")))
    headers = {HEADER: sign(body, "sandbox-app-secret")}
    # The request: the event INSERT and nothing else (no parsing into rows, no lock taken).
    with django_assert_max_num_queries(1), django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            WEBHOOK_URL, data=body, content_type="application/json", headers=headers
        )
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.processed_at is None
    assert published.calls == [(INGEST, [event.pk], {"priority": Priority.REPLY, "retry": False})]


def test_the_ingest_query_count_is_pinned(
    client, number, published, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    body = encode(with_new_wamids(load_fixture("message__text")))
    headers = {HEADER: sign(body, "sandbox-app-secret")}
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            client.post(WEBHOOK_URL, data=body, content_type="application/json", headers=headers)
    first, again = [args[0] for args, _ in published.of(INGEST)]
    # The transaction (a savepoint inside the test's), the event, earlier pending events,
    # number lookup, known wamids, contact upsert, contact window, pair window insert +
    # update, savepoint + message insert + release, the event marked processed.
    with django_assert_max_num_queries(15):
        ingest.webhook_event_ingest(event_id=first)
    # A redelivery: the "still pending?" read, event, earlier pending events, number, known
    # wamids, mark.
    with django_assert_max_num_queries(8):
        ingest.webhook_event_ingest(event_id=again)
    assert ingest.webhook_event_ingest(event_id=first).skipped  # processed: nothing again
    assert InboundMessage.objects.count() == 1


def test_an_event_with_many_statuses_applies_them_in_a_few_statements(
    client, number, published, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    from meta_integration.models import OutboundMessage, OutboundStatus

    contact = make_contact(number=number)
    wamids = [new_wamid() for _ in range(20)]
    for i, wamid in enumerate(wamids):
        OutboundMessage.objects.create(
            contact=contact,
            number=number,
            idempotency_key=f"k{i}",
            message_type="text",
            payload={},
            status=OutboundStatus.SENT,
            wamid=wamid,
        )
    statuses = [
        {"id": w, "status": s, "timestamp": str(1750000000 + n), "recipient_id": contact.wa_id}
        for w in wamids
        for n, s in enumerate(["delivered", "read"])
    ]
    event = load_fixture("message__text")
    value = event["entry"][0]["changes"][0]["value"]
    value.pop("messages"), value.pop("contacts", None)
    value["statuses"] = statuses
    body = encode(event)
    headers = {HEADER: sign(body, "sandbox-app-secret")}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            WEBHOOK_URL, data=body, content_type="application/json", headers=headers
        )
    assert response.status_code == 200
    # 40 statuses: the "still pending?" read, the savepoint, the event, earlier pending events,
    # one SELECT of the known wamids, one UPDATE per status value, the event marked processed.
    with django_assert_max_num_queries(9):
        run_ingests(published, django_capture_on_commit_callbacks)
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {OutboundStatus.READ}
    assert not OutboundMessage.objects.filter(delivered_at__isnull=True).exists()
    row = OutboundMessage.objects.first()
    assert (row.delivered_at.timestamp(), row.read_at.timestamp()) == (1750000000, 1750000001)


# --- Redis down: the row is stored, the sweeper publishes later ------------------------------


@contextmanager
def broker_down():
    """The Celery app's producers point at a closed port (connection refused), then restore.

    (broker_write_url is saved first: read after broker_url changes, it falls back to it.)
    """
    app = publishing.app
    saved = {"broker_write_url": app.conf.broker_write_url, "broker_url": app.conf.broker_url}
    app.conf.broker_write_url = app.conf.broker_url = "redis://127.0.0.1:1/0"
    app._pool = app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_write_url = saved["broker_write_url"]
        app.conf.broker_url = saved["broker_url"]
        app._pool = app.amqp._producer_pool = None


def queued_tasks(redis_conn, queue: str = "celery") -> list[dict]:
    messages = []
    for key in redis_conn.keys(f"{queue}*"):
        if redis_conn.type(key) == b"list":
            messages += [json.loads(raw) for raw in redis_conn.lrange(key, 0, -1)]
    return messages


def test_redis_down_still_answers_200_and_the_sweeper_publishes_later(
    client, number, broker_conn, caplog, django_capture_on_commit_callbacks
):
    body = encode(with_new_wamids(load_fixture("message__text")))
    headers = {HEADER: sign(body, "sandbox-app-secret")}
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            WEBHOOK_URL, data=body, content_type="application/json", headers=headers
        )
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert "the sweeper will re-enqueue it" in caplog.text
    assert queued_tasks(broker_conn) == []

    # The broker is back; the sweeper finds the event nobody ingested.
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    report = sweeper.stranded_messages_sweep()
    assert report["events"] == 1, report
    [task] = [t for t in queued_tasks(broker_conn) if t["headers"]["task"] == INGEST]
    assert task["headers"]["argsrepr"] == f"[{event.pk}]"

    # Its ingest stores the message and publishes the flow task (the worker's part).
    with django_capture_on_commit_callbacks(execute=True):
        ingest.webhook_event_ingest(event_id=event.pk)
    inbound = InboundMessage.objects.get()
    [flow] = [t for t in queued_tasks(broker_conn) if t["headers"]["task"] == FLOW]
    assert flow["headers"]["argsrepr"] == f"[{inbound.contact_id}]"
    assert sweeper.stranded_messages_sweep()["events"] == 0  # processed now


# --- Concurrency: two deliveries of the same wamid at once ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_insert_one_row(number, published):
    body = encode(with_new_wamids(load_fixture("message__text")))
    headers = {HEADER: sign(body, "sandbox-app-secret")}
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        try:
            response = Client().post(
                WEBHOOK_URL, data=body, content_type="application/json", headers=headers
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    def run(target, args_list) -> None:
        threads = [threading.Thread(target=target, args=args) for args in args_list]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    run(deliver, [()] * 4)
    assert statuses == [200] * 4
    event_ids = [args[0] for args, _ in published.of(INGEST)]
    assert len(event_ids) == 4

    # Four workers ingest the four deliveries at once.
    errors: list[BaseException] = []

    def ingest_one(event_id: int) -> None:
        barrier.wait()
        try:
            ingest.webhook_event_ingest(event_id=event_id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    run(ingest_one, [(event_id,) for event_id in event_ids])
    assert errors == []
    assert InboundMessage.objects.count() == 1
    assert len(published.of(FLOW)) == 1


def test_existing_contact_keeps_its_row(post_webhook, number, published):
    existing = make_contact(wa_id="972987654321", number=number, profile_name="Old", blocked=True)
    event = with_new_wamids(load_fixture("message__text"))
    messages_of(event)[0]["id"] = new_wamid()
    post_webhook(event)
    contact = Contact.objects.get()
    assert contact.pk == existing.pk
    assert contact.blocked is True
    assert contact.profile_name == "Test Name"
