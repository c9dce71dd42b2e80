"""Revoke from the console on a real worker: a task waiting out its countdown never runs,
while the same task not revoked does."""

from __future__ import annotations

import time
import uuid

import pytest
from celery import states
from django.urls import reverse

from tests.conftest import wait_for
from tests.console_pages.conftest import store_result
from whatsappcrm_backend.publishing import publish

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_revoked_task_is_discarded_by_the_worker(celery_worker_factory, redis_conn, staff_client):
    worker = celery_worker_factory(queues="celery", concurrency=1)
    key = f"revoke-test:{uuid.uuid4().hex}"
    doomed, kept = str(uuid.uuid4()), str(uuid.uuid4())
    # As a retry waiting out its backoff looks: a RETRY row, the message held by the worker.
    row = store_result("record_start_task", [key, "doomed"], status=states.RETRY, task_id=doomed)
    assert publish("record_start_task", key, "doomed", task_id=doomed, countdown=4)
    assert publish("record_start_task", key, "kept", task_id=kept, countdown=4)
    wait_for(lambda: doomed in worker.log() or "Received task" in worker.log(), timeout=30)
    staff_client.post(reverse("console:tasks_action"), {"action": "revoke", "ids": [row.pk]})
    wait_for(lambda: redis_conn.llen(key), timeout=60)  # the kept one ran
    time.sleep(2)  # both were due at the same moment: give the revoked one its chance to run
    labels = [v.decode().split()[0] for v in redis_conn.lrange(key, 0, -1)]
    assert labels == ["kept"]
    wait_for(lambda: "revoked" in worker.log().lower(), timeout=20)
