"""Reads of the WhatsApp channel."""

from __future__ import annotations

from collections.abc import Iterable

from meta_integration.models import Contact, WhatsAppNumber


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
