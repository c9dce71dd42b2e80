"""Queue health figures read straight from the broker's Redis, plus the rules that judge them.

kombu's Redis transport keeps priority p of queue q in the list `q` when p is the first step and
`q{sep}{p}` otherwise (sep and steps from broker_transport_options); messages are LPUSHed and
popped from the tail, so the tail of each list is its oldest message. A message taken by a
worker moves to the `unacked` hash (delivery tag -> [message, exchange, routing key]) and the
`unacked_index` sorted set (delivery tag -> when it was taken); it is redelivered if not acked
within the visibility timeout. Every figure below comes from ONE pipelined round trip.

`queue_status` and `recommendations` are pure functions of the figures (tested as tables).
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings

from whatsappcrm_backend.console import heartbeats, metrics
from whatsappcrm_backend.instrumentation import instrumented

WINDOWS = {"1m": 60, "5m": 300, "15m": 900}
KOMBU_DEFAULT_SEP = "\x06\x16"
KOMBU_DEFAULT_STEPS = (0, 3, 6, 9)


def _app():
    from whatsappcrm_backend.celery import app

    return app


def declared_queues() -> list[str]:
    """Every queue declared in the Celery app (never a hard-coded list)."""
    queues = _app().conf.task_queues or []
    names = [q.name for q in queues]
    return names or [_app().conf.task_default_queue]


def transport_layout() -> dict[str, Any]:
    options = _app().conf.broker_transport_options or {}
    steps = sorted(options.get("priority_steps") or KOMBU_DEFAULT_STEPS)
    return {
        "sep": options.get("sep", KOMBU_DEFAULT_SEP),
        "steps": steps,
        "prefix": options.get("global_keyprefix", ""),
        "unacked_key": options.get("unacked_key", "unacked"),
        "unacked_index_key": options.get("unacked_index_key", "unacked_index"),
        "visibility_timeout": float(options.get("visibility_timeout", 3600)),
    }


def priority_key(queue: str, step: int, layout: dict[str, Any]) -> str:
    """The Redis list holding one priority level of a queue (kombu's `_q_for_pri`)."""
    name = queue if step == layout["steps"][0] else f"{queue}{layout['sep']}{step}"
    return f"{layout['prefix']}{name}"


@lru_cache(maxsize=4)
def _broker_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def broker_client() -> redis.Redis:
    return _broker_client(_app().conf.broker_url or settings.REDIS_URL)


def _published_at(raw: bytes | None) -> float | None:
    if not raw:
        return None
    try:
        headers = json.loads(raw).get("headers") or {}
        value = headers.get("published_at")
        return float(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


def broker_snapshot(
    queues: list[str] | None = None, *, conn: redis.Redis | None = None
) -> dict[str, dict[str, Any]]:
    """Per queue: depth (all priority lists), depth by priority, oldest published_at, and the
    in-flight messages with when each would be redelivered. One pipelined round trip."""
    queues = queues or declared_queues()
    layout = transport_layout()
    conn = conn or broker_client()
    pipe = conn.pipeline(transaction=False)
    for queue in queues:
        for step in layout["steps"]:
            key = priority_key(queue, step, layout)
            pipe.llen(key)
            pipe.lindex(key, -1)
    pipe.hgetall(layout["prefix"] + layout["unacked_key"])
    pipe.zrange(layout["prefix"] + layout["unacked_index_key"], 0, -1, withscores=True)
    replies = pipe.execute()

    result: dict[str, dict[str, Any]] = {}
    position = 0
    for queue in queues:
        by_priority: dict[int, int] = {}
        oldest: float | None = None
        for step in layout["steps"]:
            length, tail = replies[position], replies[position + 1]
            position += 2
            if length:
                by_priority[step] = int(length)
                published = _published_at(tail)
                if published is not None and (oldest is None or published < oldest):
                    oldest = published
        result[queue] = {
            "depth": sum(by_priority.values()),
            "depth_by_priority": by_priority,
            "oldest_published_at": oldest,
            "in_flight": 0,
            "redeliver_at": [],
        }
    unacked, index = replies[position], replies[position + 1]
    taken_at = {(tag.decode() if isinstance(tag, bytes) else tag): score for tag, score in index}
    for tag, raw in unacked.items():
        tag = tag.decode() if isinstance(tag, bytes) else tag
        try:
            _, _, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        entry = result.get(routing_key)
        if entry is None:
            continue
        entry["in_flight"] += 1
        if tag in taken_at:
            entry["redeliver_at"].append(taken_at[tag] + layout["visibility_timeout"])
    for entry in result.values():
        entry["redeliver_at"].sort()
    return result


# --- pure rules ----------------------------------------------------------------------------


def queue_status(
    *,
    depth: int,
    oldest_age: float | None,
    since_consumed: float | None,
    consumers: int,
    stuck_seconds: float,
    busy_age_seconds: float,
) -> str:
    """ok, busy, stuck (a backlog and nothing consumed for stuck_seconds) or no_consumer."""
    if consumers <= 0:
        return "no_consumer"
    if depth > 0:
        idle = since_consumed is None or since_consumed > stuck_seconds
        waited = oldest_age is None or oldest_age > stuck_seconds
        if idle and waited:
            return "stuck"
        if oldest_age is not None and oldest_age > busy_age_seconds:
            return "busy"
    return "ok"


def drain_seconds(*, depth: int, in_per_s: float, out_per_s: float) -> float | None:
    """Time to empty the backlog at the current net rate; None when it is not shrinking."""
    if depth <= 0:
        return 0.0
    net = out_per_s - in_per_s
    if net <= 0:
        return None
    return depth / net


def humanize_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{math.ceil(seconds / 60)} minutes"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


def recommendations(figures: dict[str, Any]) -> list[str]:
    """Plain-language advice from the figures (`collect()`'s shape). No I/O."""
    advice: list[str] = []
    for q in figures.get("queues", []):
        name, depth = q["name"], q["depth"]
        rate = q["throughput"]["1m"] if q["throughput"]["1m"]["out"] else q["throughput"]["5m"]
        if q["status"] == "no_consumer":
            waiting = f"; {depth:,} messages wait" if depth else ""
            advice.append(
                f"{name}: no live worker consumes this queue{waiting}. Start one: "
                f"celery -A whatsappcrm_backend worker -Q {name}"
            )
            continue
        if q["status"] == "stuck":
            advice.append(
                f"{name} is stuck: backlog {depth:,}, oldest waiting "
                f"{humanize_seconds(q['oldest_age_seconds'])}, nothing finished for "
                f"{humanize_seconds(q['since_consumed_seconds'])}. A task may hang or the "
                f"workers on -Q {name} may be wedged: check the Workers page and restart them."
            )
            continue
        if depth and q["drain_seconds"] is None and rate["in_per_s"] > rate["out_per_s"]:
            advice.append(
                f"{name} backlog {depth:,} is growing: {rate['in_per_s']:.1f}/s in, "
                f"{rate['out_per_s']:.1f}/s out; add a worker with -Q {name}"
            )
        elif depth and q["drain_seconds"] is not None and q["drain_seconds"] > 60:
            advice.append(
                f"{name} backlog {depth:,} draining {rate['out_per_s'] - rate['in_per_s']:.0f}/s:"
                f" about {humanize_seconds(q['drain_seconds'])}; add a worker with -Q {name}"
            )
        for task, stats in q.get("tasks", {}).items():
            if stats["count"] >= 10 and stats["failures"] / stats["count"] >= 0.1:
                advice.append(
                    f"{task}: {stats['failures']} of {stats['count']} runs failed in the last "
                    "15 minutes; see the failed work and task results pages"
                )
            if name == figures.get("latency_queue") and (stats.get("wait_p95") or 0) > 1000:
                advice.append(
                    f"{task} waits {stats['wait_p95'] / 1000:.1f} s at p95 before it starts on "
                    f"{name}: customers feel it; add concurrency or a worker with -Q {name}"
                )
    for worker in figures.get("workers", []):
        if worker["status"] == "lost":
            advice.append(
                f"worker {worker['hostname']} silent for "
                f"{humanize_seconds(worker['silent_seconds'])} (lost): restart it; tasks it held "
                "come back after the visibility timeout"
            )
    beat = figures.get("beat") or {}
    if beat.get("status") in {"lost", "never_seen"}:
        advice.append(
            "beat is not running: scheduled work (sweeper, session timeouts) does not fire; "
            "start celery -A whatsappcrm_backend beat"
        )
    return advice


# --- the whole picture ---------------------------------------------------------------------


@instrumented("console.collect", warn_ms=300, error_ms=1000)
def collect(*, now: float | None = None, with_tasks: bool = True) -> dict[str, Any]:
    """Every figure the Queues page, JSON, /metrics and queue_health show."""
    now = time.time() if now is None else now
    stuck_seconds = float(getattr(settings, "OPS_STUCK_SECONDS", 120))
    busy_age = float(getattr(settings, "OPS_BUSY_AGE_SECONDS", 30))
    names = declared_queues()
    snapshot = broker_snapshot(names)
    throughput = metrics.throughput_all(WINDOWS.values(), now=now)
    last_out = metrics.last_consumed_all()
    worker_list = heartbeats.workers(now=now)
    consumers = heartbeats.consumers_by_queue(worker_list)
    stats, operations = metrics.window_stats(WINDOWS["15m"], now=now) if with_tasks else ({}, {})
    empty = {"in": 0, "out": 0, "in_per_s": 0.0, "out_per_s": 0.0}

    queues = []
    for name in names:
        snap = snapshot[name]
        tp = {label: throughput.get(name, {}).get(w, empty) for label, w in WINDOWS.items()}
        oldest = snap["oldest_published_at"]
        oldest_age = None if oldest is None else max(0.0, now - oldest)
        since = None if name not in last_out else max(0.0, now - last_out[name])
        rate = tp["1m"] if tp["1m"]["out"] else tp["5m"]
        drain = drain_seconds(
            depth=snap["depth"], in_per_s=rate["in_per_s"], out_per_s=rate["out_per_s"]
        )
        tasks = {
            task: {**s, "count_in_queue": s["queues"][name]}
            for task, s in stats.items()
            if name in s["queues"]
        }
        queues.append(
            {
                "name": name,
                "depth": snap["depth"],
                "depth_by_priority": snap["depth_by_priority"],
                "oldest_age_seconds": None if oldest_age is None else round(oldest_age, 1),
                "in_flight": snap["in_flight"],
                "next_redelivery_at": snap["redeliver_at"][0] if snap["redeliver_at"] else None,
                "throughput": tp,
                "consumers": consumers.get(name, 0),
                "since_consumed_seconds": None if since is None else round(since, 1),
                "drain_seconds": None if drain is None else round(drain, 1),
                "status": queue_status(
                    depth=snap["depth"],
                    oldest_age=oldest_age,
                    since_consumed=since,
                    consumers=consumers.get(name, 0),
                    stuck_seconds=stuck_seconds,
                    busy_age_seconds=busy_age,
                ),
                "tasks": tasks,
            }
        )
    from whatsappcrm_backend.celery import LATENCY_QUEUE

    figures: dict[str, Any] = {
        "generated_at": now,
        "latency_queue": LATENCY_QUEUE,
        "queues": queues,
        "workers": worker_list,
        "beat": heartbeats.beat_status(now=now),
        "operations": operations,
    }
    figures["recommendations"] = recommendations(figures)
    return figures
