"""Factory functions shared by the test suite (plain functions, no factory library)."""

from __future__ import annotations

import base64
import os
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from meta_integration.models import Contact, InboundMessage, WhatsAppNumber


def new_wamid() -> str:
    return "wamid." + base64.b64encode(os.urandom(24)).decode()


def make_number(**fields: Any) -> WhatsAppNumber:
    fields.setdefault("phone_number_id", settings.META_PHONE_NUMBER_ID or "106540352242922")
    fields.setdefault("display_phone_number", "15550783881")
    number, _ = WhatsAppNumber.objects.get_or_create(
        phone_number_id=fields.pop("phone_number_id"), defaults=fields
    )
    return number


def make_contact(wa_id: str = "16505551234", **fields: Any) -> Contact:
    fields.setdefault("number", make_number())
    fields.setdefault("profile_name", "Sheena Nelson")
    fields.setdefault("last_inbound_at", timezone.now())
    return Contact.objects.create(wa_id=wa_id, **fields)


def make_inbound(
    contact: Contact,
    text: str = "hi",
    *,
    message_type: str = "text",
    reply_id: str = "",
    sent_at: datetime | None = None,
    **fields: Any,
) -> InboundMessage:
    return InboundMessage.objects.create(
        wamid=fields.pop("wamid", new_wamid()),
        contact=contact,
        number=contact.number,
        message_type=message_type,
        text=text,
        reply_id=reply_id,
        payload=fields.pop("payload", {"type": message_type}),
        sent_at=sent_at or timezone.now(),
        **fields,
    )
