"""Every operator page is staff only: anonymous users go to the login, non-staff get nothing;
the task status JSON takes a staff session or the X-Ops-Token header."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from tests.console_pages.conftest import make_outbound, store_result
from tests.factories import make_inbound

PAGES = ["tasks", "failed", "schedules", "sessions", "latency", "lookup"]
ACTIONS = ["tasks_action", "failed_action", "schedules_action", "sessions_action"]


@pytest.fixture
def data(contact):
    inbound = make_inbound(contact, "hello")
    make_outbound(contact, "k:1", in_reply_to=inbound)
    make_outbound(contact, "k:2", status="failed", error_code=131026)
    return store_result("noop_task", [1])


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_is_sent_to_the_login(client, db, page):
    response = client.get(reverse(f"console:{page}"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("action", ACTIONS)
def test_anonymous_actions_do_nothing(client, db, action, data):
    response = client.post(reverse(f"console:{action}"), {"action": "retry", "ids": [data.pk]})
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("page", PAGES)
def test_non_staff_get_nothing(plain_client, page, data):
    response = plain_client.get(reverse(f"console:{page}"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
    assert b"task-results" not in response.content


@pytest.mark.parametrize("page", PAGES)
def test_staff_see_every_page(staff_client, page, data):
    response = staff_client.get(reverse(f"console:{page}"))
    assert response.status_code == 200
    assert response.context["console_nav"]  # the shared nav is filled


def test_lookup_with_a_query_renders_for_staff(staff_client, data, contact):
    response = staff_client.get(reverse("console:lookup"), {"q": contact.wa_id})
    assert response.status_code == 200
    assert response.context["result"]["kind"] == "contact"


@override_settings(OPS_TOKEN="s3cret-ops-token")
def test_task_status_json_needs_staff_or_the_token(client, plain_client, staff_client, data):
    url = reverse("console:task_status", args=[data.task_id])
    assert client.get(url).status_code == 403
    assert plain_client.get(url).status_code == 403
    assert client.get(url, HTTP_X_OPS_TOKEN="wrong").status_code == 403
    assert client.get(url, HTTP_X_OPS_TOKEN="s3cret-ops-token").status_code == 200
    assert staff_client.get(url).status_code == 200


@override_settings(OPS_TOKEN="")
def test_an_empty_token_setting_never_matches(client, data):
    url = reverse("console:task_status", args=[data.task_id])
    assert client.get(url, HTTP_X_OPS_TOKEN="").status_code == 403
