"""On a real Redis with a real worker: a REPLY task overtakes a BULK backlog."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from whatsappcrm_backend.celery import Priority, app
from whatsappcrm_backend.tasks import record_start_task

pytestmark = pytest.mark.worker

BULK_TASKS = 200


def test_reply_starts_before_almost_all_of_a_bulk_backlog(celery_worker_factory, redis_conn):
    celery_worker_factory(queues="celery", concurrency=1)
    key = "test:priority:starts"
    # The worker is already consuming; one producer keeps publishing fast so the backlog
    # really is a backlog when the reply arrives.
    with app.producer_or_acquire() as producer:
        for index in range(BULK_TASKS):
            record_start_task.apply_async(
                args=[key, f"bulk-{index}", 0.05], priority=Priority.BULK, producer=producer
            )
        record_start_task.apply_async(
            args=[key, "reply", 0.0], priority=Priority.REPLY, producer=producer
        )

    wait_for(lambda: redis_conn.llen(key) == BULK_TASKS + 1, timeout=60)
    order = [entry.decode().split()[0] for entry in redis_conn.lrange(key, 0, -1)]
    bulk_started_before_reply = order.index("reply")
    assert bulk_started_before_reply <= BULK_TASKS - 190, order[:20]


def test_priority_levels_are_ordered_for_redis():
    # Redis serves 0 first: a reply must have the lowest broker number.
    assert Priority.REPLY < Priority.RECEIPT < Priority.MAINTENANCE < Priority.BULK
    assert Priority.REPLY == 0
