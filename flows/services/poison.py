"""Poison inbound messages: count failed attempts per message, park, replay.

A message whose processing raises (a bug, a value the database refuses) must not silence its
contact. The flow transaction rolls back whole; then, in a transaction of its own that commits,
the attempt is counted on THAT message; after FLOWS_MAX_PROCESSING_ATTEMPTS it is parked
(kept with its error, skipped by the flow task and the sweeper) and the contact's later
messages go through. An operator replays it from the admin once the cause is fixed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Case, DateTimeField, F, Value, When

from meta_integration.models import InboundMessage
from whatsappcrm_backend.celery import Priority
from whatsappcrm_backend.publishing import publish_on_commit

logger = logging.getLogger(__name__)

FLOW_TASK = "process_flow_for_message_task"
ERROR_MAX = 2000


def max_attempts() -> int:
    return max(1, int(getattr(settings, "FLOWS_MAX_PROCESSING_ATTEMPTS", 3)))


@transaction.atomic
def inbound_attempt_fail(*, inbound_id: int, error: str, now: datetime) -> bool:
    """Count one failed attempt on the message, parking it at the limit; True when parked.

    One conditional UPDATE does both: two runs failing on the same message at once (a
    redelivered task, a sweep) count in turn, and only one of them parks it, exactly at the
    limit. A message parked by the other run counts nothing more and reads as parked.
    """
    limit = max_attempts()
    counted = InboundMessage.objects.filter(
        pk=inbound_id, processed_at__isnull=True, parked_at__isnull=True
    ).update(
        processing_attempts=F("processing_attempts") + 1,
        processing_error=error[:ERROR_MAX],
        # SET expressions see the row before the update: this is the attempt that hits the limit.
        parked_at=Case(
            When(processing_attempts__gte=limit - 1, then=Value(now)),
            default=Value(None),
            output_field=DateTimeField(),
        ),
    )
    row = (
        InboundMessage.objects.filter(pk=inbound_id)
        .values("processing_attempts", "parked_at", "processed_at")
        .first()
    )
    if row is None or row["processed_at"] is not None:
        return False
    parked = row["parked_at"] is not None
    if counted and parked:
        logger.error(
            "inbound %s parked after %s failed attempts; its contact's later messages go on: %s",
            inbound_id,
            row["processing_attempts"],
            error,
        )
    elif counted:
        logger.warning(
            "inbound %s failed (attempt %s of %s): %s",
            inbound_id,
            row["processing_attempts"],
            limit,
            error,
        )
    return parked


@transaction.atomic
def inbound_replay(ids: Iterable[int]) -> int:
    """Un-park messages (attempts reset) and run their contacts' flows again after commit."""
    rows = InboundMessage.objects.filter(
        pk__in=list(ids), parked_at__isnull=False, processed_at__isnull=True
    )
    pairs = list(rows.values_list("pk", "contact_id"))
    InboundMessage.objects.filter(pk__in=[pk for pk, _ in pairs]).update(
        parked_at=None, processing_attempts=0, processing_error=""
    )
    for contact_id in sorted({contact_id for _, contact_id in pairs}):
        publish_on_commit(FLOW_TASK, contact_id, priority=Priority.REPLY)
    for pk, contact_id in pairs:
        logger.info("parked inbound %s of contact %s replayed", pk, contact_id)
    return len(pairs)
