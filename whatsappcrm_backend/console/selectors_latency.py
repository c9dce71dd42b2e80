"""Reads for page 7, message latency: reply latency percentiles, ingestion lag and its alarm,
per-number send rate against Meta's tier, and the slowest conversations with their timelines.

Every read is bounded: windows start from an indexed column ((status, queued_at) on outbound,
the primary key on inbound), and row samples are capped.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from meta_integration.models import (
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    WebhookEvent,
    WhatsAppNumber,
)
from whatsappcrm_backend.console import metrics

SENT_STATES = (OutboundStatus.SENT, OutboundStatus.DELIVERED, OutboundStatus.READ)
THROTTLE_CODES = (130429, 131056)
SAMPLE_CAP = 20_000
FLOW_TASK = "process_flow_for_message_task"
SEND_TASK = "send_whatsapp_message_task"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return round(value, 2)


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": round(max(values), 1) if values else None,
    }


def _ms(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds() * 1000


def reply_latency(*, now: datetime, minutes: int) -> dict[str, Any]:
    """Inbound received -> reply handed to the Graph API (sent_at), replies sent in the window.

    Rows come from the (status, queued_at) index: a reply is queued after its inbound message
    arrived, so queued_at >= window start covers every reply of messages in the window.
    """
    since = now - timedelta(minutes=minutes)
    rows = list(
        OutboundMessage.objects.filter(
            status__in=SENT_STATES,
            queued_at__gte=since,
            in_reply_to__isnull=False,
            sent_at__isnull=False,
        )
        .order_by("-queued_at")
        .values_list("id", "sent_at", "queued_at", "in_reply_to__received_at")[:SAMPLE_CAP]
    )
    samples = [
        (pk, _ms(sent, received), _ms(sent, queued))
        for pk, sent, queued, received in rows
        if received is not None
    ]
    total = [value for _, value, _ in samples if value is not None]
    send_part = [value for _, _, value in samples if value is not None]
    slowest = sorted(samples, key=lambda item: -(item[1] or 0))[:10]
    return {
        "since": since,
        "total": summary(total),
        "send": summary(send_part),
        "capped": len(rows) >= SAMPLE_CAP,
        "slowest_ids": [pk for pk, _, _ in slowest],
    }


def unsent_replies(*, now: datetime, minutes: int) -> dict[str, Any]:
    """Replies of the window not handed to Meta yet (queued, sending) or failed: the
    "missing" replies, with the oldest one's age."""
    since = now - timedelta(minutes=minutes)
    waiting = OutboundMessage.objects.filter(
        status__in=(OutboundStatus.QUEUED, OutboundStatus.SENDING), queued_at__gte=since
    )
    oldest = waiting.aggregate(oldest=Min("queued_at"))["oldest"]
    return {
        "by_status": dict(
            OutboundMessage.objects.filter(
                status__in=(OutboundStatus.QUEUED, OutboundStatus.SENDING, OutboundStatus.FAILED),
                queued_at__gte=since,
            )
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        ),
        "oldest_age_s": (now - oldest).total_seconds() if oldest else None,
    }


def ingestion(*, now: datetime, minutes: int, sample: int = 5000) -> dict[str, Any]:
    """Webhook accepted (received_at) -> processed by the flow; and the unprocessed backlog.

    The alarm: accepted rows waiting longer than OPS_INGESTION_ALARM_SECONDS (default 60) with
    nothing processed meanwhile means the flow workers are not taking them.
    """
    since = now - timedelta(minutes=minutes)
    recent = [
        row
        for row in InboundMessage.objects.order_by("-id").values_list(
            "received_at", "processed_at"
        )[:sample]
        if row[0] >= since
    ]
    lags = [_ms(processed, received) for received, processed in recent if processed]
    pending = InboundMessage.objects.filter(processed_at__isnull=True, parked_at__isnull=True)
    backlog = pending.aggregate(n=Count("id"), oldest=Min("received_at"))
    oldest_age = (now - backlog["oldest"]).total_seconds() if backlog["oldest"] else None
    threshold = int(getattr(settings, "OPS_INGESTION_ALARM_SECONDS", 60))
    processed_recently = any(
        processed and processed >= now - timedelta(seconds=threshold) for _, processed in recent
    )
    alarm = None
    if oldest_age is not None and oldest_age > threshold:
        alarm = (
            f"{backlog['n']} accepted message(s) not processed, the oldest for "
            f"{int(oldest_age)} s"
            + (
                "; nothing processed in the last "
                f"{threshold} s: are the workers of the celery queue running?"
                if not processed_recently
                else "; processing is running but behind"
            )
        )
    return {
        "lag": summary([value for value in lags if value is not None]),
        "received": len(recent),
        "webhook_events": WebhookEvent.objects.filter(received_at__gte=since).count(),
        "pending": backlog["n"],
        "oldest_pending_s": oldest_age,
        "alarm": alarm,
        "threshold_s": threshold,
    }


def send_rates(*, now: datetime, minutes: int, rate_window_s: int = 60) -> list[dict[str, Any]]:
    """Per business number: sends handed to Meta in the last minute (mean and peak per second)
    against META_MESSAGES_PER_SECOND, and rows whose last attempt hit 130429 / 131056."""
    tier = int(getattr(settings, "META_MESSAGES_PER_SECOND", 80))
    start = now - timedelta(seconds=rate_window_s)
    per_second: dict[int | None, Counter[int]] = defaultdict(Counter)
    for number_id, sent_at in (
        OutboundMessage.objects.filter(
            status__in=SENT_STATES,
            queued_at__gte=now - timedelta(minutes=max(minutes, 15)),
            sent_at__gte=start,
        )
        .values_list("number_id", "sent_at")
        .iterator(chunk_size=2000)
    ):
        per_second[number_id][int(sent_at.timestamp())] += 1
    throttled: dict[int | None, Counter[int]] = defaultdict(Counter)
    for number_id, code, n in (
        OutboundMessage.objects.filter(
            status__in=OutboundStatus.values,
            queued_at__gte=now - timedelta(minutes=minutes),
            error_code__in=THROTTLE_CODES,
        )
        .values_list("number_id", "error_code")
        .annotate(n=Count("id"))
        .order_by()
    ):
        throttled[number_id][code] += n
    ids = set(per_second) | set(throttled)
    numbers = {n.pk: str(n) for n in WhatsAppNumber.objects.filter(pk__in=[i for i in ids if i])}
    rows = []
    for number_id in sorted(ids, key=lambda value: value or 0):
        seconds = per_second.get(number_id, Counter())
        sent = sum(seconds.values())
        peak = max(seconds.values(), default=0)
        rows.append(
            {
                "number": numbers.get(number_id, "no number") if number_id else "no number",
                "sent": sent,
                "mean_per_s": round(sent / rate_window_s, 2),
                "peak_per_s": peak,
                "tier": tier,
                "peak_pct": round(peak / tier * 100) if tier else None,
                "c130429": throttled.get(number_id, Counter())[130429],
                "c131056": throttled.get(number_id, Counter())[131056],
            }
        )
    return rows


def timeline(inbound: InboundMessage | None, outbound: OutboundMessage | None) -> list[dict]:
    """Each step of one reply's journey with its time since the customer's message arrived
    (negative for Meta's own timestamp of the message, which precedes our receipt)."""
    origin = inbound.received_at if inbound else (outbound.queued_at if outbound else None)
    steps: list[tuple[str, datetime | None]] = []
    if inbound is not None:
        steps += [
            ("customer sent (Meta's time)", inbound.sent_at),
            ("webhook received", inbound.received_at),
            ("flow processed", inbound.processed_at),
            ("parked", inbound.parked_at),
        ]
    if outbound is not None:
        steps += [
            ("send queued", outbound.queued_at),
            ("sending (claimed by a worker)", outbound.sending_at),
            ("sent (Graph API accepted)", outbound.sent_at),
            ("delivered", outbound.delivered_at),
            ("read", outbound.read_at),
            ("failed", outbound.failed_at),
        ]
    events = []
    for label, at in steps:
        if at is None:
            continue
        since = _ms(at, origin)
        events.append(
            {
                "label": label,
                "at": at,
                "since_ms": since,
                "since": "" if since is None else f"{since:+,.0f} ms",
            }
        )
    # The journey's order, not the clock's: Meta's status webhooks (delivered, read) can
    # arrive before the send task records Graph's answer; the offsets show it.
    return events


def slowest_conversations(ids: list[int]) -> list[dict[str, Any]]:
    rows = {
        row.pk: row
        for row in OutboundMessage.objects.filter(pk__in=ids)
        .select_related("contact", "in_reply_to")
        .defer("payload", "in_reply_to__payload")
    }
    result = []
    for pk in ids:
        row = rows.get(pk)
        if row is None:
            continue
        result.append(
            {
                "outbound": row,
                "contact": row.contact,
                "inbound": row.in_reply_to,
                "total_ms": _ms(
                    row.sent_at, row.in_reply_to.received_at if row.in_reply_to else None
                ),
                "timeline": timeline(row.in_reply_to, row),
            }
        )
    return result


def task_figures(*, minutes: int) -> dict[str, dict[str, Any]]:
    """Wait (publish -> start) and run time of the flow and send tasks, from the metrics store."""
    try:
        stats = metrics.task_stats(window_seconds=minutes * 60)
    except Exception:  # noqa: BLE001 - Redis down: the page still shows the database figures
        return {}
    return {name: stats[name] for name in (FLOW_TASK, SEND_TASK) if name in stats}


def latency_overview(*, now: datetime | None = None, minutes: int = 15) -> dict[str, Any]:
    now = now or timezone.now()
    replies = reply_latency(now=now, minutes=minutes)
    return {
        "now": now,
        "minutes": minutes,
        "replies": replies,
        "unsent": unsent_replies(now=now, minutes=minutes),
        "ingestion": ingestion(now=now, minutes=minutes),
        "rates": send_rates(now=now, minutes=minutes),
        "slowest": slowest_conversations(replies["slowest_ids"]),
        "tasks": task_figures(minutes=minutes),
    }
