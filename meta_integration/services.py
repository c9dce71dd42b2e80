"""Writes of the WhatsApp channel."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from meta_integration.messages import preview_text
from meta_integration.models import Contact, InboundMessage, OutboundMessage
from whatsappcrm_backend.celery import Priority
from whatsappcrm_backend.publishing import publish_on_commit


@transaction.atomic
def outbound_message_create(
    *,
    contact: Contact,
    idempotency_key: str,
    message: dict[str, Any],
    in_reply_to: InboundMessage | None = None,
    priority: int = Priority.REPLY,
) -> tuple[OutboundMessage, bool]:
    """Queue one outbound message; the send task is published after commit.

    `message` is a builder's output (meta_integration.messages). A key that already exists
    returns the existing row and publishes nothing: creating twice can never send twice.
    """
    existing = OutboundMessage.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            outbound = OutboundMessage.objects.create(
                contact=contact,
                number_id=contact.number_id,
                in_reply_to=in_reply_to,
                idempotency_key=idempotency_key,
                message_type=message["type"],
                payload=message,
                text=preview_text(message)[:1000],
                priority=int(priority),
            )
    except IntegrityError:
        # A concurrent creator won the unique key between our read and insert.
        return OutboundMessage.objects.get(idempotency_key=idempotency_key), False
    publish_on_commit("send_whatsapp_message_task", outbound.pk, priority=int(priority))
    return outbound, True
