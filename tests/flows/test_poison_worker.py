"""A poison message on real parts: webhook -> Redis -> real worker (with its retries) ->
sandbox. The message is parked after FLOWS_MAX_PROCESSING_ATTEMPTS and the contact's next
message, sent right after it, is answered.

The worker imports this module (`--include`) with FLOWS_TEST_POISON_TEXT set: the database
then refuses the reply to that text, as PostgreSQL refused the over-long reply key of a
255-character wamid (the one place this test patches the worker).
"""

from __future__ import annotations

import os

import pytest
from django.db import DataError

from flows.services import processing
from meta_integration.models import InboundMessage
from tests.conftest import wait_for
from tests.factories import new_wamid
from tests.integration.conftest import (  # noqa: F401 - fixtures used by name
    demo_data,
    graph_sandbox,
    hot_path,
    inbound_event,
    message_text,
)

POISON_ENV = "FLOWS_TEST_POISON_TEXT"


def _install_poison(text: str) -> None:
    real = processing.outbound_message_create

    def outbound_create(**kwargs):
        inbound = kwargs.get("in_reply_to")
        if inbound is not None and inbound.text == text:
            raise DataError("value too long for type character varying(255)")
        return real(**kwargs)

    processing.outbound_message_create = outbound_create


if os.environ.get(POISON_ENV):  # inside the worker started below
    _install_poison(os.environ[POISON_ENV])


@pytest.mark.worker
def test_a_poison_message_is_parked_and_the_next_one_answered(
    hot_path,  # noqa: F811 - the fixture imported above
    celery_worker_factory,
):
    celery_worker_factory(
        queues="celery",
        concurrency=2,
        env={
            "META_GRAPH_BASE_URL": hot_path.sandbox_url,
            POISON_ENV: "boom",
            "FLOWS_MAX_PROCESSING_ATTEMPTS": "3",
        },
        extra_args=["--include", "tests.flows.test_poison_worker"],
    )
    wa_id = "15550004001"
    poison, after = new_wamid(), new_wamid()
    assert hot_path.post(inbound_event(wa_id, "boom", wamid=poison)).status_code == 200
    assert hot_path.post(inbound_event(wa_id, "hi", wamid=after)).status_code == 200

    # The worker retries the contact (1 s, 2 s backoff) until the poison message is parked,
    # then answers the next one: nothing waits for the sweeper.
    [reply] = hot_path.wait_reply(after, timeout=60)
    assert "How can we help you today?" in message_text(reply)
    parked = InboundMessage.objects.get(wamid=poison)
    assert parked.parked_at is not None and parked.processed_at is None
    assert parked.processing_attempts == 3
    assert "DataError" in parked.processing_error
    assert hot_path.replies_to(poison) == []
    assert wait_for(lambda: InboundMessage.objects.get(wamid=after).processed_at)
