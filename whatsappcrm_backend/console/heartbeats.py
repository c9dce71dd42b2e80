"""Worker and beat liveness written to Redis by the processes themselves (no broadcast).

Each worker's main process starts a daemon thread on `worker_ready` that every
OPS_HEARTBEAT_SECONDS writes ONE pipelined update: its JSON record under
`ops:worker:{hostname}` (host, pid, queues, concurrency, tasks done, current tasks, last beat)
and its name in the sorted set `ops:workers` scored by the beat time. Beat does the same from
`beat_init` under `ops:beat`, and also records the time of its scheduler's last tick (a beat
process that is alive but no longer ticking is not healthy). A worker silent for
OPS_WORKER_LOST_SECONDS is reported as lost; after OPS_WORKER_FORGET_SECONDS it is dropped.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from celery.signals import beat_init, worker_ready, worker_shutdown
from django.conf import settings
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

WORKERS_KEY = "ops:workers"
WORKER_KEY = "ops:worker:{}"
BEAT_KEY = "ops:beat"


def interval_seconds() -> float:
    return float(getattr(settings, "OPS_HEARTBEAT_SECONDS", 5))


def lost_seconds() -> float:
    return float(getattr(settings, "OPS_WORKER_LOST_SECONDS", 30))


def forget_seconds() -> float:
    return float(getattr(settings, "OPS_WORKER_FORGET_SECONDS", 3600))


class _Beater(threading.Thread):
    """Calls `write()` now and then every interval until stopped."""

    def __init__(self, name: str, write: Any) -> None:
        super().__init__(name=name, daemon=True)
        self._write = write
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self._write()
            except Exception:
                logger.warning("heartbeat %s not written", self.name, exc_info=True)
            self.stopped.wait(interval_seconds())


_threads: list[_Beater] = []


# --- workers -------------------------------------------------------------------------------


def worker_record(consumer: Any) -> dict[str, Any]:
    """What the Workers page shows, read from the worker's own state in its main process."""
    from celery.worker import state

    controller = getattr(consumer, "controller", None)
    hostname = getattr(consumer, "hostname", None) or getattr(controller, "hostname", "")
    app = consumer.app
    current = []
    for request in list(state.active_requests):
        started = getattr(request, "time_start", None)
        current.append(
            {
                "id": request.id,
                "name": request.name,
                "started": started,
                "queue": (request.delivery_info or {}).get("routing_key"),
            }
        )
    return {
        "hostname": hostname,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "queues": sorted(app.amqp.queues.consume_from.keys()),
        "concurrency": getattr(controller, "concurrency", None),
        "tasks_done": int(sum(state.total_count.values())),
        "current": current,
        "last_beat": time.time(),
        "started_at": _started_at.get(hostname, time.time()),
    }


_started_at: dict[str, float] = {}


def write_worker_heartbeat(record: dict[str, Any], conn: Any = None) -> None:
    conn = conn or get_redis_connection("default")
    ttl = int(forget_seconds())
    pipe = conn.pipeline(transaction=False)
    pipe.set(WORKER_KEY.format(record["hostname"]), json.dumps(record), ex=ttl)
    pipe.zadd(WORKERS_KEY, {record["hostname"]: record["last_beat"]})
    pipe.execute()


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    consumer = sender
    hostname = getattr(consumer, "hostname", "") or "worker"
    _started_at[hostname] = time.time()
    thread = _Beater(
        f"ops-heartbeat-{hostname}", lambda: write_worker_heartbeat(worker_record(consumer))
    )
    _threads.append(thread)
    thread.start()


def on_worker_shutdown(**_: Any) -> None:
    # The record stays: the Workers page shows the worker as lost once it goes silent.
    for thread in _threads:
        thread.stopped.set()


def workers(*, now: float | None = None, conn: Any = None) -> list[dict[str, Any]]:
    """Every worker heard from within OPS_WORKER_FORGET_SECONDS, with status ok or lost."""
    now = time.time() if now is None else now
    conn = conn or get_redis_connection("default")
    conn.zremrangebyscore(WORKERS_KEY, "-inf", now - forget_seconds())
    names = [n.decode() if isinstance(n, bytes) else n for n in conn.zrange(WORKERS_KEY, 0, -1)]
    if not names:
        return []
    records = conn.mget([WORKER_KEY.format(name) for name in names])
    result = []
    for raw in records:
        if not raw:
            continue
        record = json.loads(raw)
        record["silent_seconds"] = round(max(0.0, now - record["last_beat"]), 1)
        record["status"] = "lost" if record["silent_seconds"] > lost_seconds() else "ok"
        result.append(record)
    return sorted(result, key=lambda r: r["hostname"])


def consumers_by_queue(worker_list: list[dict[str, Any]]) -> dict[str, int]:
    """Live (not lost) workers consuming each queue."""
    counts: dict[str, int] = {}
    for record in worker_list:
        if record["status"] != "ok":
            continue
        for queue in record["queues"]:
            counts[queue] = counts.get(queue, 0) + 1
    return counts


# --- beat ----------------------------------------------------------------------------------

_last_tick: list[float] = [0.0]


def write_beat_heartbeat(conn: Any = None, *, now: float | None = None) -> None:
    now = time.time() if now is None else now
    conn = conn or get_redis_connection("default")
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "last_beat": now,
        "last_tick": _last_tick[0] or None,
    }
    conn.set(BEAT_KEY, json.dumps(record), ex=int(forget_seconds()))


def on_beat_init(sender: Any = None, **_: Any) -> None:
    service = sender
    scheduler = getattr(service, "scheduler", None)
    if scheduler is not None:
        original_tick = scheduler.tick

        def tick(*args: Any, **kwargs: Any) -> Any:
            _last_tick[0] = time.time()
            return original_tick(*args, **kwargs)

        scheduler.tick = tick
    thread = _Beater("ops-heartbeat-beat", write_beat_heartbeat)
    _threads.append(thread)
    thread.start()


def beat_status(*, now: float | None = None, conn: Any = None) -> dict[str, Any]:
    """{"status": ok | lost | never_seen, ...the record}. Ticks count when beat's loop sleeps
    longer than the heartbeat (its max interval is 5 minutes), so liveness uses the beat."""
    now = time.time() if now is None else now
    raw = (conn or get_redis_connection("default")).get(BEAT_KEY)
    if not raw:
        return {"status": "never_seen"}
    record = json.loads(raw)
    record["silent_seconds"] = round(max(0.0, now - record["last_beat"]), 1)
    record["status"] = "lost" if record["silent_seconds"] > lost_seconds() else "ok"
    return record


def connect() -> None:
    worker_ready.connect(on_worker_ready, weak=False, dispatch_uid="ops_heartbeat_worker")
    worker_shutdown.connect(on_worker_shutdown, weak=False, dispatch_uid="ops_heartbeat_stop")
    beat_init.connect(on_beat_init, weak=False, dispatch_uid="ops_heartbeat_beat")
