"""Two real workers and a burst from one contact: replies in message order, each exactly once."""

from __future__ import annotations

import pytest

from flows.services import flows_import
from meta_integration.models import InboundMessage, OutboundMessage
from tests.conftest import wait_for
from tests.factories import make_contact, make_inbound
from tests.flows.conftest import flow
from whatsappcrm_backend.publishing import publish

pytestmark = pytest.mark.worker

BURST = 10

ECHO = flow(
    "echo",
    [
        {
            "name": "ask",
            "type": "question",
            "config": {
                "prompt": {"type": "text", "body": "Say something"},
                "expect": "text",
                "save_as": "said",
            },
            "transitions": [{"to": "echo", "condition": {}}],
        },
        {
            "name": "echo",
            "type": "send",
            "config": {"type": "text", "body": "You said: {{ context.said }}"},
            "transitions": [{"to": "ask", "condition": {}}],
        },
    ],
    is_default=True,
)


def test_burst_from_one_contact_is_answered_in_order_by_two_workers(celery_worker_factory):
    flows_import(data={"flows": [ECHO]})
    contact = make_contact()
    workers = [celery_worker_factory(queues="celery", concurrency=1) for _ in range(2)]

    # As the webhook does: the row is committed, then the task is published (once per batch
    # of new messages; here every message is its own batch, so ten tasks race for one contact).
    start = make_inbound(contact, "start")
    publish("process_flow_for_message_task", contact.pk)
    messages = [start]
    for index in range(BURST - 1):
        messages.append(make_inbound(contact, f"message {index}"))
        publish("process_flow_for_message_task", contact.pk)

    def all_answered() -> bool:
        return not InboundMessage.objects.filter(
            contact=contact, processed_at__isnull=True
        ).exists()

    try:
        wait_for(all_answered, timeout=60)
    except AssertionError:
        pytest.fail("\n\n".join(worker.log()[-3000:] for worker in workers))

    replies = list(OutboundMessage.objects.filter(contact=contact).order_by("id"))
    keys = [reply.idempotency_key for reply in replies]
    expected = [f"{start.wamid}:0"]
    for message in messages[1:]:
        expected += [f"{message.wamid}:0", f"{message.wamid}:1"]
    assert keys == expected, "replies follow the messages' order, each exactly once"
    assert [r.text for r in replies if r.idempotency_key.endswith(":0")] == ["Say something"] + [
        f"You said: message {index}" for index in range(BURST - 1)
    ]
    for message in messages:
        assert sum(key == f"{message.wamid}:0" for key in keys) == 1
    # Both workers took part (most tasks find nothing left to do: that is the idempotency).
    assert all("process_flow_for_message_task" in worker.log() for worker in workers)
