"""Liveness of the parts every request depends on: the database and Redis."""

from __future__ import annotations

from django.db import connection
from django_redis import get_redis_connection


def check_database() -> str | None:
    """None when the database answers, else the error text."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - report any failure, do not raise
        return f"{type(exc).__name__}: {exc}"
    return None


def check_redis() -> str | None:
    try:
        get_redis_connection("default").ping()
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return None


def health_report() -> dict[str, object]:
    checks = {"database": check_database(), "redis": check_redis()}
    failed = {name: error for name, error in checks.items() if error}
    return {
        "status": "ok" if not failed else "fail",
        "checks": {name: error or "ok" for name, error in checks.items()},
        "failed": sorted(failed),
    }
