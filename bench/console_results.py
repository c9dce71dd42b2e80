"""The task-results half of the console benchmark: a fast bulk loader and page timings.

    .venv/bin/python bench/console_results.py [--results 1000000] [--runs 5] [--postgres]

`load_task_results(n)` writes n django-celery-results rows shaped as the result backend writes
them with result_extended (arguments as a JSON-encoded repr, the task name, the worker, the
schedule's name for scheduled tasks), spread over 30 days, about 1 in 10 failures: one
executemany per 20,000 rows on SQLite, COPY on PostgreSQL (the table's seven indexes make
1,000,000 rows a matter of minutes on a busy 2-core machine). bench/console.py calls it for
`--results N`; run alone, this script loads the rows into a fresh stack and times the
task-result pages with their filters, the status JSON, and the other operator pages.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_MS = 300.0
# (task name, periodic task name or "", share weight); scheduled tasks store every result,
# hot-path tasks only their failures.
MIX = [
    ("sweep_stranded_messages_task", "meta: sweep stranded messages", 40),
    ("cleanup_idle_conversations_task", "flows: expire idle conversations", 40),
    ("flag_unanswered_handovers_task", "flows: flag unanswered hand-overs", 10),
    ("send_whatsapp_message_task", "", 5),
    ("process_flow_for_message_task", "", 2),
    ("fetch_odds_for_single_event_task", "", 3),
]
COLUMNS = (
    "task_id",
    "periodic_task_name",
    "task_name",
    "task_args",
    "task_kwargs",
    "status",
    "worker",
    "content_type",
    "content_encoding",
    "result",
    "date_created",
    "date_started",
    "date_done",
    "traceback",
    "meta",
)


def _rows(start: int, count: int, total: int, now: datetime):
    weights = [weight for _, _, weight in MIX]
    cycle = [index for index, weight in enumerate(weights) for _ in range(weight)]
    span = timedelta(days=30)
    first = now - span
    for offset in range(start, start + count):
        name, schedule, _ = MIX[cycle[offset % len(cycle)]]
        failed = offset % 10 == 7 or not schedule
        done = first + span * (offset / max(total, 1))
        args = f"[{offset}]" if not schedule else "[]"
        yield (
            str(uuid.UUID(int=offset + 1)),
            schedule or None,
            name,
            json.dumps(args),
            json.dumps("{}"),
            "FAILURE" if failed else "SUCCESS",
            "celery@bench-host",
            "application/json",
            "utf-8",
            json.dumps(
                {"exc_type": "GraphError", "exc_message": ["131026"], "exc_module": "x"}
                if failed
                else {"flows": offset % 3, "queued": 0}
            ),
            done,
            None,
            done,
            "Traceback (most recent call last): ..." if failed else None,
            '{"children": []}',
        )


def load_task_results(n: int, *, batch: int = 20_000, progress: bool = True) -> float:
    """Bulk-load n TaskResult rows into the configured database; returns the seconds taken."""
    from django.db import connection, transaction
    from django_celery_results.models import TaskResult

    table = TaskResult._meta.db_table
    now = datetime.now(UTC)
    started = time.perf_counter()
    done = 0
    while done < n:
        count = min(batch, n - done)
        rows = _rows(done, count, n, now)
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                buffer = io.StringIO()
                for row in rows:
                    buffer.write("\t".join(_copy_value(value) for value in row) + "\n")
                buffer.seek(0)
                sql = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN"
                raw = cursor.cursor
                if hasattr(raw, "copy_expert"):  # psycopg2
                    raw.copy_expert(sql, buffer)
                else:  # psycopg 3
                    with raw.copy(sql) as copy:
                        copy.write(buffer.getvalue())
            else:
                marks = ", ".join(["%s"] * len(COLUMNS))
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({marks})",  # noqa: S608
                    [tuple(_sqlite_value(value) for value in row) for row in rows],
                )
        done += count
        if progress:
            print(f"  task results: {done:,}/{n:,}", end="\r", flush=True)
    if progress:
        print()
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # the planner picks the right index for each filter
    else:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")
    return time.perf_counter() - started


def _copy_value(value: object) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _sqlite_value(value: object) -> object:
    # Django stores datetimes on SQLite as "YYYY-MM-DD HH:MM:SS.ffffff" text (UTC, no offset).
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    return value


def page_urls() -> list[tuple[str, str]]:
    from django.urls import reverse
    from django_celery_results.models import TaskResult

    tasks = reverse("console:tasks")
    newest = TaskResult.objects.order_by("-id").values_list("id", "task_id").first()
    middle = newest[0] // 2 if newest else 0
    sample_id = str(uuid.UUID(int=middle or 1))
    return [
        ("tasks (newest)", tasks),
        ("tasks status=FAILURE", f"{tasks}?status=FAILURE"),
        ("tasks by name", f"{tasks}?name=send_whatsapp_message_task"),
        ("tasks by queue", f"{tasks}?queue=football_data"),
        ("tasks 24h window", f"{tasks}?window=24h"),
        ("tasks by schedule", f"{tasks}?schedule=meta:+sweep+stranded+messages"),
        ("tasks page deep", f"{tasks}?before={middle}"),
        ("tasks arg search", f"{tasks}?q=[{middle}]&name=send_whatsapp_message_task"),
        ("task status JSON", reverse("console:task_status", args=[sample_id])),
        ("failed work", reverse("console:failed")),
        ("schedules", reverse("console:schedules")),
        ("sessions", reverse("console:sessions")),
        ("latency", reverse("console:latency")),
        ("lookup (none)", reverse("console:lookup") + "?q=wamid.nothing"),
    ]


def time_pages(runs: int) -> list[tuple[str, str, int, float, float]]:
    return time_urls(page_urls(), runs)


def time_urls(urls: list[tuple[str, str]], runs: int) -> list[tuple[str, str, int, float, float]]:
    """(label, url, status, median ms, max ms) per url, as a staff user, after a warm-up."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-staff", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)
    rows = []
    for label, url in urls:
        status = client.get(url).status_code  # warm-up
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - start) * 1000)
        rows.append((label, url, status, statistics.median(times), max(times)))
    return rows


def main() -> None:
    from bench.stack import running_stack

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    with running_stack(postgres=args.postgres) as stack:
        stack.start(web=False, sandbox=False)
        stack.manage("install_schedules")
        seconds = load_task_results(args.results)
        print(f"{args.results:,} task results loaded in {seconds:.1f} s")
        rows = time_pages(args.runs)
    db = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"\nOperator pages with {args.results:,} task results, {db}, server time over "
        f"{args.runs} runs (goal < {GOAL_MS:.0f} ms):"
    )
    for label, url, status, median, worst in rows:
        verdict = "ok" if worst < GOAL_MS and status == 200 else "OVER" if status == 200 else ""
        print(
            f"  {label:<22} {url[:60]:<60} {status}  median {median:7.1f} ms  "
            f"max {worst:7.1f} ms  {verdict}"
        )


if __name__ == "__main__":
    main()
