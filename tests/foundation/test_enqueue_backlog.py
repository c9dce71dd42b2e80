"""`manage.py enqueue_backlog` against a real Redis: what lands on which queue and priority."""

from __future__ import annotations

import ast
import io
import json

import pytest
from django.core.management import CommandError, call_command

from meta_integration.models import Contact, OutboundMessage, OutboundStatus
from tests.factories import make_number
from whatsappcrm_backend.celery import Priority
from whatsappcrm_backend.management.commands.enqueue_backlog import queue_depths


def queued_messages(broker, name: str) -> list[dict]:
    return [json.loads(raw) for raw in broker.lrange(name, 0, -1)]


def test_bulk_sends_and_football_tasks_land_on_their_queues_at_bulk_priority(
    transactional_db, redis_conn, broker_conn
):
    make_number()
    call_command("enqueue_backlog", bulk_sends=25, football=40, contacts=10, stdout=io.StringIO())

    rows = OutboundMessage.objects.all()
    assert rows.count() == 25
    assert set(rows.values_list("priority", flat=True)) == {Priority.BULK}
    assert set(rows.values_list("status", flat=True)) == {OutboundStatus.QUEUED}
    assert set(rows.values_list("message_type", flat=True)) == {"template"}
    assert Contact.objects.filter(wa_id__startswith="26599").count() == 10

    # Only BULK lists hold anything, and none on the latency queue: nothing waits ahead of,
    # or runs beside, a reply.
    assert queue_depths() == {
        "celery": {},
        "bulk": {9: 25},
        "football_data": {9: 40},
        "maintenance": {},
    }
    sends = queued_messages(broker_conn, "bulk:9")
    assert {m["headers"]["task"] for m in sends} == {"send_whatsapp_message_task"}
    assert {m["properties"]["priority"] for m in sends} == {Priority.BULK}
    sent_ids = sorted(ast.literal_eval(m["headers"]["argsrepr"])[0] for m in sends)
    assert sent_ids == sorted(rows.values_list("pk", flat=True))
    football = queued_messages(broker_conn, "football_data:9")
    assert {m["headers"]["task"] for m in football} == {"fetch_odds_for_single_event_task"}


def test_a_second_run_reuses_the_contacts_and_adds_new_rows(
    transactional_db, redis_conn, broker_conn
):
    make_number()
    call_command("enqueue_backlog", bulk_sends=5, contacts=3, stdout=io.StringIO())
    call_command("enqueue_backlog", bulk_sends=5, contacts=3, stdout=io.StringIO())
    assert OutboundMessage.objects.count() == 10
    assert Contact.objects.filter(wa_id__startswith="26599").count() == 3
    assert broker_conn.llen("bulk:9") == 10


@pytest.mark.parametrize(
    "options",
    [
        {"bulk_sends": -1},
        {"football": 3, "football_task": "send_whatsapp_message_task"},  # not a football route
        {"bulk_sends": 3, "contacts": 0},
    ],
)
def test_bad_input_is_refused_and_queues_nothing(
    transactional_db, redis_conn, broker_conn, options
):
    make_number()
    with pytest.raises(CommandError):
        call_command("enqueue_backlog", stdout=io.StringIO(), **options)
    assert OutboundMessage.objects.count() == 0
    assert queue_depths() == {"celery": {}, "bulk": {}, "football_data": {}, "maintenance": {}}


def test_sends_need_a_configured_number(transactional_db, redis_conn, broker_conn):
    with pytest.raises(CommandError, match="bootstrap_demo"):
        call_command("enqueue_backlog", bulk_sends=2, stdout=io.StringIO())
    assert OutboundMessage.objects.count() == 0
