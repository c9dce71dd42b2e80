"""Task results: filters and keyset pages, retry (same args, the route's queue and priority, on
a real Redis broker), revoke, bulk actions behind a confirmation and a cap, status by id."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import states
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from tests.console_pages.conftest import message_body, store_result
from whatsappcrm_backend.celery import TASK_ROUTES, Priority, app
from whatsappcrm_backend.console import metrics, pages_common, task_actions
from whatsappcrm_backend.console import selectors_tasks as sel

pytestmark = pytest.mark.django_db


def test_stored_arguments_come_back_as_values(db):
    row = store_result("record_start_task", ["key", "label"], {"sleep_seconds": 0.5})
    assert sel.task_arguments(row) == (["key", "label"], {"sleep_seconds": 0.5})


def test_truncated_arguments_refuse_a_retry(db):
    row = store_result("noop_task", ["x" * 3000])  # saferepr cuts it at 1024 chars
    with pytest.raises(sel.ArgumentsUnavailable):
        sel.task_arguments(row)


def test_retry_republishes_with_same_arguments_and_route(staff_client, staff_user, broker):
    sweep = store_result("sweep_stranded_messages_task", [], {}, periodic_task_name="meta: sweep")
    send = store_result("send_whatsapp_message_task", [42])
    response = staff_client.post(
        reverse("console:tasks_action"), {"action": "retry", "ids": [sweep.pk, send.pk]}
    )
    assert response.status_code == 302
    lists = broker.lists()
    maintenance = TASK_ROUTES["sweep_stranded_messages_task"]
    key = f"{maintenance['queue']}:{int(maintenance['priority'])}"
    [sweep_msg] = lists[key]
    assert sweep_msg["headers"]["task"] == "sweep_stranded_messages_task"
    assert sweep_msg["headers"]["periodic_task_name"] == "meta: sweep"
    assert sweep_msg["properties"]["priority"] == int(Priority.MAINTENANCE)
    # Priority.REPLY is 0: the plain list, served first.
    [send_msg] = lists["celery"]
    assert send_msg["headers"]["task"] == "send_whatsapp_message_task"
    assert message_body(send_msg) == ([42], {})
    assert send_msg["headers"]["id"] != send.task_id  # a new task id
    entries = LogEntry.objects.filter(user=staff_user)
    assert {e.object_id for e in entries} == {str(sweep.pk), str(send.pk)}
    assert all("Retried" in e.change_message for e in entries)


def test_retry_refuses_a_task_without_a_route(staff_user, broker):
    row = store_result("someone_elses_task", [1])
    report = task_actions.results_retry(ids=[row.pk], user_id=staff_user.pk)
    assert report.done == []
    assert "no route" in report.refused[0]["reason"]
    assert broker.messages() == []


def test_retry_one_row_button(staff_client, broker):
    a = store_result("send_whatsapp_message_task", [1])
    b = store_result("send_whatsapp_message_task", [2])
    staff_client.post(
        reverse("console:tasks_action"), {"row_retry": b.pk, "ids": [a.pk]}
    )  # a row's own button acts on that row only
    [(_key, message)] = broker.messages()
    assert message_body(message) == ([2], {})


def test_retry_all_matching_asks_first_then_caps(staff_client, broker, monkeypatch):
    for n in range(5):
        store_result("send_whatsapp_message_task", [n])
    store_result("noop_task", [99])  # not matched by the filter
    monkeypatch.setattr(pages_common, "BULK_CAP", 3)
    monkeypatch.setattr("whatsappcrm_backend.console.pages_tasks.BULK_CAP", 3)
    form = {"action": "retry", "scope": "filter", "name": "send_whatsapp_message_task"}
    response = staff_client.post(reverse("console:tasks_action"), form)
    assert response.status_code == 200
    assert response.context["count"] == 3 and response.context["more"] is True
    assert broker.messages() == []  # nothing before the confirmation
    staff_client.post(reverse("console:tasks_action"), {**form, "confirm": "yes"})
    published = broker.messages()
    assert len(published) == 3
    # The newest three (keyset order is newest first).
    assert sorted(message_body(m)[0][0] for _, m in published) == [2, 3, 4]


def test_revoke_marks_unfinished_rows_and_logs(staff_client, staff_user):
    waiting = store_result("send_whatsapp_message_task", [7], status=states.RETRY)
    failed = store_result("send_whatsapp_message_task", [8])
    revoked_ids: list = []
    original = app.control.revoke

    def spy(task_ids, **kwargs):
        revoked_ids.extend(task_ids)
        return original(task_ids, **kwargs)

    app.control.revoke = spy
    try:
        staff_client.post(
            reverse("console:tasks_action"), {"action": "revoke", "ids": [waiting.pk, failed.pk]}
        )
    finally:
        del app.control.revoke
    assert set(revoked_ids) == {waiting.task_id, failed.task_id}
    waiting.refresh_from_db()
    failed.refresh_from_db()
    assert waiting.status == states.REVOKED
    assert failed.status == states.FAILURE  # a finished run stays what it was
    assert LogEntry.objects.filter(user=staff_user, change_message__contains="Revoked").count() == 2


def test_filters_and_keyset_pages(db):
    now = timezone.now()
    old = store_result("noop_task", [1], done_at=now - timedelta(days=3))
    rows = [store_result("send_whatsapp_message_task", [n]) for n in range(3)]
    ok = store_result("noop_task", [5], status=states.SUCCESS, result={"ok": True})
    by_status = sel.results_page(sel.TaskFilter.from_params({"status": "success"}))
    assert [i["row"].pk for i in by_status["items"]] == [ok.pk]
    recent = sel.results_page(sel.TaskFilter.from_params({"window": "1h"}))
    assert old.pk not in [i["row"].pk for i in recent["items"]]
    by_queue = sel.results_page(sel.TaskFilter.from_params({"queue": "football_data"}))
    assert by_queue["items"] == []
    search = sel.results_page(sel.TaskFilter.from_params({"q": "[2]"}))
    assert [i["row"].pk for i in search["items"]] == [rows[2].pk]
    first = sel.results_page(sel.TaskFilter.from_params({}), page_size=2)
    assert [i["row"].pk for i in first["items"]] == [ok.pk, rows[2].pk]
    second = sel.results_page(
        sel.TaskFilter.from_params({}), before=first["next_before"], page_size=2
    )
    assert [i["row"].pk for i in second["items"]] == [rows[1].pk, rows[0].pk]


def test_bad_filter_values_are_reported_not_applied(staff_client):
    response = staff_client.get(reverse("console:tasks"), {"status": "NOPE", "window": "2y"})
    assert response.status_code == 200
    assert len(response.context["flt"].errors) == 2


def test_page_shows_wait_and_run_time_from_the_metrics_store(staff_client, redis_conn):
    row = store_result("send_whatsapp_message_task", [3])
    metrics.record_task(
        task_id=row.task_id,
        task="send_whatsapp_message_task",
        queue="celery",
        wait_ms=12.5,
        run_ms=340.0,
        state="FAILURE",
        retries=2,
    )
    response = staff_client.get(reverse("console:tasks"))
    [item] = response.context["page"]["items"]
    assert (item["wait_ms"], item["run_ms"], item["retries"]) == (12.5, 340.0, 2)
    assert b"340.0" in response.content


def test_task_status_json_reports_progress_and_result(staff_client, redis_conn):
    running = store_result(
        "run_apifootball_full_update_task", [], status="PROGRESS", result={"done": 3, "of": 10}
    )
    data = staff_client.get(reverse("console:task_status", args=[running.task_id])).json()
    assert data["state"] == "PROGRESS"
    assert data["progress"] == {"done": 3, "of": 10}
    assert data["queue"] == "football_data"
    failed = store_result("send_whatsapp_message_task", [1])
    metrics.record_task(
        task_id=failed.task_id,
        task="send_whatsapp_message_task",
        queue="celery",
        wait_ms=5.0,
        run_ms=9.0,
        state="FAILURE",
    )
    data = staff_client.get(reverse("console:task_status", args=[failed.task_id])).json()
    assert data["state"] == "FAILURE"
    assert data["result"]["exc_type"] == "RuntimeError"
    assert (data["wait_ms"], data["run_ms"]) == (5.0, 9.0)


def test_task_status_of_an_unstored_id(staff_client, redis_conn):
    data = staff_client.get(reverse("console:task_status", args=["no-such-id"])).json()
    assert data["state"] == "UNKNOWN" and data["stored"] is False


def test_no_full_count_on_the_list(staff_client, django_assert_max_num_queries):
    for n in range(3):
        store_result("noop_task", [n])
    with django_assert_max_num_queries(8) as captured:
        staff_client.get(reverse("console:tasks"))
    sql = " ".join(q["sql"] for q in captured.captured_queries).upper()
    assert "COUNT(" not in sql


def test_row_ids_must_be_numbers(staff_client):
    response = staff_client.post(reverse("console:tasks_action"), {"action": "retry", "ids": "x"})
    assert response.status_code == 302
    assert TaskResult.objects.count() == 0


def test_pages_auto_refresh_unless_told_not_to(staff_client):
    assert b'http-equiv="refresh"' in staff_client.get(reverse("console:tasks")).content
    still = staff_client.get(reverse("console:tasks"), {"refresh": "0"})
    assert b'http-equiv="refresh"' not in still.content
