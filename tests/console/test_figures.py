"""Queue figures from a prepared Redis: depth over every priority list, oldest age, in flight,
stuck detection with a faked clock, drain estimate and percentiles."""

from __future__ import annotations

import json
import time

import pytest

from whatsappcrm_backend.celery import Priority, app
from whatsappcrm_backend.console import heartbeats, metrics, queues
from whatsappcrm_backend.tasks import noop_task

NOW = 1_800_000_000.0  # a fixed clock for every figure


def raw_message(published_at: float | None, routing_key: str = "celery") -> str:
    headers = {"task": "noop_task", "id": f"id-{published_at}"}
    if published_at is not None:
        headers["published_at"] = published_at
    return json.dumps(
        {
            "body": "W1tdLCB7fSwge31d",
            "headers": headers,
            "properties": {"delivery_info": {"exchange": routing_key, "routing_key": routing_key}},
        }
    )


def push(conn, key: str, published: list[float | None]) -> None:
    # kombu LPUSHes and pops from the tail: push oldest first so the tail is the oldest.
    for value in published:
        conn.lpush(key, raw_message(value))


def live_worker(conn, queues_: list[str], now: float = NOW, name: str = "w1@host") -> None:
    heartbeats.write_worker_heartbeat(
        {
            "hostname": name,
            "host": "host",
            "pid": 1,
            "queues": queues_,
            "concurrency": 1,
            "tasks_done": 0,
            "current": [],
            "last_beat": now,
            "started_at": now - 60,
        },
        conn=conn,
    )


def test_depth_sums_every_priority_list_and_oldest_comes_from_the_tails(broker_conn):
    push(broker_conn, "celery", [NOW - 5, NOW - 4])
    push(broker_conn, "celery:3", [NOW - 50])
    push(broker_conn, "celery:9", [NOW - 500, NOW - 10, NOW - 1])
    push(broker_conn, "football_data:9", [NOW - 7])

    snap = queues.broker_snapshot()

    assert snap["celery"]["depth"] == 6
    assert snap["celery"]["depth_by_priority"] == {0: 2, 3: 1, 9: 3}
    assert snap["celery"]["oldest_published_at"] == NOW - 500
    assert snap["football_data"]["depth"] == 1
    assert snap["football_data"]["oldest_published_at"] == NOW - 7


def test_layout_matches_what_kombu_really_writes(broker_conn):
    # No worker: real publishes stay in the lists kombu chose for each priority.
    with app.producer_or_acquire() as producer:
        for priority in (Priority.REPLY, Priority.RECEIPT, Priority.BULK, Priority.BULK):
            noop_task.apply_async(priority=priority, producer=producer)
    snap = queues.broker_snapshot()["celery"]
    assert snap["depth"] == 4
    assert snap["depth_by_priority"] == {0: 1, 3: 1, 9: 2}
    # The published_at header stamped at publish gives the oldest age.
    assert time.time() - 60 < snap["oldest_published_at"] <= time.time()


def test_in_flight_and_redelivery_time_from_the_unacked_index(broker_conn):
    message = json.loads(raw_message(NOW - 30))
    broker_conn.hset("unacked", "tag-1", json.dumps([message, "celery", "celery"]))
    broker_conn.zadd("unacked_index", {"tag-1": NOW - 20})
    broker_conn.hset("unacked", "tag-2", json.dumps([message, "football_data", "football_data"]))
    broker_conn.zadd("unacked_index", {"tag-2": NOW - 10})

    snap = queues.broker_snapshot()

    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert snap["celery"]["in_flight"] == 1
    assert snap["celery"]["redeliver_at"] == [NOW - 20 + visibility]
    assert snap["football_data"]["in_flight"] == 1


@pytest.mark.django_db
def test_no_consumer_then_ok_then_stuck_as_the_clock_moves(redis_conn, broker_conn, settings):
    settings.OPS_STUCK_SECONDS = 120
    settings.OPS_WORKER_LOST_SECONDS = 30
    push(broker_conn, "celery:9", [NOW - 10])

    figures = queues.collect(now=NOW)
    celery = next(q for q in figures["queues"] if q["name"] == "celery")
    assert celery["status"] == "no_consumer"
    assert celery["oldest_age_seconds"] == 10.0

    live_worker(redis_conn, queues.declared_queues())
    metrics.record_task(
        task_id="t1", task="noop_task", queue="celery", wait_ms=5, run_ms=1, state="SUCCESS",
        now=NOW - 1, conn=redis_conn,
    )  # fmt: skip
    figures = queues.collect(now=NOW)
    assert {q["name"]: q["status"] for q in figures["queues"]} == dict.fromkeys(
        queues.declared_queues(), "ok"
    )

    # 200 s later the worker is still beating, the backlog is still there, nothing finished.
    later = NOW + 200
    live_worker(redis_conn, queues.declared_queues(), now=later)
    figures = queues.collect(now=later)
    celery = next(q for q in figures["queues"] if q["name"] == "celery")
    assert celery["status"] == "stuck"
    assert celery["since_consumed_seconds"] == 201.0
    assert any(line.startswith("celery is stuck") for line in figures["recommendations"])
    # An empty queue is never stuck.
    assert next(q for q in figures["queues"] if q["name"] == "football_data")["status"] == "ok"


@pytest.mark.django_db
def test_drain_estimate_from_measured_throughput(redis_conn, broker_conn):
    live_worker(redis_conn, queues.declared_queues())
    broker_conn.lpush("football_data:9", *[raw_message(NOW - 5)] * 1000)
    # Over the last minute: 600 finished, 120 published -> net 8 per second.
    for i in range(600):
        metrics.record_task(
            task_id=f"d{i}", task="fetch_odds_for_single_event_task", queue="football_data",
            wait_ms=100, run_ms=50, state="SUCCESS", now=NOW - 55 + i * 0.09, conn=redis_conn,
        )  # fmt: skip
    for i in range(120):
        metrics.record_publish("football_data", now=NOW - 55 + i * 0.4, conn=redis_conn)

    figures = queues.collect(now=NOW)
    football = next(q for q in figures["queues"] if q["name"] == "football_data")
    one_minute = football["throughput"]["1m"]
    assert one_minute["out"] == 600 and one_minute["in"] == 120
    net = one_minute["out_per_s"] - one_minute["in_per_s"]
    assert football["drain_seconds"] == pytest.approx(1000 / net, rel=0.01)
    assert 100 < football["drain_seconds"] < 200
    assert football["tasks"]["fetch_odds_for_single_event_task"]["count"] == 600


def test_percentiles_from_the_histograms_are_within_a_bucket(redis_conn):
    waits = list(range(1, 1001))  # 1..1000 ms, one each
    for i, wait in enumerate(waits):
        metrics.record_task(
            task_id=f"p{i}", task="noop_task", queue="celery", wait_ms=wait, run_ms=wait / 10,
            state="FAILURE" if i % 100 == 0 else "SUCCESS", now=NOW, conn=redis_conn,
        )  # fmt: skip

    stats = metrics.task_stats(900, now=NOW, conn=redis_conn)["noop_task"]

    assert stats["count"] == 1000
    assert stats["failures"] == 10
    assert stats["wait_p50"] == pytest.approx(500, rel=0.25)
    assert stats["wait_p95"] == pytest.approx(950, rel=0.25)
    assert stats["wait_p99"] == pytest.approx(990, rel=0.25)
    assert stats["run_p50"] == pytest.approx(50, rel=0.25)
    assert stats["queues"] == {"celery": 1000}
    # Outside the window nothing is counted.
    assert metrics.task_stats(60, now=NOW + 3600, conn=redis_conn) == {}


def test_task_timing_lookup_and_bounded_storage(redis_conn, settings):
    settings.OPS_METRICS_RETENTION_MINUTES = 5
    metrics.record_task(
        task_id="abc", task="noop_task", queue="celery", wait_ms=12.5, run_ms=3.25,
        state="RETRY", retries=2, conn=redis_conn,
    )  # fmt: skip
    timing = metrics.task_timing("abc", conn=redis_conn)
    assert timing["queue"] == "celery" and timing["wait_ms"] == 12.5
    assert timing["run_ms"] == 3.25 and timing["retries"] == 2 and timing["state"] == "RETRY"
    assert metrics.task_timing("missing", conn=redis_conn) is None
    # Every bucket has an expiry: memory stays bounded.
    for key in redis_conn.keys("ops:*"):
        if key.decode() != "ops:last_out":
            assert redis_conn.ttl(key) > 0, key
    assert redis_conn.ttl(redis_conn.keys("ops:h:*")[0]) <= 300


def test_publishes_are_counted_in_memory_and_flushed_in_one_call(redis_conn, broker_conn):
    metrics.buffer.flush()  # whatever earlier tests left in this process's buffer...
    redis_conn.flushdb()  # ...is not this test's
    with app.producer_or_acquire() as producer:
        for _ in range(5):
            noop_task.apply_async(producer=producer)
        noop_task.apply_async(producer=producer, queue="football_data", routing_key="football_data")
    metrics.buffer.flush()
    figures = metrics.throughput_all((60,), conn=redis_conn)
    assert figures["celery"][60]["in"] == 5
    assert figures["football_data"][60]["in"] == 1


def test_task_runs_are_buffered_and_flushed_with_the_same_figures(redis_conn):
    metrics.buffer.flush()
    redis_conn.flushdb()
    for run_ms in (2.0, 40.0):
        metrics.buffer_task(task_id=f"t{run_ms}", task="noop_task", queue="celery",
                            wait_ms=1.0, run_ms=run_ms, state="SUCCESS")  # fmt: skip
    metrics.buffer_task(task_id=None, task="noop_task", queue="celery", wait_ms=0.0,
                        run_ms=5.0, state="FAILURE")  # fmt: skip
    assert redis_conn.keys("ops:*") == []  # nothing written on the task's path
    metrics.buffer.flush()
    stats = metrics.task_stats(900)["noop_task"]
    assert stats["count"] == 3 and stats["failures"] == 1
    assert 1.0 < stats["run_p99"] <= 50.0
    assert metrics.task_timing("t2.0")["run_ms"] == 2.0
    assert len(redis_conn.keys("ops:tid:*")) == 2  # a run without an id keeps no timing
    assert metrics.last_consumed("celery") is not None
    assert all(redis_conn.ttl(key) > 0 for key in redis_conn.keys("ops:*")
               if key != b"ops:last_out")  # fmt: skip


def test_sparkline_series_per_minute(redis_conn):
    for i in range(3):
        metrics.record_publish("celery", now=NOW - 120 + i, conn=redis_conn)
    metrics.record_task(
        task_id="s", task="noop_task", queue="celery", wait_ms=1, run_ms=1, state="SUCCESS",
        now=NOW - 1, conn=redis_conn,
    )  # fmt: skip
    series = metrics.queue_series(minutes=5, now=NOW, conn=redis_conn)["celery"]
    assert [point["in"] for point in series] == [0, 0, 3, 0, 0]
    assert [point["out"] for point in series] == [0, 0, 0, 1, 0]
    assert series[-1]["minute"] == NOW // 60 * 60
