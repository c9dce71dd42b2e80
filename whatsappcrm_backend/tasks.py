"""Probe tasks: the floor every latency benchmark and ordering test compares against."""

from __future__ import annotations

import time

from celery import shared_task
from django_redis import get_redis_connection

from whatsappcrm_backend.celery import LATENCY_QUEUE


@shared_task(name="noop_task", queue=LATENCY_QUEUE, ignore_result=True)
def noop_task() -> None:
    return None


@shared_task(name="record_start_task", queue=LATENCY_QUEUE, bind=True, ignore_result=True)
def record_start_task(self, list_key: str, label: str, sleep_seconds: float = 0.0) -> None:
    """Append `label published_at started_at` to a Redis list, then optionally sleep.

    Used by the priority test and benchmarks to see which task a worker started first.
    """
    started = time.time()
    published = self.request.get("published_at") or 0.0
    get_redis_connection("default").rpush(list_key, f"{label} {published} {started}")
    if sleep_seconds:
        time.sleep(sleep_seconds)
