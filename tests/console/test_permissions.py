"""Who sees what: pages are staff-only, JSON and /metrics need a staff session or the token."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

PAGES = ["console:queues", "console:workers"]
MACHINE = ["console:queues_json", "metrics"]


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(user)
    return client


@pytest.fixture
def plain_client(client, db):
    user = get_user_model().objects.create_user("customer", password="pw", is_staff=False)
    client.force_login(user)
    return client


@pytest.mark.parametrize("name", PAGES)
def test_pages_send_anonymous_and_non_staff_to_the_login(
    client, plain_client, name, db, redis_conn
):
    from django.test import Client

    for c in (Client(), plain_client):
        response = c.get(reverse(name))
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
        assert b"celery" not in response.content


@pytest.mark.parametrize("name", MACHINE)
def test_machine_endpoints_refuse_anonymous_non_staff_and_wrong_token(
    client, plain_client, name, settings, db, redis_conn
):
    from django.test import Client

    settings.OPS_TOKEN = "s3cret-token"
    url = reverse(name)
    assert Client().get(url).status_code == 403
    assert plain_client.get(url).status_code == 403
    assert Client().get(url, headers={"X-Ops-Token": "wrong"}).status_code == 403
    assert Client().get(url, headers={"X-Ops-Token": ""}).status_code == 403


@pytest.mark.parametrize("name", MACHINE)
def test_empty_ops_token_turns_token_access_off(name, settings, db, redis_conn):
    from django.test import Client

    settings.OPS_TOKEN = ""
    assert Client().get(reverse(name), headers={"X-Ops-Token": ""}).status_code == 403


def test_token_opens_json_and_metrics(settings, db, redis_conn):
    from django.test import Client

    settings.OPS_TOKEN = "s3cret-token"
    c = Client(headers={"X-Ops-Token": "s3cret-token"})
    data = c.get(reverse("console:queues_json")).json()
    assert {q["name"] for q in data["queues"]} >= {"celery", "football_data"}
    body = c.get(reverse("metrics")).content.decode()
    assert 'ops_queue_depth{queue="celery"} 0.0' in body
    # The token never opens the HTML pages.
    assert c.get(reverse("console:queues")).status_code == 302


def test_staff_sees_pages_json_and_metrics(staff_client, redis_conn, broker_conn):
    broker_conn.lpush("celery:9", '{"headers": {"published_at": 1}}')
    for name in PAGES:
        response = staff_client.get(reverse(name))
        assert response.status_code == 200, name
        assert b'http-equiv="refresh"' in response.content
    page = staff_client.get(reverse("console:queues")).content.decode()
    assert 'id="queue-celery"' in page and "<svg" in page
    assert staff_client.get(reverse("console:queues_json")).json()["queues"][0]["depth"] == 1
    assert b"ops_queue_depth" in staff_client.get(reverse("metrics")).content


def test_readiness_tells_anonymous_only_the_status(settings, db, redis_conn):
    from django.test import Client

    settings.OPS_TOKEN = "s3cret-token"
    response = Client().get(reverse("console:ready"))
    assert response.status_code == 503  # no worker, no beat
    assert response.json() == {"status": "fail"}
    detailed = Client(headers={"X-Ops-Token": "s3cret-token"}).get(reverse("console:ready"))
    assert detailed.status_code == 503
    assert set(detailed.json()["failed"]) == {"workers", "beat"}


def test_admin_index_links_every_console_page(staff_client, redis_conn):
    page = staff_client.get(reverse("admin:index")).content.decode()
    assert 'id="ops-console"' in page
    for name in [*PAGES, "console:queues_json"]:
        assert f'href="{reverse(name)}"' in page
