"""Customer-visible promises, end to end: replied once, in order, never lost."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

import pytest
from django.test import Client

from meta_integration.models import InboundMessage, OutboundMessage, OutboundStatus
from tests.conftest import wait_for
from tests.factories import new_wamid
from tests.integration.conftest import inbound_event, signed
from whatsappcrm_backend import publishing
from whatsappcrm_backend.celery import Priority, app
from whatsappcrm_backend.tasks import record_start_task

pytestmark = pytest.mark.worker


def settle(seconds: float = 1.5) -> None:
    """Give a wrongly-duplicated send time to show up before asserting it did not."""
    time.sleep(seconds)


def test_a_webhook_delivered_five_times_is_replied_once(hot_path):
    hot_path.start_workers()
    wamid = new_wamid()
    event = inbound_event("15550001001", "hi", wamid=wamid)
    for _ in range(5):
        assert hot_path.post(event).status_code == 200

    first = hot_path.wait_reply(wamid)
    settle()
    assert InboundMessage.objects.filter(wamid=wamid).count() == 1
    replies = hot_path.replies_to(wamid)
    keys = [m["biz_opaque_callback_data"] for m in replies]
    assert len(keys) == len(set(keys)), "a reply was sent twice"
    assert [k for k in keys if k.endswith(":0")] == [f"{wamid}:0"]
    # One flow run: the sandbox saw exactly the rows that run created, each once.
    assert len(replies) == OutboundMessage.objects.filter(in_reply_to__wamid=wamid).count()
    assert first[0]["to"] == "15550001001"
    # The sandbox's signed status callbacks complete the row through the webhook.
    wait_for(
        lambda: OutboundMessage.objects.filter(
            idempotency_key=f"{wamid}:0", status=OutboundStatus.READ
        ).exists()
    )


def test_a_burst_from_one_contact_is_answered_in_order_by_two_workers(hot_path):
    hot_path.start_workers(count=2, concurrency=1)
    wa_id = "15550001002"
    wamids = [new_wamid() for _ in range(8)]
    for index, wamid in enumerate(wamids):
        # An album: several messages from one customer within milliseconds.
        assert hot_path.post(inbound_event(wa_id, f"photo {index}", wamid=wamid)).status_code == 200

    wait_for(lambda: all(hot_path.replies_to(w) for w in wamids), timeout=30)
    settle()
    first_replies = [
        m["biz_opaque_callback_data"]
        for m in hot_path.replies(wa_id)
        if m["biz_opaque_callback_data"].endswith(":0")
    ]
    assert first_replies == [f"{w}:0" for w in wamids]


def test_redis_down_during_the_webhook_loses_nothing(hot_path, settings):
    wamid = new_wamid()
    body, headers = signed(inbound_event("15550001003", "hi", wamid=wamid))
    with broker_unreachable():
        response = Client().post(
            "/webhooks/whatsapp/",
            data=body,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=headers["X-Hub-Signature-256"],
        )
    assert response.status_code == 200
    assert InboundMessage.objects.filter(wamid=wamid, processed_at=None).exists()
    assert publishing.publish("noop_task"), "the broker is back"

    # Redis is back; the worker starts and the beat-driven sweeper finds the stranded message.
    hot_path.start_workers()
    settle(0.5)
    assert hot_path.replies_to(wamid) == []
    settings.META_SWEEP_INBOUND_GRACE_SECONDS = 0
    from meta_integration.tasks import sweep_stranded_messages_task

    sweep_stranded_messages_task.apply()
    hot_path.wait_reply(wamid)
    assert InboundMessage.objects.get(wamid=wamid).processed_at is not None


def test_a_reply_overtakes_a_bulk_backlog_on_the_same_queue(hot_path, redis_conn):
    hot_path.start_workers(concurrency=1)
    with app.producer_or_acquire() as producer:
        for index in range(300):
            record_start_task.apply_async(
                args=["test:backlog", f"bulk-{index}", 0.02],
                priority=Priority.BULK,
                producer=producer,
            )
    wamid = new_wamid()
    assert hot_path.post(inbound_event("15550001004", "hi", wamid=wamid)).status_code == 200
    hot_path.wait_reply(wamid, timeout=30)
    # Two tasks (flow, send) ran ahead of a 6-second backlog: most of it is still waiting.
    assert redis_conn.llen("test:backlog") < 100


@contextmanager
def broker_unreachable():
    """Every publish from this process goes to a closed port (connection refused)."""
    saved = app.conf.broker_url, app.conf.broker_write_url
    app.conf.broker_url = app.conf.broker_write_url = "redis://127.0.0.1:1/0"
    app._pool = app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_write_url = saved
        app._pool = app.amqp._producer_pool = None


def test_the_ingesting_worker_runs_the_flow_sends_the_reply_and_the_receipt_itself(hot_path):
    # Four tasks' work, one broker hop (whatsappcrm_backend.handoff): the console still
    # counts the flow, the send and the read receipt, as runs with no queue wait.
    from django_redis import get_redis_connection

    from whatsappcrm_backend.console import metrics

    cache_conn = get_redis_connection("default")
    cache_conn.delete(*cache_conn.keys("ops:*") or ["-"])
    hot_path.start_workers()
    wamid = new_wamid()
    assert hot_path.post(inbound_event("15550001009", "hi", wamid=wamid)).status_code == 200
    hot_path.wait_reply(wamid)

    def timings() -> dict[str, list[dict]]:
        found: dict[str, list[dict]] = {}
        for key in cache_conn.keys("ops:tid:*"):
            timing = json.loads(cache_conn.get(key))
            found.setdefault(timing["task"], []).append({"key": key.decode(), **timing})
        return found

    wait_for(lambda: "send_read_receipt_task" in metrics.task_stats(900), timeout=10)
    runs = wait_for(lambda: "ingest_webhook_event_task" in timings() and timings(), timeout=10)
    stats = metrics.task_stats(900)
    assert len(runs["ingest_webhook_event_task"]) == 1
    assert InboundMessage.objects.get(wamid=wamid).read_receipt_sent_at is not None
    for name in (
        "process_flow_for_message_task",
        "send_whatsapp_message_task",
        "send_read_receipt_task",
    ):
        assert stats[name]["count"] >= 1, f"{name} did not run"
        assert stats[name]["wait_p99"] <= 0.5  # the first bucket: no queue wait
        assert name not in runs, f"{name} went through the broker"
