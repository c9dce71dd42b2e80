from __future__ import annotations

import pytest

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.mark.django_db
def test_healthz_ok_when_database_and_redis_answer(client, redis_conn):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok"},
        "failed": [],
    }


@pytest.mark.django_db
def test_healthz_503_names_redis_when_unreachable(client, settings):
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": UNREACHABLE_REDIS,
        }
    }
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["redis"]
    assert body["checks"]["database"] == "ok"
    assert "Connection" in body["checks"]["redis"]


@pytest.mark.django_db
def test_healthz_503_names_database_when_it_fails(client, redis_conn, monkeypatch):
    from whatsappcrm_backend import health

    def broken_cursor():
        raise RuntimeError("database is down")

    monkeypatch.setattr(health.connection, "cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]


def test_healthz_refuses_post(client):
    assert client.post("/healthz").status_code == 405
