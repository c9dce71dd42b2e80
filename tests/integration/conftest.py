"""The whole hot path on real parts: webhook (live server) -> Redis -> real worker -> flows ->
Graph sandbox over HTTP -> signed status callbacks back to the webhook."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.conf import settings

from meta_integration.envelopes import encode_event, webhook_envelope
from meta_integration.sandbox import make_server
from meta_integration.signatures import sign
from tests.conftest import wait_for
from tests.factories import new_wamid


def inbound_event(wa_id: str, text: str, wamid: str | None = None, name: str = "Ann") -> dict:
    """A Meta `messages` webhook envelope with one text message."""
    return webhook_envelope(
        waba_id=settings.META_WABA_ID,
        phone_number_id=settings.META_PHONE_NUMBER_ID,
        display_phone_number=settings.META_DISPLAY_PHONE_NUMBER,
        value={
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id, "user_id": f"US.{wa_id}"}],
            "messages": [
                {
                    "from": wa_id,
                    "id": wamid or new_wamid(),
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        },
    )


def signed(event: dict) -> tuple[bytes, dict[str, str]]:
    body = encode_event(event)
    return body, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(body, settings.META_APP_SECRET),
    }


@dataclass
class HotPath:
    webhook_url: str
    sandbox: Any  # GraphSandbox

    def post(self, event: dict) -> requests.Response:
        body, headers = signed(event)
        return requests.post(self.webhook_url, data=body, headers=headers, timeout=10)

    def replies(self, wa_id: str) -> list[dict]:
        return self.sandbox.sent_messages(to=wa_id)

    def replies_to(self, wamid: str) -> list[dict]:
        prefix = f"{wamid}:"
        return [
            m
            for m in self.sandbox.sent_messages()
            if (m.get("biz_opaque_callback_data") or "").startswith(prefix)
        ]

    def wait_reply(self, wamid: str, timeout: float = 20.0) -> list[dict]:
        return wait_for(lambda: self.replies_to(wamid), timeout=timeout)


@pytest.fixture
def graph_sandbox(live_server):
    server = make_server(
        "127.0.0.1", 0, webhook_url=f"{live_server.url}/webhooks/whatsapp/", callback_delay_ms=20
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def demo_data(transactional_db):
    from flows.demo import load_demo as load_flows
    from meta_integration.demo import load_demo as load_numbers

    load_numbers()
    load_flows()


@pytest.fixture
def hot_path(celery_worker_factory, live_server, graph_sandbox, demo_data):
    """Start one worker (concurrency 2) on the `celery` and `bulk` queues, pointed at the
    sandbox (bulk: the settlement notifications)."""
    sandbox_url = f"http://127.0.0.1:{graph_sandbox.server_port}"

    def start_workers(count: int = 1, concurrency: int = 2, env: dict | None = None):
        return [
            celery_worker_factory(
                queues="celery,bulk",
                concurrency=concurrency,
                env={"META_GRAPH_BASE_URL": sandbox_url, **(env or {})},
            )
            for _ in range(count)
        ]

    path = HotPath(f"{live_server.url}/webhooks/whatsapp/", graph_sandbox.sandbox)
    path.start_workers = start_workers
    path.sandbox_url = sandbox_url
    return path


def button_reply_event(wa_id: str, reply_id: str, title: str, wamid: str | None = None) -> dict:
    """The customer tapped a reply button (type interactive/button_reply)."""
    event = inbound_event(wa_id, "", wamid=wamid)
    message = event["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message["type"] = "interactive"
    message["interactive"] = {
        "type": "button_reply",
        "button_reply": {"id": reply_id, "title": title},
    }
    return event


def message_text(sent: dict) -> str:
    """The readable text of a message the sandbox accepted."""
    payload = sent["payload"]
    if payload["type"] == "text":
        return payload["text"]["body"]
    return payload["interactive"]["body"]["text"]
