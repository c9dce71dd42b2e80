"""Poison inbound messages: attempts counted per message, parked at the limit, the contact's
later messages answered, and parked messages replayable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery.exceptions import Retry
from django.db import DataError, connection
from django.utils import timezone

from flows.actions import ActionResult, register, unregister
from flows.services import (
    contact_messages_process,
    inbound_attempt_fail,
    inbound_replay,
    processing,
)
from flows.services.state import reply_key
from flows.tasks import process_flow_for_message_task
from meta_integration.models import InboundMessage, OutboundMessage
from tests.factories import make_contact, make_inbound
from tests.flows.conftest import flow, reply_texts
from whatsappcrm_backend import publishing

pytestmark = pytest.mark.django_db


@pytest.fixture
def poison_flow(load_flows, monkeypatch) -> Iterator[None]:
    """Every message is echoed by an action; the database refuses the reply to "boom".

    Actions cannot poison a message (the engine catches what they raise and checks what they
    return), so the failure is where it really happens: a write of the hot path the database
    refuses, as the 255-character wamid's key did. On PostgreSQL the refusal is real (a key
    over the column's 255 characters); SQLite enforces no lengths, so it is raised as the
    DataError PostgreSQL gives.
    """

    @register("tests.poison", replace=True)
    def action(call):
        return ActionResult(messages=[{"type": "text", "body": f"echo {call.message['text']}"}])

    real = processing.outbound_message_create

    def outbound_create(**kwargs):
        inbound = kwargs.get("in_reply_to")
        if inbound is not None and inbound.text == "boom":
            if connection.vendor != "postgresql":
                raise DataError("value too long for type character varying(255)")
            kwargs["idempotency_key"] = "k" * 300
        return real(**kwargs)

    monkeypatch.setattr(processing, "outbound_message_create", outbound_create)
    load_flows(
        flow(
            "f",
            [{"name": "a", "type": "action", "config": {"action": "tests.poison"}}],
            is_default=True,
        )
    )
    yield
    unregister("tests.poison")


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, list[Any]]]:
    calls: list[tuple[str, list[Any]]] = []
    monkeypatch.setattr(
        publishing.app, "send_task", lambda name, args=None, **kw: calls.append((name, args))
    )
    return calls


def test_a_poison_message_is_parked_after_n_attempts_and_the_next_one_is_answered(
    poison_flow, settings
):
    settings.FLOWS_MAX_PROCESSING_ATTEMPTS = 3
    contact = make_contact()
    first = make_inbound(contact, "hi")
    poison = make_inbound(contact, "boom")
    after = make_inbound(contact, "still there?")

    for attempt in (1, 2):
        result = contact_messages_process(contact_id=contact.pk)
        assert result == {"processed": 0, "replies": 0, "failed": 1, "parked": 0}
        poison.refresh_from_db()
        assert poison.processing_attempts == attempt and poison.parked_at is None
        assert "DataError" in poison.processing_error
        # The whole batch rolled back: nothing answered yet, nothing half-written.
        assert not OutboundMessage.objects.exists()

    result = contact_messages_process(contact_id=contact.pk)
    assert result == {"processed": 2, "replies": 2, "parked": 1}
    poison.refresh_from_db()
    assert poison.parked_at is not None and poison.processed_at is None
    assert poison.processing_attempts == 3
    assert reply_texts(first) == ["echo hi"]
    assert reply_texts(after) == ["echo still there?"]
    assert reply_texts(poison) == []
    # A parked message is left alone by later runs: the contact goes on.
    later = make_inbound(contact, "and now?")
    assert contact_messages_process(contact_id=contact.pk)["processed"] == 1
    assert reply_texts(later) == ["echo and now?"]


def test_the_task_retries_until_parked_then_answers_the_rest(poison_flow, settings):
    settings.FLOWS_MAX_PROCESSING_ATTEMPTS = 2
    contact = make_contact()
    poison = make_inbound(contact, "boom")
    after = make_inbound(contact, "hello")
    # Called directly, the task's self.retry raises Retry (a worker would run it again soon).
    with pytest.raises(Retry):
        process_flow_for_message_task(contact.pk)
    poison.refresh_from_db()
    assert poison.processing_attempts == 1 and reply_texts(after) == []
    result = process_flow_for_message_task(contact.pk)
    assert result["processed"] == 1 and result["parked"] == 1
    poison.refresh_from_db()
    assert poison.parked_at is not None and poison.processing_attempts == 2
    assert reply_texts(after) == ["echo hello"]


def test_replay_unparks_and_runs_the_flow_again_after_commit(
    poison_flow, settings, published, django_capture_on_commit_callbacks
):
    settings.FLOWS_MAX_PROCESSING_ATTEMPTS = 1
    contact = make_contact()
    poison = make_inbound(contact, "boom")
    contact_messages_process(contact_id=contact.pk)
    poison.refresh_from_db()
    assert poison.parked_at is not None

    with django_capture_on_commit_callbacks(execute=True):
        assert inbound_replay([poison.pk, 999999]) == 1
    assert published == [("process_flow_for_message_task", [contact.pk])]
    poison.refresh_from_db()
    assert (poison.parked_at, poison.processing_attempts, poison.processing_error) == (None, 0, "")
    assert inbound_replay([poison.pk]) == 0  # not parked any more: nothing to replay

    # The cause is fixed: the replayed message is answered.
    InboundMessage.objects.filter(pk=poison.pk).update(text="boom, fixed")
    assert contact_messages_process(contact_id=contact.pk)["processed"] == 1
    assert reply_texts(poison) == ["echo boom, fixed"]


def test_a_255_character_wamid_is_answered_with_a_key_that_fits(poison_flow):
    contact = make_contact()
    wamid = "wamid." + "A" * 249
    assert len(wamid) == 255
    inbound = make_inbound(contact, "hi", wamid=wamid)
    assert contact_messages_process(contact_id=contact.pk)["replies"] == 1
    [reply] = OutboundMessage.objects.filter(in_reply_to=inbound)
    assert len(reply.idempotency_key) <= 255
    assert reply.idempotency_key == reply_key(wamid, 0) != reply_key(wamid + "B", 0)
    # Stable: a redelivered run recreates the same key, so it never sends twice.
    InboundMessage.objects.filter(pk=inbound.pk).update(processed_at=None)
    contact_messages_process(contact_id=contact.pk)
    assert OutboundMessage.objects.count() == 1
    # Ordinary wamids keep their readable "<wamid>:<index>" keys.
    assert reply_key("wamid.short", 2) == "wamid.short:2"


def test_attempts_stop_at_the_limit_when_two_runs_fail_on_the_same_message(settings):
    settings.FLOWS_MAX_PROCESSING_ATTEMPTS = 2
    contact = make_contact()
    inbound = make_inbound(contact, "boom")
    now = timezone.now()
    assert inbound_attempt_fail(inbound_id=inbound.pk, error="E: 1", now=now) is False
    assert inbound_attempt_fail(inbound_id=inbound.pk, error="E: 2", now=now) is True
    # A concurrent run that failed on it too finds it parked: no count past the limit.
    assert inbound_attempt_fail(inbound_id=inbound.pk, error="E: 3", now=now) is True
    inbound.refresh_from_db()
    assert (inbound.processing_attempts, inbound.processing_error) == (2, "E: 2")
    assert inbound.parked_at == now
