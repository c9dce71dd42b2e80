"""Fixtures of the flows tests: a clean definitions cache, flow loading, one-call processing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from flows import cache
from flows.services import contact_messages_process, flows_import
from meta_integration.models import Contact, InboundMessage, OutboundMessage
from tests.factories import make_inbound


@pytest.fixture(autouse=True)
def clean_definitions_cache(redis_conn) -> Iterator[None]:
    """Every test starts with an empty Redis and no per-process definitions.

    Non-transactional tests never run on_commit callbacks, so the version a test publishes is
    the one first read from the database; tests that edit flows after processing call
    `refresh_definitions()`.
    """
    cache.clear_local()
    yield
    cache.clear_local()


def refresh_definitions() -> None:
    """What a committed edit does: forget the cached version so readers see the database."""
    from django_redis import get_redis_connection

    get_redis_connection("default").delete(cache._version_key())
    cache.clear_local()


def flow(name: str, steps: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A flow in the import shape; the first step is the entry unless one says otherwise."""
    if steps and not any(s.get("entry") for s in steps):
        steps[0]["entry"] = True
    for step in steps:
        step.setdefault("config", {})
        step.setdefault("transitions", [])
    return {
        "name": name,
        "active": True,
        "is_default": False,
        "priority": 0,
        "trigger_keywords": [],
        "steps": steps,
        **fields,
    }


@pytest.fixture
def load_flows(db) -> Callable[..., dict[str, list[str]]]:
    def load(*flows: dict[str, Any]) -> dict[str, list[str]]:
        return flows_import(data={"flows": list(flows)})

    return load


def replies_to(inbound: InboundMessage) -> list[OutboundMessage]:
    return list(OutboundMessage.objects.filter(in_reply_to=inbound).order_by("id"))


def reply_texts(inbound: InboundMessage) -> list[str]:
    return [o.text for o in replies_to(inbound)]


@pytest.fixture
def say(db) -> Callable[..., InboundMessage]:
    """Insert one inbound message, process the contact, return the message (refreshed)."""

    def send(
        contact: Contact,
        text: str = "",
        *,
        reply_id: str = "",
        message_type: str | None = None,
        received_at: datetime | None = None,
        now: datetime | None = None,
        **fields: Any,
    ) -> InboundMessage:
        kind = message_type or ("interactive" if reply_id else "text")
        inbound = make_inbound(contact, text, message_type=kind, reply_id=reply_id, **fields)
        if received_at is not None:
            InboundMessage.objects.filter(pk=inbound.pk).update(received_at=received_at)
        contact_messages_process(contact_id=contact.pk, now=now)
        inbound.refresh_from_db()
        contact.refresh_from_db()
        return inbound

    return send
