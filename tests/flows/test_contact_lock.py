"""The flow task's per-contact lock is a flows row, not the Contact row the webhook upserts:
a webhook for a contact never waits for that contact's flow transaction (PostgreSQL; SQLite has
no row locks and serialises every writer anyway)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction

from flows.actions import register, unregister
from flows.services import contact_messages_process, flows_import
from meta_integration.ingest import webhook_event_ingest
from meta_integration.models import Contact, InboundMessage, WebhookEvent
from tests.factories import make_contact, make_inbound
from tests.flows.conftest import flow
from tests.integration.conftest import inbound_event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="row locks: run with DATABASE_URL=postgres://...",
    ),
]


def _ingest_with_lock_timeout(wa_id: str) -> tuple[int, float]:
    """The webhook's ingest of one new message (contact upsert, message insert, one
    transaction); it fails after 3 s of waiting for a lock instead of hanging."""
    row = WebhookEvent.objects.create(body=json.dumps(inbound_event(wa_id, "are you there?")))
    started = time.monotonic()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '3s'")
        result = webhook_event_ingest(event_id=row.pk)
    return result.new_messages, time.monotonic() - started


def _in_thread(target) -> threading.Thread:
    def run() -> None:
        try:
            target()
        finally:
            connection.close()  # the thread's own connection

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_webhook_upsert_is_not_blocked_while_a_flow_transaction_is_open(redis_conn):
    entered, release = threading.Event(), threading.Event()

    @register("tests.slow", replace=True)
    def slow(call):
        entered.set()
        release.wait(20)  # an action that takes its time, inside the flow transaction
        return {}

    try:
        flows_import(
            data={
                "flows": [
                    flow(
                        "f",
                        [{"name": "a", "type": "action", "config": {"action": "tests.slow"}}],
                        is_default=True,
                    )
                ]
            }
        )
        contact = make_contact()
        first = make_inbound(contact, "hi")
        thread = _in_thread(lambda: contact_messages_process(contact_id=contact.pk))
        try:
            assert entered.wait(20), "the flow task never reached its action"
            new_messages, elapsed = _ingest_with_lock_timeout(contact.wa_id)
        finally:
            release.set()
            thread.join(20)
        assert new_messages == 1
        assert elapsed < 2.0, f"the webhook waited {elapsed:.2f}s for the flow transaction"
        assert Contact.objects.filter(pk=contact.pk, profile_name="Ann").exists()
        first.refresh_from_db()
        assert first.processed_at is not None  # the flow transaction committed after it
    finally:
        unregister("tests.slow")


def test_the_check_itself_sees_a_lock_on_the_contact_row(redis_conn):
    """The old lock (SELECT contact FOR UPDATE) makes the same webhook wait: the test above
    would fail if the flow task still took it."""
    contact = make_contact()
    locked, release = threading.Event(), threading.Event()

    def hold_contact_row() -> None:
        with transaction.atomic():
            Contact.objects.select_for_update().get(pk=contact.pk)
            locked.set()
            release.wait(20)

    thread = _in_thread(hold_contact_row)
    try:
        assert locked.wait(20)
        with pytest.raises(OperationalError, match="lock timeout"):
            _ingest_with_lock_timeout(contact.wa_id)
    finally:
        release.set()
        thread.join(20)
    assert not InboundMessage.objects.exists()
