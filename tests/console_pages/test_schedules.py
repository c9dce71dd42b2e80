"""Schedules: next run, missed-run warning (a plain rule), run now publishes with the route and
the schedule's name, pause/resume flip the enabled flag and tell beat, all logged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from tests.console_pages.conftest import message_body, store_result
from whatsappcrm_backend.celery import TASK_ROUTES
from whatsappcrm_backend.console.selectors_schedules import missed_run, next_run_of, schedules
from whatsappcrm_backend.schedules import install_schedules

pytestmark = pytest.mark.django_db
NOW = timezone.now()
SWEEP = "meta: sweep stranded messages"


def test_missed_run_rule():
    period = timedelta(minutes=10)
    assert not missed_run(
        enabled=True, last_seen=NOW - period, since=NOW - timedelta(days=1), period=period, now=NOW
    )
    assert missed_run(
        enabled=True,
        last_seen=NOW - 3 * period,
        since=NOW - timedelta(days=1),
        period=period,
        now=NOW,
    )
    assert not missed_run(
        enabled=False,
        last_seen=NOW - 3 * period,
        since=NOW - timedelta(days=1),
        period=period,
        now=NOW,
    )
    # Never ran: late once two periods have passed since it was created or resumed.
    assert missed_run(enabled=True, last_seen=None, since=NOW - 3 * period, period=period, now=NOW)
    assert not missed_run(enabled=True, last_seen=None, since=NOW - period, period=period, now=NOW)
    # A 30 s schedule is not "missed" within beat's 3-minute write-back of last_run_at.
    short = timedelta(seconds=30)
    assert not missed_run(
        enabled=True,
        last_seen=NOW - timedelta(seconds=90),
        since=NOW - timedelta(days=1),
        period=short,
        now=NOW,
    )
    assert missed_run(
        enabled=True,
        last_seen=NOW - timedelta(minutes=5),
        since=NOW - timedelta(days=1),
        period=short,
        now=NOW,
    )


def test_next_run_from_interval_and_crontab():
    every = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(
        name="t1", task="noop_task", interval=every, last_run_at=NOW - timedelta(seconds=10)
    )
    assert next_run_of(task, now=NOW) == task.last_run_at + timedelta(seconds=30)
    # A stored result newer than beat's (lagging) last_run_at moves the base forward.
    assert next_run_of(task, now=NOW, last_seen=NOW) == NOW + timedelta(seconds=30)
    cron = CrontabSchedule.objects.create(minute="0", hour="*")
    hourly = PeriodicTask.objects.create(
        name="t2",
        task="noop_task",
        crontab=cron,
        last_run_at=NOW.replace(minute=0, second=0, microsecond=0),
    )
    assert next_run_of(hourly, now=NOW) == hourly.last_run_at + timedelta(hours=1)
    hourly.enabled = False
    assert next_run_of(hourly, now=NOW) is None


def test_page_warns_about_missed_runs_and_links_results(staff_client):
    install_schedules()
    stale = PeriodicTask.objects.get(name=SWEEP)
    PeriodicTask.objects.filter(pk=stale.pk).update(
        last_run_at=NOW - timedelta(hours=1), date_changed=NOW - timedelta(days=1)
    )
    result = store_result(
        "sweep_stranded_messages_task",
        status="SUCCESS",
        result={"flows": 0},
        periodic_task_name=SWEEP,
        done_at=NOW - timedelta(hours=1),
    )
    response = staff_client.get(reverse("console:schedules"))
    assert response.status_code == 200
    rows = {row["task"].name: row for row in response.context["rows"]}
    assert rows[SWEEP]["missed"] is True
    assert rows[SWEEP]["result"].pk == result.pk
    assert b"MISSED RUNS" in response.content
    assert response.context["missed_count"] == 1  # the others were just installed


def test_a_recent_result_counts_as_a_run():
    install_schedules()
    PeriodicTask.objects.filter(name=SWEEP).update(
        last_run_at=NOW - timedelta(hours=1), date_changed=NOW - timedelta(days=1)
    )
    store_result("sweep_stranded_messages_task", status="SUCCESS", periodic_task_name=SWEEP)
    rows = {row["task"].name: row for row in schedules(now=NOW + timedelta(seconds=1))[0]}
    assert rows[SWEEP]["missed"] is False


def test_run_now_publishes_with_route_and_schedule_name(staff_client, staff_user, broker):
    install_schedules()
    task = PeriodicTask.objects.get(name=SWEEP)
    staff_client.post(reverse("console:schedules_action"), {"id": task.pk, "action": "run"})
    route = TASK_ROUTES["sweep_stranded_messages_task"]
    [message] = broker.lists()[f"{route['queue']}:{int(route['priority'])}"]
    assert message["headers"]["task"] == "sweep_stranded_messages_task"
    assert message["headers"]["periodic_task_name"] == SWEEP
    assert message_body(message) == ([], {})
    assert LogEntry.objects.get(user=staff_user).change_message.startswith("Run now")


def test_pause_and_resume(staff_client, staff_user):
    install_schedules()
    task = PeriodicTask.objects.get(name=SWEEP)
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=NOW)
    before = PeriodicTasks.last_change()
    staff_client.post(reverse("console:schedules_action"), {"id": task.pk, "action": "pause"})
    task.refresh_from_db()
    assert task.enabled is False
    assert task.last_run_at is not None  # history kept (save() would have cleared it)
    assert PeriodicTasks.last_change() != before  # beat reloads its schedule
    page = staff_client.get(reverse("console:schedules"))
    assert b"paused" in page.content
    staff_client.post(reverse("console:schedules_action"), {"id": task.pk, "action": "resume"})
    task.refresh_from_db()
    assert task.enabled is True
    messages = list(
        LogEntry.objects.filter(user=staff_user).values_list("change_message", flat=True)
    )
    assert sorted(messages) == ["Paused from the console", "Resumed from the console"]


def test_unknown_schedule_changes_nothing(staff_client, staff_user):
    response = staff_client.post(
        reverse("console:schedules_action"), {"id": 999999, "action": "run"}, follow=True
    )
    assert "no schedule with id 999999" in response.content.decode().lower()
    assert not LogEntry.objects.exists()
