"""A latency worker outlives a Redis restart with a task in flight, and consumes again after.

Measured to die here (bench/drill_redis_outage.py): Celery 5.7.0 closes the lost connection
after collecting its transport ("Unrecoverable error: AttributeError ... 'hostname'" from
restoring the unacked messages: the restart test fails on it every time); kombu 5.6.2 looks up
a socket it no longer maps (KeyError in MultiChannelPoller, from mingle's hello or, now and
then, the event loop). The pins in requirements.txt (Celery 5.6.3, kombu 5.7.0, which ignores
a stale socket and counts a KeyError as a connection error) and the Procfile's
--without-mingle --without-gossip are what this proves.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

from bench.stack import free_port, redis_executable
from tests.conftest import wait_for
from whatsappcrm_backend.celery import app

pytestmark = pytest.mark.worker

PROCFILE = Path(__file__).resolve().parents[2] / "Procfile"


def start_redis(port: int, workdir: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    wait_for(lambda: _pings(client), timeout=10)
    return process


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_every_procfile_worker_runs_without_mingle_and_gossip():
    workers = [line for line in PROCFILE.read_text().splitlines() if " worker " in line]
    assert len(workers) >= 4
    for line in workers:
        assert "--without-mingle" in line and "--without-gossip" in line, line


def test_the_latency_worker_replaces_pool_children_rarely_and_the_others_by_default():
    # Each replacement can stall the task handed to the new child by ~4 s (celery#9588,
    # bench/recycle_stall.py): at 1,000 tasks per child the chat worker stalled a reply
    # about once a minute at 20 msg/s. The background workers keep the leak backstop.
    from whatsappcrm_backend.celery import app

    assert app.conf.worker_max_tasks_per_child == 1000
    lines = dict(line.split(":", 1) for line in PROCFILE.read_text().splitlines() if ":" in line)
    latency = lines["worker_celery"].split()
    assert int(latency[latency.index("--max-tasks-per-child") + 1]) >= 100_000
    for name in ("worker_bulk", "worker_football", "worker_maintenance"):
        assert "--max-tasks-per-child" not in lines[name], name


def test_the_pinned_kombu_ignores_a_socket_it_no_longer_maps():
    # After a reconnect the event loop can report a socket of the lost connection readable;
    # kombu 5.6.2 raised KeyError there, which killed the worker ("Unrecoverable error").
    from kombu.transport.redis import MultiChannelPoller, Transport

    poller = MultiChannelPoller()
    assert poller.on_readable(12345) is None
    assert KeyError in Transport.connection_errors


def test_a_worker_survives_a_redis_restart_with_a_task_in_flight(celery_worker_factory, tmp_path):
    port = free_port()
    server = start_redis(port, tmp_path)
    redis_url = f"redis://127.0.0.1:{port}/0"
    broker_url = f"redis://127.0.0.1:{port}/1"  # REDIS_URL's number + 1, as settings derive it
    cache = redis.Redis.from_url(redis_url)
    try:
        worker = celery_worker_factory(concurrency=2, env={"REDIS_URL": redis_url})
        key = f"restart-{uuid.uuid4().hex}"
        with app.connection_for_write(broker_url) as connection:
            app.send_task("record_start_task", args=[key, "before", 3.0], connection=connection)
        wait_for(lambda: cache.llen(key) == 1)  # running, unacknowledged (acks_late)

        server.terminate()
        server.wait(timeout=10)
        time.sleep(2)
        server = start_redis(port, tmp_path)

        with app.connection_for_write(broker_url) as connection:
            app.send_task("record_start_task", args=[key, "after", 0.0], connection=connection)
        wait_for(
            lambda: any(item.startswith(b"after") for item in cache.lrange(key, 0, -1)),
            timeout=45,
        )
        assert worker.process.poll() is None, "the worker died:\n" + worker.log()[-3000:]
        assert "Unrecoverable error" not in worker.log()
    finally:
        server.terminate()
        server.wait(timeout=10)
