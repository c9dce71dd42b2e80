"""Per-conversation send order: a chain, not polling.

Meta delivers in the order it accepts, so the sends of one conversation, a (business number,
customer) pair, leave one after another. A send that finds an earlier unfinished row of its
pair (queued or sending, of the same or a more urgent priority) returns without claiming and
without re-publishing itself: waiting costs no broker traffic. When a row finishes (sent,
failed for good, or completed by Meta's status echo) the finisher publishes the pair's next
rows ("heads": queued rows that nothing earlier holds back). A retry keeps its place: it is
back in `queued` with its backoff, so the rows after it keep waiting; its own scheduled retry
moves the chain on. A bulk row never holds up a reply (priority), and the sweeper re-publishes
a head whose task was lost, so a chain broken by a crash still moves on.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from meta_integration.models import OutboundMessage, OutboundStatus
from whatsappcrm_backend.publishing import publish_on_commit

SEND_TASK = "send_whatsapp_message_task"
UNFINISHED = (OutboundStatus.QUEUED, OutboundStatus.SENDING)
# How many unfinished rows of one pair are read to find its heads (a pair rarely has more
# than a handful; a backlog beyond this is reached as the first rows finish).
HEAD_SCAN_LIMIT = 50


def pair_q(*, contact_id: int, number_id: int | None) -> Q:
    """The rows of one conversation (a row without a number is its own null-number pair)."""
    if number_id is None:
        return Q(contact_id=contact_id, number__isnull=True)
    return Q(contact_id=contact_id, number_id=number_id)


def earlier_unfinished(
    *, outbound_id: int, contact_id: int, number_id: int | None, priority: int
) -> QuerySet[OutboundMessage]:
    """The rows that hold this one back."""
    return OutboundMessage.objects.filter(
        pair_q(contact_id=contact_id, number_id=number_id),
        pk__lt=outbound_id,
        priority__lte=priority,
        status__in=UNFINISHED,
    )


def heads(
    rows: list[tuple[int, str, int, datetime]],
) -> list[tuple[int, int, datetime]]:
    """Pure: the queued rows nothing earlier holds back, from a pair's unfinished rows.

    `rows` are (pk, status, priority, next_attempt_at) in pk order. A row is held back by any
    earlier unfinished row of the same or a more urgent (lower) priority.
    """
    found: list[tuple[int, int, datetime]] = []
    most_urgent: int | None = None
    for pk, status, priority, due in rows:
        if status == OutboundStatus.QUEUED and (most_urgent is None or priority < most_urgent):
            found.append((pk, priority, due))
        most_urgent = priority if most_urgent is None else min(most_urgent, priority)
    return found


def publish_next(*, contact_id: int, number_id: int | None, now: datetime | None = None) -> int:
    """Publish the pair's heads that are due (after commit). Returns how many were published.

    Called by whoever finishes a row. A head still waiting out a backoff is not published: its
    own scheduled retry (or, if that was lost, the sweeper) sends it. A head whose task is
    still in the broker gets a second task; the conditional claim makes that a no-op.
    """
    now = now or timezone.now()
    rows = list(
        OutboundMessage.objects.filter(
            pair_q(contact_id=contact_id, number_id=number_id), status__in=UNFINISHED
        )
        .order_by("pk")
        .values_list("pk", "status", "priority", "next_attempt_at")[:HEAD_SCAN_LIMIT]
    )
    published = 0
    for pk, priority, due in heads(rows):
        if due <= now:
            publish_on_commit(SEND_TASK, pk, priority=int(priority))
            published += 1
    return published
