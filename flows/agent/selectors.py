"""Reads of the agent's view: one contact's thread, and search over message text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from meta_integration.models import Contact, InboundMessage, OutboundMessage

THREAD_LIMIT = 200


@dataclass(frozen=True)
class ThreadItem:
    at: datetime
    direction: str  # "in" or "out"
    text: str
    kind: str
    status: str
    error: str
    row: Any


def _inbound_status(message: InboundMessage) -> tuple[str, str]:
    if message.parked_at is not None:
        return "parked", message.processing_error
    if message.processed_at is None:
        if message.processing_attempts:
            return f"failed {message.processing_attempts}x", message.processing_error
        return "waiting", ""
    return "processed", ""


def contact_thread(contact_id: int, *, limit: int = THREAD_LIMIT) -> list[ThreadItem]:
    """The latest `limit` inbound and outbound messages of the contact, oldest first."""
    inbound = InboundMessage.objects.filter(contact_id=contact_id).order_by("-received_at")[:limit]
    outbound = OutboundMessage.objects.filter(contact_id=contact_id).order_by("-queued_at")[:limit]
    items = []
    for message in inbound:
        status, error = _inbound_status(message)
        items.append(
            ThreadItem(
                message.received_at,
                "in",
                message.text,
                message.message_type,
                status,
                error,
                message,
            )
        )
    for message in outbound:
        error = ""
        if message.error_code is not None or message.error_details:
            error = f"{message.error_code or ''} {message.error_details}".strip()
        at = message.queued_at
        items.append(
            ThreadItem(
                at, "out", message.text, message.message_type, message.status, error, message
            )
        )
    items.sort(key=lambda item: (item.at, item.direction == "out"))
    return items[-limit:]


def contacts_matching(queryset: QuerySet[Contact], term: str) -> QuerySet[Contact]:
    """Contacts whose name, WhatsApp id, or any inbound or outbound message text has `term`."""
    term = term.strip()
    if not term:
        return queryset
    said = InboundMessage.objects.filter(contact_id=OuterRef("pk"), text__icontains=term)
    sent = OutboundMessage.objects.filter(contact_id=OuterRef("pk"), text__icontains=term)
    return queryset.filter(
        Q(wa_id__icontains=term)
        | Q(profile_name__icontains=term)
        | Q(Exists(said))
        | Q(Exists(sent))
    )
