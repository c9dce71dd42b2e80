"""The template-catalogue sync task (hourly from beat, and on demand from the admin or when a
webhook names a template we do not know yet).

A module of its own, imported by MetaIntegrationConfig.ready(): Celery autodiscovers only
`tasks` modules.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings

from meta_integration import templates
from meta_integration.models import WhatsAppNumber
from whatsappcrm_backend.celery import MAINTENANCE_QUEUE
from whatsappcrm_backend.locks import single_run

logger = logging.getLogger(__name__)


def waba_ids_to_sync() -> list[str]:
    """Every WABA we send from: the active numbers' WABAs and META_WABA_ID."""
    ids = set(
        WhatsAppNumber.objects.filter(active=True)
        .exclude(waba_id="")
        .values_list("waba_id", flat=True)
    )
    if settings.META_WABA_ID:
        ids.add(settings.META_WABA_ID)
    return sorted(ids)


@shared_task(
    name="sync_message_templates_task",
    queue=MAINTENANCE_QUEUE,
    ignore_result=False,  # the console shows what each scheduled run did
    soft_time_limit=120,
    time_limit=150,
)
@single_run("sync_message_templates_task", timeout=150)
def sync_message_templates_task(waba_id: str = "") -> dict[str, Any]:
    """Sync one WABA's catalogue (or every WABA's). A failed WABA is reported, not retried:
    nothing was written for it, and the next hourly run tries again."""
    synced: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for waba in [waba_id] if waba_id else waba_ids_to_sync():
        try:
            synced[waba] = templates.templates_sync(number_or_waba=waba)
        except templates.TemplateSyncError as exc:
            logger.warning("template sync of WABA %s failed: %s", waba, exc)
            failed[waba] = str(exc)[:300]
    return {"synced": synced, "failed": failed}
