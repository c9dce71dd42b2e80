"""Fixtures of the console page tests: users, the broker's Redis, task result rows stored the
way Celery's result backend stores them, and message rows."""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from datetime import datetime
from typing import Any

import pytest
import redis
from celery import states
from celery.app.task import Context
from celery.utils.saferepr import saferepr
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from django_celery_results.models import TaskResult

from meta_integration.models import OutboundMessage, OutboundStatus
from tests.factories import make_contact
from whatsappcrm_backend.celery import app

QUEUES = ("celery", "football_data", "maintenance")


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(
        "operator", "op@example.com", "op-password-1", is_staff=True, is_superuser=True
    )


@pytest.fixture
def staff_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def plain_client(db) -> Client:
    user = get_user_model().objects.create_user("customer", "c@example.com", "pw-123456-x")
    client = Client()
    client.force_login(user)
    return client


class Broker:
    """The broker's Redis database, read as kombu's Redis transport lays queues out: one list
    per queue and priority (`celery` for 0, `celery:6` for 6)."""

    def __init__(self) -> None:
        self.conn = redis.Redis.from_url(app.conf.broker_url)

    def clear(self) -> None:
        for queue in QUEUES:
            keys = [queue, *(f"{queue}:{p}" for p in range(1, 10))]
            self.conn.delete(*keys)

    def lists(self) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for queue in QUEUES:
            for key in [queue, *(f"{queue}:{p}" for p in range(1, 10))]:
                raw = self.conn.lrange(key, 0, -1)
                if raw:
                    found[key] = [json.loads(item) for item in raw]
        return found

    def messages(self) -> list[tuple[str, dict[str, Any]]]:
        return [(key, m) for key, items in self.lists().items() for m in items]


def message_body(message: dict[str, Any]) -> tuple[list, dict]:
    """A task message's (args, kwargs), undoing kombu's base64 and Celery's gzip."""
    raw = base64.b64decode(message["body"])
    if message["headers"].get("compression") == "application/x-gzip":
        raw = zlib.decompress(raw)  # kombu "gzip" is zlib
    args, kwargs, _embed = json.loads(raw)
    return args, kwargs


@pytest.fixture
def broker(db) -> Broker:
    b = Broker()
    b.clear()
    yield b
    b.clear()


def store_result(
    task_name: str,
    args: list | None = None,
    kwargs: dict | None = None,
    *,
    status: str = states.FAILURE,
    periodic_task_name: str | None = None,
    result: Any = None,
    done_at: datetime | None = None,
    task_id: str | None = None,
) -> TaskResult:
    """A TaskResult row written by Celery's own result backend (result_extended=True), as a
    worker writes it: arguments kept as their repr, the task name, the worker's hostname."""
    task_id = task_id or str(uuid.uuid4())
    args = args or []
    kwargs = kwargs or {}
    request = Context(
        id=task_id,
        task=task_name,
        args=args,
        kwargs=kwargs,
        argsrepr=saferepr(args, 1024),
        kwargsrepr=saferepr(kwargs, 1024),
        hostname="worker@test",
        periodic_task_name=periodic_task_name,
        ignore_result=False,
    )
    backend = app.backend
    if status == states.FAILURE:
        backend.mark_as_failure(task_id, RuntimeError("boom"), request=request)
    else:
        backend.store_result(task_id, result, status, request=request)
    row = TaskResult.objects.get(task_id=task_id)
    if done_at is not None:
        TaskResult.objects.filter(pk=row.pk).update(date_done=done_at, date_created=done_at)
        row.refresh_from_db()
    return row


@pytest.fixture
def contact(db):
    return make_contact()


def make_outbound(contact, key: str, **fields: Any) -> OutboundMessage:
    fields.setdefault("status", OutboundStatus.SENT)
    return OutboundMessage.objects.create(
        contact=contact,
        number=contact.number,
        idempotency_key=key,
        message_type="text",
        payload={"type": "text", "text": {"body": "hi"}},
        text="hi",
        **fields,
    )


def now() -> datetime:
    return timezone.now()
