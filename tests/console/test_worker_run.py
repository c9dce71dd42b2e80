"""A real worker: its wait and run times reach the store, the JSON and the pages; its heartbeat
shows on the Workers page and turns to lost once it stops; diagnose's probes go through it."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.conftest import wait_for
from whatsappcrm_backend.celery import app
from whatsappcrm_backend.console import heartbeats, metrics
from whatsappcrm_backend.console.queues import declared_queues
from whatsappcrm_backend.tasks import record_start_task

pytestmark = pytest.mark.worker


def our_worker(prefix: str) -> dict | None:
    return next((w for w in heartbeats.workers() if w["hostname"].startswith(prefix)), None)


def test_worker_figures_heartbeat_and_loss(
    celery_worker_factory, redis_conn, admin_client, settings
):
    settings.OPS_WORKER_LOST_SECONDS = 4
    queues = declared_queues()
    worker = celery_worker_factory(
        queues=",".join(queues), concurrency=1, env={"OPS_HEARTBEAT_SECONDS": "1"}
    )
    prefix = worker.name.split("@")[0] + "@"
    record = wait_for(lambda: our_worker(prefix), timeout=30)
    assert record["status"] == "ok" and sorted(record["queues"]) == sorted(queues)
    assert record["concurrency"] == 1 and record["pid"] == worker.process.pid

    key = "test:console:starts"
    ids = [record_start_task.apply_async(args=[key, f"t{i}", 0.3]).id for i in range(3)]
    wait_for(lambda: all(metrics.task_timing(task_id) for task_id in ids), timeout=60)

    # Each task's own timing agrees with what the task itself saw (published -> started).
    seen = {}
    for entry in redis_conn.lrange(key, 0, -1):
        label, published, started = entry.decode().split()
        seen[label] = (float(started) - float(published)) * 1000
    for i, task_id in enumerate(ids):
        timing = metrics.task_timing(task_id)
        assert timing["queue"] == "celery" and timing["state"] == "SUCCESS"
        assert timing["run_ms"] >= 300
        assert timing["wait_ms"] == pytest.approx(seen[f"t{i}"], abs=50)

    stats = metrics.task_stats(900)["record_start_task"]
    assert stats["count"] == 3 and stats["failures"] == 0
    assert stats["run_p50"] == pytest.approx(300, rel=0.3)
    assert stats["wait_p99"] is not None

    def celery_figures() -> dict:
        data = admin_client.get(reverse("console:queues_json")).json()
        return next(q for q in data["queues"] if q["name"] == "celery")

    # Publishes are flushed to the store once a second by this (the publishing) process.
    celery = wait_for(lambda: celery_figures()["throughput"]["1m"]["in"] >= 3 and celery_figures())
    assert celery["tasks"]["record_start_task"]["count"] == 3
    assert celery["throughput"]["1m"]["out"] >= 3
    assert celery["consumers"] == 1 and celery["status"] == "ok"
    page = admin_client.get(reverse("console:queues")).content.decode()
    assert "record_start_task" in page
    exposition = admin_client.get(reverse("metrics")).content.decode()
    run_p50 = next(
        line for line in exposition.splitlines()
        if line.startswith('ops_task_run_seconds{quantile="0.5",queue="celery",'
                           'task="record_start_task"}')
    )  # fmt: skip
    assert 0.2 < float(run_p50.split()[-1]) < 0.5

    wait_for(lambda: our_worker(prefix)["tasks_done"] >= 3, timeout=15)
    page = admin_client.get(reverse("console:workers")).content.decode()
    assert record["hostname"] in page and 'class="worker-ok"' in page

    # diagnose: a probe through every queue, served by this worker.
    out = StringIO()
    call_command("diagnose", "--timeout", "30", stdout=out)
    lines = out.getvalue().splitlines()
    for name in queues:
        assert any(line.startswith(f"queue {name}") and "round trip" in line for line in lines)
    assert lines[-1].startswith("bottleneck: ")
    assert "database   connect" in out.getvalue()

    # A countdown is a chosen delay: wait counts from its end, not from the publish.
    delayed = record_start_task.apply_async(args=[key, "late"], countdown=3)
    timing = wait_for(lambda: metrics.task_timing(delayed.id), timeout=30)
    assert timing["wait_ms"] < 2000

    # A run that fails is counted as a failure, with its own timing.
    failing = app.send_task("record_start_task", args=[])  # missing arguments: TypeError
    timing = wait_for(lambda: metrics.task_timing(failing.id), timeout=30)
    assert timing["state"] == "FAILURE"
    assert metrics.task_stats(900)["record_start_task"]["failures"] == 1

    worker.stop()
    lost = wait_for(lambda: our_worker(prefix)["status"] == "lost" and our_worker(prefix), 30)
    assert lost["silent_seconds"] > 4
    page = admin_client.get(reverse("console:workers")).content.decode()
    assert 'class="worker-lost"' in page
    assert admin_client.get(reverse("console:ready")).status_code == 503


@pytest.mark.django_db
def test_diagnose_names_a_queue_without_worker(redis_conn):
    out = StringIO()
    call_command("diagnose", "--timeout", "1", stdout=out)
    text = out.getvalue()
    assert "redis      " in text and " ms round trip" in text
    assert "FAIL no answer within 1 s" in text
    assert text.splitlines()[-1].startswith("bottleneck: no worker answered on ")
