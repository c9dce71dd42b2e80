"""Reads for page 6, sessions: active ones by time to expiry, hand-overs apart, expiries per
hour over the last day (as SVG bars), and the configured timeouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncHour

from flows.models import ConversationSession, Flow, SessionStatus

LIST_LIMIT = 100


def active_sessions(*, now: datetime, limit: int = LIST_LIMIT) -> dict[str, Any]:
    """Soonest to expire first (the (status, expires_at) index serves order and count)."""
    rows = list(
        ConversationSession.objects.filter(status=SessionStatus.ACTIVE)
        .select_related("contact", "flow", "current_step")
        .defer("context")
        .order_by("expires_at", "id")[:limit]
    )
    return {
        "count": ConversationSession.objects.filter(status=SessionStatus.ACTIVE).count(),
        "rows": [
            {
                "session": row,
                "expires_in": (row.expires_at - now).total_seconds() if row.expires_at else None,
            }
            for row in rows
        ],
    }


def handed_over_sessions(*, limit: int = LIST_LIMIT) -> dict[str, Any]:
    """Open hand-overs: a human owns the conversation, so idle expiry never applies to them."""
    open_handovers = ConversationSession.objects.filter(
        status=SessionStatus.HANDED_OVER, ended_at__isnull=True
    )
    return {
        "count": open_handovers.count(),
        "rows": list(
            open_handovers.select_related("contact", "flow")
            .defer("context")
            .order_by("-last_activity_at")[:limit]
        ),
    }


def expired_per_hour(*, now: datetime, hours: int = 24) -> list[dict[str, Any]]:
    """Sessions that expired in each of the last `hours` hours, oldest first (zeros kept)."""
    end_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end_hour - timedelta(hours=hours - 1)
    counts = {
        row["hour"].astimezone(UTC): row["n"]
        for row in ConversationSession.objects.filter(
            status=SessionStatus.EXPIRED, ended_at__gte=start
        )
        .annotate(hour=TruncHour("ended_at"))
        .values("hour")
        .annotate(n=Count("id"))
        .order_by()
    }
    series = []
    for index in range(hours):
        hour = start + timedelta(hours=index)
        series.append({"hour": hour, "count": counts.get(hour.astimezone(UTC), 0)})
    return series


def bar_chart(series: list[dict[str, Any]], *, width: int = 720, height: int = 120) -> dict:
    """Geometry of an inline SVG bar chart (no JavaScript, no front-end build)."""
    top = max((point["count"] for point in series), default=0) or 1
    slot = width / max(len(series), 1)
    bars = []
    for index, point in enumerate(series):
        bar_height = round(point["count"] / top * (height - 20), 1)
        bars.append(
            {
                "x": round(index * slot + 1, 1),
                "y": round(height - 14 - bar_height, 1),
                "w": round(slot - 2, 1),
                "h": bar_height,
                "count": point["count"],
                "label": point["hour"].strftime("%H:00"),
                "label_x": round(index * slot + slot / 2, 1),
                "show_label": index % 3 == 0,
            }
        )
    return {"width": width, "height": height, "bars": bars, "max": top}


def configured_timeouts() -> dict[str, Any]:
    return {
        "default_seconds": int(getattr(settings, "SESSION_IDLE_TIMEOUT", 300)),
        "per_flow": list(
            Flow.objects.exclude(idle_timeout_seconds__isnull=True)
            .order_by("name")
            .values("id", "name", "idle_timeout_seconds", "active")
        ),
    }
