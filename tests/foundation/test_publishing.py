"""publish_on_commit: nothing is enqueued for a row that rolls back; a dead broker never raises."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django_celery_results.models import TaskResult

from tests.conftest import wait_for
from whatsappcrm_backend import publishing
from whatsappcrm_backend.celery import Priority

pytestmark = pytest.mark.django_db(transaction=True)


def queued(redis_conn, queue: str = "celery") -> list[dict]:
    messages = []
    for key in redis_conn.keys(f"{queue}*"):
        if redis_conn.type(key) == b"list":
            messages += [json.loads(raw) for raw in redis_conn.lrange(key, 0, -1)]
    return messages


def test_publish_after_commit_reaches_the_broker_with_a_publish_timestamp(broker_conn):
    with transaction.atomic():
        publishing.publish_on_commit("noop_task")
        assert queued(broker_conn) == []  # not before the commit
    [message] = queued(broker_conn)
    assert message["headers"]["task"] == "noop_task"
    assert message["headers"]["published_at"] > 0


def test_rollback_publishes_nothing(broker_conn):
    with pytest.raises(RuntimeError), transaction.atomic():
        publishing.publish_on_commit("noop_task")
        raise RuntimeError("the row rolls back")
    assert queued(broker_conn) == []


def test_route_priority_lands_in_the_redis_priority_list(broker_conn):
    publishing.publish("noop_task", priority=Priority.BULK)
    assert broker_conn.llen(f"celery:{int(Priority.BULK)}") == 1


@pytest.fixture
def broker_down():
    """Point the app's producers at a closed port (connection refused), then restore."""
    app = publishing.app
    # Save both first: broker_write_url's getter falls back to broker_url.
    saved = app.conf.broker_url, app.conf.broker_write_url
    app.conf.broker_url = app.conf.broker_write_url = "redis://127.0.0.1:1/0"
    app._pool = app.amqp._producer_pool = None
    yield
    app.conf.broker_url, app.conf.broker_write_url = saved
    app._pool = app.amqp._producer_pool = None


def test_broker_down_is_logged_not_raised(broker_down, caplog):
    with transaction.atomic():
        publishing.publish_on_commit("noop_task", 42)
    assert "publish of noop_task(42,) failed" in caplog.text


def test_a_registered_task_published_by_name_keeps_its_routed_priority(broker_conn):
    # Celery applies a registered task's own options over the route table: a default priority
    # set on every task would put settlement (MAINTENANCE) beside ingestion (BULK) at 0.
    publishing.app.loader.import_default_modules()
    assert "settle_fixture_pipeline_task" in publishing.app.tasks  # registered and bound
    publishing.publish("settle_fixture_pipeline_task", 1)
    publishing.publish("fetch_odds_for_single_event_task", 1)
    assert broker_conn.llen(f"football_data:{int(Priority.MAINTENANCE)}") == 1
    assert broker_conn.llen(f"football_data:{int(Priority.BULK)}") == 1


def test_a_task_keeps_a_result_row_only_when_it_asks_for_one(celery_worker_factory, redis_conn):
    """send_task stamps ignore_result=False on every message, which overrides the task's own
    setting at the worker: publish passes the task's setting, so the hot path writes no
    result rows while a scheduled task's run still shows in the console."""
    celery_worker_factory(queues="celery,maintenance", concurrency=1)
    assert publishing.publish("record_start_task", "results-probe", "hot path")
    wait_for(lambda: redis_conn.llen("results-probe"))
    assert publishing.publish("sweep_stranded_messages_task")
    wait_for(lambda: TaskResult.objects.filter(task_name="sweep_stranded_messages_task").exists())
    # One slot: the probe finished (result handling included) before the sweep started.
    assert not TaskResult.objects.filter(task_name="record_start_task").exists()


def test_ignores_result_is_each_task_s_own_setting_and_the_default_for_unknown_names():
    publishing.ignores_result.cache_clear()
    assert publishing.ignores_result("sweep_stranded_messages_task") is False
    assert publishing.ignores_result("ingest_webhook_event_task") is True
    assert publishing.ignores_result("no_such_task") is publishing.app.conf.task_ignore_result
