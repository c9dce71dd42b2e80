"""Reads of the WhatsApp channel."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.utils import timezone

from meta_integration.models import Contact, ConversationWindow, WhatsAppNumber

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)


def active_numbers(phone_number_ids: Iterable[str]) -> dict[str, WhatsAppNumber]:
    """Active numbers by phone_number_id (webhook events route by it)."""
    return {
        number.phone_number_id: number
        for number in WhatsAppNumber.objects.filter(
            phone_number_id__in=set(phone_number_ids), active=True
        )
    }


def default_number() -> WhatsAppNumber | None:
    """The number to send from when a row and its contact name none: the oldest active one."""
    return WhatsAppNumber.objects.filter(active=True).order_by("pk").first()


def sending_number(contact: Contact, number: WhatsAppNumber | None = None) -> WhatsAppNumber | None:
    return number or contact.number or default_number()


def window_is_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Pure: Meta's customer-service window, 24 h from the customer's latest message."""
    return last_inbound_at is not None and now - last_inbound_at <= CUSTOMER_SERVICE_WINDOW


def window_open(*, contact_id: int, number_id: int | None) -> bool:
    """Whether a free-form message to this contact may leave from this business number now.

    The window is per (business number, customer) pair (ConversationWindow, upserted by the
    webhook ingest). `number_id=None` means the number a send would use: the contact's last
    number, else the default one. A contact with no window row at all was stored before the
    windows were per pair: its global `last_inbound_at` (from its last number) decides.
    """
    now = timezone.now()
    windows = dict(
        ConversationWindow.objects.filter(contact_id=contact_id).values_list(
            "number_id", "last_inbound_at"
        )
    )
    contact = Contact.objects.filter(pk=contact_id).values_list("number_id", "last_inbound_at")
    if number_id is None or not windows:
        found = contact.first()
        if found is None:
            return False
        if number_id is None:
            fallback = default_number() if found[0] is None else None
            number_id = found[0] if found[0] is not None else (fallback.pk if fallback else None)
        if not windows:
            return window_is_open(found[1], now)
    return window_is_open(windows.get(number_id), now)
