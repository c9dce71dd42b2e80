"""Beat's liveness: a heartbeat thread from beat_init and the time of the scheduler's last tick."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_for
from whatsappcrm_backend.console import heartbeats


class FakeScheduler:
    def __init__(self) -> None:
        self.ticks = 0

    def tick(self) -> float:
        self.ticks += 1
        return 1.0


class FakeService:
    def __init__(self) -> None:
        self.scheduler = FakeScheduler()


def test_beat_heartbeat_and_tick_then_lost(redis_conn, settings):
    settings.OPS_HEARTBEAT_SECONDS = 0.2
    settings.OPS_WORKER_LOST_SECONDS = 1
    assert heartbeats.beat_status()["status"] == "never_seen"

    service = FakeService()
    heartbeats.on_beat_init(sender=service)
    try:
        assert service.scheduler.tick() == 1.0  # the wrapped tick still runs the real one
        assert service.scheduler.ticks == 1
        status = wait_for(
            lambda: heartbeats.beat_status().get("last_tick") and heartbeats.beat_status()
        )
        assert status["status"] == "ok"
        assert time.time() - status["last_tick"] < 5
    finally:
        heartbeats.on_worker_shutdown()  # stops every heartbeat thread of this process
    time.sleep(0.3)
    later = time.time() + 2
    assert heartbeats.beat_status(now=later)["status"] == "lost"


@pytest.mark.parametrize(("silent", "expected"), [(0, "ok"), (29, "ok"), (31, "lost")])
def test_worker_is_lost_after_the_silence_limit(redis_conn, settings, silent, expected):
    settings.OPS_WORKER_LOST_SECONDS = 30
    now = time.time()
    heartbeats.write_worker_heartbeat(
        {"hostname": "w@h", "host": "h", "pid": 1, "queues": ["celery"], "concurrency": 2,
         "tasks_done": 5, "current": [], "last_beat": now - silent, "started_at": now - 99}
    )  # fmt: skip
    [worker] = heartbeats.workers(now=now)
    assert worker["status"] == expected
    assert heartbeats.consumers_by_queue([worker]) == ({"celery": 1} if expected == "ok" else {})


@pytest.mark.worker
def test_a_real_beat_process_reports_liveness_and_ticks(transactional_db, redis_conn, tmp_path):
    import os
    import subprocess
    import sys

    from django.conf import settings as django_settings

    from tests.conftest import BASE_DIR, test_database_url

    log = tmp_path / "beat.log"
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "OPS_HEARTBEAT_SECONDS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "whatsappcrm_backend", "beat", "--loglevel",
         "INFO", "--max-interval", "1"],
        cwd=BASE_DIR, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        status = wait_for(
            lambda: (s := heartbeats.beat_status()).get("last_tick") and s, timeout=60
        )
        assert status["status"] == "ok" and status["pid"] == process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)
        print(log.read_text()[-3000:])
