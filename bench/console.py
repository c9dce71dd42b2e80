"""Console pages under load: every console page and the JSON answer in under 300 ms of server time.

.venv/bin/python bench/console.py [--messages 100000] [--results 1000000] [--runs 5] [--postgres]

A fresh stack (its own Redis and database, no workers): N raw messages are pushed straight into
the broker's priority lists (as kombu stores them, with `published_at` headers), 15 minutes of
task metrics and a few worker heartbeats are written, optionally N task results are bulk
created, then each page is fetched with Django's test client as a staff user and timed
(server time: the view, its queries and Redis calls, the template; no network).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.console_results import load_task_results, time_urls
from bench.stack import running_stack

GOAL_MS = 300.0
# (queue, priority step, share of the backlog)
LAYOUT = [
    ("celery", 0, 0.05),
    ("celery", 3, 0.05),
    ("celery", 9, 0.30),
    ("football_data", 9, 0.50),
    ("maintenance", 6, 0.10),
]
TASKS = [
    ("celery", "process_flow_for_message_task", 40, 15),
    ("celery", "send_whatsapp_message_task", 60, 120),
    ("celery", "send_read_receipt_task", 200, 80),
    ("football_data", "fetch_odds_for_single_event_task", 30_000, 400),
    ("football_data", "settle_tickets_for_fixture_task", 5_000, 900),
    ("maintenance", "sweep_stranded_messages_task", 500, 50),
]


def message(task: str, queue: str, priority: int, published: float) -> str:
    task_id = str(uuid.uuid4())
    return json.dumps(
        {
            "body": "W1sxMjM0NV0sIHt9LCB7ImNhbGxiYWNrcyI6IG51bGx9XQ==",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py", "task": task, "id": task_id, "root_id": task_id,
                "argsrepr": "(12345,)", "kwargsrepr": "{}", "retries": 0,
                "published_at": published,
            },
            "properties": {
                "correlation_id": task_id, "delivery_mode": 2, "priority": priority,
                "delivery_info": {"exchange": queue, "routing_key": queue},
                "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
            },
        }
    )  # fmt: skip


def push_backlog(broker, total: int, declared: list[str], sep: str) -> None:
    now = time.time()
    for queue, step, share in LAYOUT:
        if queue not in declared:
            continue
        key = queue if step == 0 else f"{queue}{sep}{step}"
        count = int(total * share)
        pipe = broker.pipeline(transaction=False)
        for index in range(count):
            # Oldest first: kombu LPUSHes, so the tail is the oldest.
            published = now - 600 + index * (600 / max(count, 1))
            pipe.lpush(key, message("fetch_odds_for_single_event_task", queue, step, published))
            if index % 5000 == 4999:
                pipe.execute()
        pipe.execute()
    for index in range(8):  # a few in flight
        tag = str(uuid.uuid4())
        raw = json.loads(message("send_whatsapp_message_task", "celery", 0, now - 3))
        broker.hset("unacked", tag, json.dumps([raw, "celery", "celery"]))
        broker.zadd("unacked_index", {tag: now - index})


def fill_metrics(samples: int) -> None:
    from whatsappcrm_backend.console import heartbeats, metrics
    from whatsappcrm_backend.console.queues import declared_queues

    now = time.time()
    rng = random.Random(12)
    for index in range(samples):
        queue, task, wait, run = TASKS[index % len(TASKS)]
        metrics.record_task(
            task_id=str(uuid.uuid4()), task=task, queue=queue,
            wait_ms=rng.expovariate(1 / wait), run_ms=rng.expovariate(1 / run),
            state="FAILURE" if index % 97 == 0 else "SUCCESS",
            now=now - rng.uniform(0, 900),
        )  # fmt: skip
        metrics.record_publish(queue, now=now - rng.uniform(0, 900))
    queues = declared_queues()
    for index in range(8):
        heartbeats.write_worker_heartbeat(
            {
                "hostname": f"bench{index}@host", "host": "host", "pid": 1000 + index,
                "queues": [queues[index % len(queues)]], "concurrency": 4,
                "tasks_done": 1000 * index, "last_beat": now - (index * 10),
                "started_at": now - 3600,
                "current": [{"id": str(uuid.uuid4()), "name": TASKS[index % 6][1],
                             "started": now - 1, "queue": queues[index % len(queues)]}],
            }
        )  # fmt: skip
    heartbeats.write_beat_heartbeat()


def page_urls() -> list[tuple[str, str]]:
    from django.urls import NoReverseMatch, reverse

    from whatsappcrm_backend.console.pages_common import NAV

    urls = []
    for label, name in [*NAV, ("JSON", "console:queues_json"), ("/metrics", "metrics"),
                        ("readiness", "console:ready")]:  # fmt: skip
        try:
            urls.append((label, reverse(name)))
        except NoReverseMatch:
            print(f"  ({label}: {name} not routed yet, skipped)")
    return urls


def time_pages(runs: int) -> list[tuple[str, str, int, float, float]]:
    return time_urls(page_urls(), runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--results", type=int, default=0, help="task result rows to create")
    parser.add_argument("--metric-samples", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()

    with running_stack(postgres=args.postgres) as stack:
        stack.start(web=False, sandbox=False)
        from whatsappcrm_backend.console.queues import declared_queues, transport_layout

        start = time.perf_counter()
        push_backlog(stack.redis(broker=True), args.messages, declared_queues(),
                     transport_layout()["sep"])  # fmt: skip
        print(f"{args.messages:,} messages queued in {time.perf_counter() - start:.1f} s")
        fill_metrics(args.metric_samples)
        if args.results:
            start = time.perf_counter()
            load_task_results(args.results)
            print(f"{args.results:,} task results in {time.perf_counter() - start:.1f} s")
        rows = time_pages(args.runs)

    db = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\nConsole pages, {args.messages:,} queued, {args.results:,} results, {db}, "
          f"server time over {args.runs} runs (goal < {GOAL_MS:.0f} ms):")  # fmt: skip
    for label, url, status, median, worst in rows:
        # readiness answers 503 here on purpose: the bench runs no worker and no beat.
        verdict = "ok" if worst < GOAL_MS and status in (200, 503) else "OVER"
        print(f"  {label:<20} {url:<26} {status}  median {median:7.1f} ms  max {worst:7.1f} ms"
              f"  {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
