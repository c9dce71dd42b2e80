"""Demo data of the WhatsApp channel (called by `manage.py bootstrap_demo`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from meta_integration.models import WhatsAppNumber


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
    return {"number": number.phone_number_id, "created": created}
