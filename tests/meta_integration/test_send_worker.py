"""The send task on a real worker, real Redis and the sandbox over HTTP: faults, a permanent
error and its replay, and a worker killed mid-send (exactly one message reaches Meta)."""

from __future__ import annotations

import os
import signal

import pytest
from django.urls import reverse

from meta_integration import services, sweeper
from meta_integration.messages import text_message
from meta_integration.models import OutboundMessage, OutboundStatus
from tests.conftest import wait_for
from tests.factories import make_contact
from tests.meta_integration.conftest import WEBHOOK_URL, start_sandbox

pytestmark = pytest.mark.worker


@pytest.fixture
def graph(redis_conn):
    handle = start_sandbox(strict_encoding=True)
    yield handle
    handle.server.shutdown()
    handle.server.server_close()


def worker_env(graph) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "tests.meta_integration.worker_settings",
        "META_GRAPH_BASE_URL": graph.url,
    }


def wait_or_log(worker, predicate, timeout: float = 30.0, interval: float = 0.05):
    """wait_for, failing with the worker's log (what it did is the first thing to read)."""
    try:
        return wait_for(predicate, timeout=timeout, interval=interval)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{worker.log()[-6000:]}") from None


def status_of(row: OutboundMessage) -> str:
    row.refresh_from_db()
    return row.status


def queue(contact, key: str, body: str = "hello") -> OutboundMessage:
    row, _ = services.outbound_message_create(
        contact=contact, idempotency_key=key, message=text_message(body)
    )
    return row


def test_every_send_ends_sent_under_30_percent_retryable_faults(celery_worker_factory, graph):
    graph.app.set_faults({"error_rate": 0.3, "error_codes": [130429, 500], "seed": 30})
    worker = celery_worker_factory(concurrency=2, env=worker_env(graph))
    rows = [
        queue(make_contact(wa_id=f"1650555{i:04d}"), f"wamid.IN{i}:0", f"hi {i}") for i in range(20)
    ]

    wait_or_log(
        worker,
        lambda: OutboundMessage.objects.filter(status=OutboundStatus.SENT).count() == 20,
        timeout=60,
    )
    recorded = [m["biz_opaque_callback_data"] for m in graph.app.sent_messages()]
    assert sorted(recorded) == sorted(r.idempotency_key for r in rows)  # each exactly once
    faults = graph.app.stats()["faults"]
    assert faults > 0
    assert sum(OutboundMessage.objects.values_list("attempts", flat=True)) == 20 + faults


def test_a_permanent_error_fails_once_and_the_admin_replay_sends_it(
    celery_worker_factory, graph, admin_client
):
    graph.app.set_faults({"error_rate": 1.0, "error_codes": [131026]})
    worker = celery_worker_factory(env=worker_env(graph))
    row = queue(make_contact(), "wamid.IN:0")
    wait_or_log(worker, lambda: status_of(row) == OutboundStatus.FAILED)
    assert (row.attempts, row.error_code) == (1, 131026)
    assert graph.app.stats()["requests"] == 1

    graph.app.clear_faults()
    response = admin_client.post(
        reverse("admin:meta_integration_failedoutboundmessage_changelist"),
        {"action": "replay_failed", "_selected_action": [row.pk]},
    )
    assert response.status_code == 302
    wait_or_log(worker, lambda: status_of(row) == OutboundStatus.SENT)
    assert row.attempts == 2 and row.error_code is None
    [recorded] = graph.app.sent_messages()
    assert recorded["wamid"] == row.wamid


def kill_pool_child(worker) -> None:
    [child] = worker.pool_pids()
    os.kill(child, signal.SIGKILL)


def test_killed_after_meta_accepted_the_echo_completes_and_nothing_is_resent(
    celery_worker_factory, live_server, redis_conn, settings
):
    # Meta records the message at once and answers after 4 s; its status echo is held back
    # until the worker has died and the redelivered task has run, knowing nothing of the wamid.
    graph = start_sandbox(
        status_callbacks=True,
        webhook_url=live_server.url + WEBHOOK_URL,
        app_secret=settings.META_APP_SECRET,
        callback_delay_ms=0,
    )
    try:
        graph.app.set_faults({"latency_ms": 4000})
        graph.app.pause_callbacks()
        worker = celery_worker_factory(env=worker_env(graph))
        row = queue(make_contact(), "wamid.IN:0")
        wait_or_log(worker, lambda: graph.with_key("wamid.IN:0"))
        kill_pool_child(worker)
        graph.app.clear_faults()

        # task_reject_on_worker_lost redelivers the task; it finds the row `sending` and
        # leaves it alone instead of sending a second time.
        wait_or_log(worker, lambda: f"outbound {row.pk} is sending, not queued" in worker.log())
        assert status_of(row) == OutboundStatus.SENDING
        # Meta's status echo (biz_opaque_callback_data) completes the row.
        graph.app.pause_callbacks(False)
        wait_or_log(worker, lambda: status_of(row) == OutboundStatus.READ)
        [recorded] = graph.with_key("wamid.IN:0")
        assert row.wamid == recorded["wamid"]
        assert (row.attempts, row.possible_duplicate) == (1, False)

        # Long after the grace period the sweeper has nothing to resend.
        settings.META_SENDING_GRACE_SECONDS = 0
        assert sweeper.stranded_messages_sweep()["resent"] == 0
        assert len(graph.with_key("wamid.IN:0")) == 1
    finally:
        graph.app.pause_callbacks(False)
        graph.server.shutdown()
        graph.server.server_close()


def test_killed_before_meta_accepted_the_sweeper_resends_once_flagged(
    celery_worker_factory, graph, settings
):
    # The request hangs and would fail: it never reaches Meta's records.
    graph.app.set_faults({"error_rate": 1.0, "error_codes": [131000], "latency_ms": 4000})
    worker = celery_worker_factory(env=worker_env(graph))
    row = queue(make_contact(), "wamid.IN:0")
    # Killed while the request hangs at the sandbox (its fault already decided): a kill on
    # the mere `sending` status could land before the request left, and the request could
    # then reach a sandbox whose faults the next line has cleared.
    wait_or_log(worker, lambda: graph.app.stats()["requests"] >= 1, interval=0.01)
    assert status_of(row) == OutboundStatus.SENDING
    kill_pool_child(worker)
    graph.app.clear_faults()

    wait_or_log(worker, lambda: f"outbound {row.pk} is sending, not queued" in worker.log())
    assert status_of(row) == OutboundStatus.SENDING
    assert graph.with_key("wamid.IN:0") == []

    # No echo will come. Past the grace the sweeper resends, flagged as a possible duplicate.
    settings.META_SENDING_GRACE_SECONDS = 0
    assert sweeper.stranded_messages_sweep()["resent"] == 1
    wait_or_log(worker, lambda: status_of(row) == OutboundStatus.SENT)
    [recorded] = graph.with_key("wamid.IN:0")
    assert row.wamid == recorded["wamid"]
    assert (row.attempts, row.possible_duplicate) == (2, True)
