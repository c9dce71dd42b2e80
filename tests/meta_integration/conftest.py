"""Fixtures of the channel's tests: a number and contact, the in-process sandbox, webhook posts.

Nothing here patches the Graph API client: tests that send talk HTTP to a real sandbox
server started in this process on a free port (the same code `make run` serves).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.test import Client

from meta_integration.sandbox import GraphSandbox, SandboxServer, make_server
from meta_integration.signatures import HEADER, sign
from tests.factories import make_contact, make_number, new_wamid
from whatsappcrm_backend import publishing

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOK_URL = "/webhooks/whatsapp/"


def load_fixture(name: str) -> dict[str, Any]:
    """A webhook body from fixtures/<event>__<variant>.json."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def encode(event: Any) -> bytes:
    """Bytes as Meta sends them: compact JSON with escaped unicode."""
    return json.dumps(event, separators=(",", ":")).encode("ascii")


def with_new_wamids(event: dict[str, Any]) -> dict[str, Any]:
    """A copy whose messages all get fresh wamids (fixtures reuse ids on purpose)."""
    event = copy.deepcopy(event)
    for entry in event.get("entry", []):
        for change in entry.get("changes", []):
            for message in change.get("value", {}).get("messages", []):
                message["id"] = new_wamid()
    return event


def messages_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        message
        for entry in event["entry"]
        for change in entry["changes"]
        for message in change["value"].get("messages", [])
    ]


@dataclass
class Published:
    """Tasks handed to the broker: (name, args, options)."""

    calls: list[tuple[str, list[Any], dict[str, Any]]]

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    def of(self, name: str) -> list[tuple[list[Any], dict[str, Any]]]:
        return [(args, options) for n, args, options in self.calls if n == name]


@pytest.fixture
def published(monkeypatch) -> Published:
    """Record publishes instead of sending them (the one point where the broker is patched)."""
    record = Published(calls=[])

    def send_task(name: str, args: list[Any] | None = None, **options: Any) -> None:
        # Every publish passes the task's own ignore_result (tests/foundation/test_publishing.py).
        options.pop("ignore_result", None)
        record.calls.append((name, list(args or []), options))

    monkeypatch.setattr(publishing.app, "send_task", send_task)
    return record


@pytest.fixture
def number(db):
    return make_number()


@pytest.fixture
def contact(number):
    return make_contact(wa_id="16505551234", number=number)


@pytest.fixture
def post_webhook(client: Client, django_capture_on_commit_callbacks) -> Callable[..., Any]:
    """POST a body to the webhook, signed with the app secret unless told otherwise.

    On-commit callbacks (the publishes) run, so `published` sees them.
    """

    def post(
        body: bytes | dict[str, Any],
        *,
        signature: str | None = "sign",
        secret: str | None = None,
        **extra: Any,
    ):
        raw = body if isinstance(body, bytes) else encode(body)
        headers = dict(extra)
        if signature == "sign":
            headers[HEADER] = sign(raw, secret or settings.META_APP_SECRET)
        elif signature is not None:
            headers[HEADER] = signature
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                WEBHOOK_URL, data=raw, content_type="application/json", headers=headers
            )

    return post


@dataclass
class SandboxHandle:
    server: SandboxServer

    @property
    def app(self) -> GraphSandbox:
        return self.server.sandbox

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def sent(self, **params: Any) -> list[dict[str, Any]]:
        return requests.get(f"{self.url}/sandbox/meta/sent", params=params, timeout=5).json()[
            "messages"
        ]

    def with_key(self, key: str) -> list[dict[str, Any]]:
        return [m for m in self.app.sent_messages() if m["biz_opaque_callback_data"] == key]


def start_sandbox(**config: Any) -> SandboxHandle:
    config.setdefault("status_callbacks", False)
    config.setdefault("strict_encoding", True)
    server = make_server("127.0.0.1", 0, **config)
    threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="graph-sandbox",
        daemon=True,
    ).start()
    return SandboxHandle(server)


@pytest.fixture
def sandbox(settings, redis_conn) -> Iterator[SandboxHandle]:
    """A fake Graph API on a free port; this process's client points at it.

    Redis is flushed (redis_conn) because the rate limiter and breaker keep state there.
    """
    handle = start_sandbox()
    settings.META_GRAPH_BASE_URL = handle.url
    yield handle
    handle.server.shutdown()
    handle.server.server_close()
