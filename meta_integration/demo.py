"""Demo data of the WhatsApp channel (called by `manage.py bootstrap_demo`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from meta_integration.models import WhatsAppNumber
from whatsappcrm_backend.publishing import publish


def load_demo() -> dict[str, Any]:
    """Upsert the business number configured in settings (the sandbox's in a fresh checkout)."""
    if not settings.META_PHONE_NUMBER_ID:
        return {"number": None, "note": "META_PHONE_NUMBER_ID is empty; no number configured"}
    number, created = WhatsAppNumber.objects.update_or_create(
        phone_number_id=settings.META_PHONE_NUMBER_ID,
        defaults={
            "waba_id": settings.META_WABA_ID,
            "display_phone_number": settings.META_DISPLAY_PHONE_NUMBER,
            "api_version": settings.META_API_VERSION,
            "active": True,
        },
    )
    # The template catalogue is otherwise empty until the hourly sync; the sandbox starts with
    # the other processes, so the first sync waits a few seconds for it.
    templates_sync_queued = publish("sync_message_templates_task", countdown=15)
    return {
        "number": number.phone_number_id,
        "created": created,
        "templates_sync_queued": templates_sync_queued,
    }
