"""`manage.py diagnose`: where does the time go? Redis, the database, and each queue's workers.

Measures the Redis round trip, the database connect and query time, and a probe task's round
trip through every declared queue (publish -> a worker runs it -> we see its mark in Redis),
then names the bottleneck in one line.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django_redis import get_redis_connection

from whatsappcrm_backend.console import queues


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def measure_redis(samples: int = 5) -> dict[str, Any]:
    conn = get_redis_connection("default")
    times = []
    try:
        for _ in range(samples):
            start = time.perf_counter()
            conn.ping()
            times.append(time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "round_trip_ms": _ms(statistics.median(times))}


def measure_database(samples: int = 5) -> dict[str, Any]:
    # A fresh connection of its own: the connect time is real and the shared one is untouched.
    conn = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        start = time.perf_counter()
        conn.ensure_connection()
        connect = time.perf_counter() - start
        times = []
        with conn.cursor() as cursor:
            for _ in range(samples):
                start = time.perf_counter()
                cursor.execute("SELECT COUNT(*) FROM django_migrations")
                cursor.fetchone()
                times.append(time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        conn.close()
    return {"ok": True, "connect_ms": _ms(connect), "query_ms": _ms(statistics.median(times))}


def measure_queues(timeout: float = 10.0, names: list[str] | None = None) -> dict[str, Any]:
    """Publish one probe per queue, then wait (all at once) for each to run."""
    from whatsappcrm_backend.tasks import record_start_task

    names = names or queues.declared_queues()
    conn = get_redis_connection("default")
    key = f"ops:diagnose:{uuid.uuid4().hex}"
    sent: dict[str, float] = {}
    results: dict[str, Any] = {}
    try:
        for name in names:
            sent[name] = time.time()
            # expires: a probe nobody ran in time is discarded, never run late.
            record_start_task.apply_async(
                args=[key, name], queue=name, routing_key=name, expires=timeout + 5
            )
        deadline = time.monotonic() + timeout
        while len(results) < len(names):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Short blocking pops: the cache client's socket timeout is about 1 s.
            popped = conn.blpop([key], timeout=min(0.5, max(remaining, 0.01)))
            if popped is None:
                continue
            seen = time.time()
            label, published, started = popped[1].decode().split()
            results[label] = {
                "ok": True,
                "round_trip_ms": _ms(seen - sent[label]),
                "wait_ms": _ms(float(started) - float(published)),
            }
    except Exception as exc:  # noqa: BLE001
        return {name: {"ok": False, "error": f"{type(exc).__name__}: {exc}"} for name in names}
    finally:
        conn.expire(key, 60)  # a late probe's mark cleans itself up
    for name in names:
        results.setdefault(name, {"ok": False, "error": f"no answer within {timeout:.0f} s"})
    return results


def bottleneck(report: dict[str, Any]) -> str:
    """One line naming what is slowest or broken. Pure: works on `collect()`'s report."""
    if not report["redis"]["ok"]:
        return f"bottleneck: Redis is unreachable ({report['redis']['error']})"
    if not report["database"]["ok"]:
        return f"bottleneck: the database is unreachable ({report['database']['error']})"
    dead = [name for name, r in report["queues"].items() if not r["ok"]]
    if dead:
        return (
            f"bottleneck: no worker answered on {', '.join(dead)} "
            f"({report['queues'][dead[0]]['error']}); start one with -Q {dead[0]}"
        )
    parts = {
        "Redis round trip": report["redis"]["round_trip_ms"],
        "database connect": report["database"]["connect_ms"],
        "database query": report["database"]["query_ms"],
    }
    for name, r in report["queues"].items():
        parts[f"queue {name} (wait {r['wait_ms']:.0f} ms before a worker started it)"] = r[
            "round_trip_ms"
        ]
    worst = max(parts, key=lambda k: parts[k])
    return f"bottleneck: {worst}: {parts[worst]:.1f} ms"


class Command(BaseCommand):
    help = "Measure Redis, the database and a probe task through each queue; name the bottleneck."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=10.0, help="seconds to wait for each probe task"
        )

    def collect(self, timeout: float) -> dict[str, Any]:
        report: dict[str, Any] = {"redis": measure_redis(), "database": measure_database()}
        report["queues"] = measure_queues(timeout) if report["redis"]["ok"] else {}
        report["bottleneck"] = bottleneck(report)
        return report

    def handle(self, *args: Any, **options: Any) -> None:
        report = self.collect(options["timeout"])
        redis_r, db = report["redis"], report["database"]
        self.stdout.write(
            f"redis      {redis_r['round_trip_ms']} ms round trip"
            if redis_r["ok"]
            else f"redis      FAIL {redis_r['error']}"
        )
        self.stdout.write(
            f"database   connect {db['connect_ms']} ms, query {db['query_ms']} ms"
            if db["ok"]
            else f"database   FAIL {db['error']}"
        )
        for name, r in report["queues"].items():
            self.stdout.write(
                f"queue {name:<12} round trip {r['round_trip_ms']} ms (wait {r['wait_ms']} ms)"
                if r["ok"]
                else f"queue {name:<12} FAIL {r['error']}"
            )
        self.stdout.write(report["bottleneck"])
