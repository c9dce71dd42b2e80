"""A human takes a conversation over from the admin, end to end on real parts: webhook (live
server) -> Redis -> real worker -> Graph sandbox. While handed over the bot sends nothing (no
reply, no timeout notice); the agent's reply reaches the sandbox; hand-back resumes the flows."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from django.utils import timezone

from flows.models import ConversationSession, SessionStatus
from flows.tasks import cleanup_idle_conversations_task
from meta_integration.models import Contact, InboundMessage
from tests.conftest import wait_for
from tests.factories import new_wamid
from tests.integration.conftest import (  # noqa: F401 - fixtures used by name
    demo_data,
    graph_sandbox,
    hot_path,
    inbound_event,
    message_text,
)

pytestmark = pytest.mark.worker


def test_take_over_answer_and_hand_back_from_the_admin(hot_path, admin_client):  # noqa: F811
    hot_path.start_workers(env={"SESSION_IDLE_TIMEOUT": "2"})
    wa_id = "15550003001"

    def customer_says(text: str) -> str:
        wamid = new_wamid()
        assert hot_path.post(inbound_event(wa_id, text, wamid=wamid)).status_code == 200
        return wamid

    hot_path.wait_reply(customer_says("hi"))  # the bot answers; its session is active
    contact = Contact.objects.get(wa_id=wa_id)
    page = reverse("admin:flows_conversation_change", args=[contact.pk])
    assert admin_client.post(page, {"op": "handover", "reason": "VIP"}).status_code == 302
    bot_sends = len(hot_path.replies(wa_id))

    silent = customer_says("is anyone there?")
    wait_for(lambda: InboundMessage.objects.filter(wamid=silent, processed_at__isnull=False))
    # Well past the worker's 2 s idle timeout: the sweep neither expires it nor says "closed".
    session = ConversationSession.objects.get(contact=contact)
    time.sleep(max(0.0, (session.expires_at - timezone.now()).total_seconds()) + 0.5)
    assert cleanup_idle_conversations_task.apply().get() == {"expired": 0}
    assert ConversationSession.objects.get(pk=session.pk).status == SessionStatus.HANDED_OVER

    token = "f" * 32
    reply = {"op": "reply", "token": token, "text": "Hi, this is Ann. How can I help?"}
    assert admin_client.post(page, reply).status_code == 302
    assert admin_client.post(page, reply).status_code == 302  # double submit: sends once
    [sent] = wait_for(
        lambda: [
            m for m in hot_path.replies(wa_id) if m["biz_opaque_callback_data"] == f"agent:{token}"
        ]
    )
    assert message_text(sent) == "Hi, this is Ann. How can I help?"
    time.sleep(1.0)  # a duplicate would have been sent by now
    texts = [message_text(m) for m in hot_path.replies(wa_id)]
    assert len(texts) == bot_sends + 1 and texts[-1] == "Hi, this is Ann. How can I help?"

    assert admin_client.post(page, {"op": "handback"}).status_code == 302
    [answer] = hot_path.wait_reply(customer_says("thanks, bye"))
    assert message_text(answer)  # the flows answer again
