from __future__ import annotations

import threading

import pytest
from django_celery_beat.models import PeriodicTask

from whatsappcrm_backend.celery import TASK_ROUTES
from whatsappcrm_backend.locks import single_run
from whatsappcrm_backend.schedules import declared_schedules, install_schedules


def test_an_overlapping_run_is_skipped_and_says_so(redis_conn):
    inside = threading.Event()
    release = threading.Event()

    @single_run("test-overlap")
    def slow_job():
        inside.set()
        release.wait(5)
        return {"done": 1}

    results = []
    first = threading.Thread(target=lambda: results.append(slow_job()))
    first.start()
    assert inside.wait(5)
    assert slow_job() == {"skipped": True}
    release.set()
    first.join(5)
    assert results == [{"done": 1}]
    assert slow_job() == {"done": 1}  # the lock was released


@pytest.mark.django_db
def test_install_schedules_is_idempotent_and_uses_the_route_table():
    declared = declared_schedules()
    install_schedules()
    install_schedules()
    assert PeriodicTask.objects.count() == len(declared)
    for entry in declared:
        task = PeriodicTask.objects.get(name=entry["name"])
        assert task.queue == TASK_ROUTES[entry["task"]]["queue"]
        assert task.priority == TASK_ROUTES[entry["task"]]["priority"]
        assert task.interval.every == entry["every_seconds"]
