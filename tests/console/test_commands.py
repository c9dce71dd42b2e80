"""queue_health (table, --json, exit codes) and diagnose's pure bottleneck line."""

from __future__ import annotations

import json
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.console.test_figures import live_worker, raw_message
from whatsappcrm_backend.console.queues import declared_queues
from whatsappcrm_backend.management.commands.diagnose import bottleneck

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, int]:
    out = StringIO()
    try:
        call_command("queue_health", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc.returncode
    return out.getvalue(), 0


def test_exit_1_when_a_queue_has_no_consumer(redis_conn):
    out, code = run()
    assert code == 1
    assert out.splitlines()[0].split()[:3] == ["queue", "status", "depth"]
    assert "no_consumer" in out
    assert "Start one: celery -A whatsappcrm_backend worker -Q celery" in out


def test_exit_0_when_every_queue_is_consumed_and_json_carries_the_figures(redis_conn, broker_conn):
    live_worker(redis_conn, declared_queues(), now=time.time())
    broker_conn.lpush("celery:3", raw_message(time.time() - 2))
    out, code = run("--json")
    assert code == 0
    data = json.loads(out)
    celery = next(q for q in data["queues"] if q["name"] == "celery")
    assert celery["depth"] == 1 and celery["status"] == "ok"
    assert celery["depth_by_priority"] == {"3": 1}


def test_exit_1_when_a_queue_is_stuck(redis_conn, broker_conn, settings):
    settings.OPS_STUCK_SECONDS = 60
    live_worker(redis_conn, declared_queues(), now=time.time())
    broker_conn.lpush("football_data:9", raw_message(time.time() - 600))
    out, code = run()
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("football_data"))
    assert line.split()[1] == "stuck"


def test_bottleneck_names_the_slowest_or_the_broken_part():
    base = {
        "redis": {"ok": True, "round_trip_ms": 0.3},
        "database": {"ok": True, "connect_ms": 2.0, "query_ms": 0.4},
        "queues": {
            "celery": {"ok": True, "round_trip_ms": 12.0, "wait_ms": 3.0},
            "football_data": {"ok": True, "round_trip_ms": 4200.0, "wait_ms": 4150.0},
        },
    }
    assert bottleneck(base) == (
        "bottleneck: queue football_data (wait 4150 ms before a worker started it): 4200.0 ms"
    )
    base["queues"]["celery"] = {"ok": False, "error": "no answer within 10 s"}
    assert bottleneck(base).startswith("bottleneck: no worker answered on celery")
    base["redis"] = {"ok": False, "error": "ConnectionError: refused"}
    assert bottleneck(base) == "bottleneck: Redis is unreachable (ConnectionError: refused)"
