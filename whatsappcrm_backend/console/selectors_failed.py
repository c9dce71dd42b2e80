"""Reads for page 4, failed work: failed sends grouped by Meta error code, sends that ran out of
retries, sweeper resends flagged as possible duplicates, and parked inbound messages."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Q
from django.utils import timezone

from meta_integration.errors import PERMANENT_CODES, RETRYABLE_CODES
from meta_integration.models import InboundMessage, OutboundMessage, OutboundStatus

PAGE_SIZE = 50
# sending._retry_or_fail writes this prefix when a retryable error exhausted the budget.
GAVE_UP_PREFIX = "gave up after"
NO_CODE = "none"


def code_kind(code: int | None) -> str:
    if code is None:
        return "no Meta code (refused before sending, or a transport error)"
    if code in RETRYABLE_CODES:
        return "retryable (ran out of retries)"
    if code in PERMANENT_CODES:
        return "permanent"
    return "other"


def failed_send_groups() -> list[dict[str, Any]]:
    """Failed sends per error code, biggest group first (reads the status index only)."""
    groups = (
        OutboundMessage.objects.filter(status=OutboundStatus.FAILED)
        .values("error_code")
        .annotate(
            count=Count("id"),
            gave_up=Count("id", filter=Q(error_details__startswith=GAVE_UP_PREFIX)),
            duplicates=Count("id", filter=Q(possible_duplicate=True)),
            latest=Max("failed_at"),
        )
        .order_by("-count")
    )
    return [
        {
            **group,
            "code_param": NO_CODE if group["error_code"] is None else str(group["error_code"]),
            "kind": code_kind(group["error_code"]),
        }
        for group in groups
    ]


def parse_code(value: str | None) -> tuple[bool, int | None]:
    """(filtering?, code) from the `code` parameter: "" no filter, "none" no code, digits."""
    if not value:
        return False, None
    if value == NO_CODE:
        return True, None
    if value.lstrip("-").isdigit():
        return True, int(value)
    raise ValueError(f"bad error code {value!r}")


def failed_sends(*, code: str = "", before: int | None = None) -> dict[str, Any]:
    rows = OutboundMessage.objects.filter(status=OutboundStatus.FAILED).select_related("contact")
    filtering, value = parse_code(code)
    if filtering:
        rows = (
            rows.filter(error_code=value)
            if value is not None
            else rows.filter(error_code__isnull=True)
        )
    if before:
        rows = rows.filter(id__lt=before)
    fetched = list(rows.defer("payload").order_by("-id")[: PAGE_SIZE + 1])
    more = len(fetched) > PAGE_SIZE
    fetched = fetched[:PAGE_SIZE]
    return {
        "rows": [
            {"row": row, "gave_up": row.error_details.startswith(GAVE_UP_PREFIX)} for row in fetched
        ],
        "next_before": fetched[-1].id if more and fetched else None,
    }


def failed_send_ids(*, code: str, cap: int) -> list[int]:
    rows = OutboundMessage.objects.filter(status=OutboundStatus.FAILED)
    filtering, value = parse_code(code)
    if filtering:
        rows = (
            rows.filter(error_code=value)
            if value is not None
            else rows.filter(error_code__isnull=True)
        )
    return list(rows.order_by("id").values_list("id", flat=True)[: cap + 1])


def possible_duplicates(*, now: datetime | None = None) -> dict[str, Any]:
    """Sweeper resends of rows stuck in `sending`: Meta may have delivered them twice."""
    now = now or timezone.now()
    flagged = OutboundMessage.objects.filter(possible_duplicate=True)
    return {
        "total": flagged.count(),
        "last_24h": flagged.filter(queued_at__gte=now - timedelta(hours=24)).count(),
        "by_status": dict(flagged.values_list("status").annotate(n=Count("id")).order_by("status")),
        "recent": list(flagged.select_related("contact").defer("payload").order_by("-id")[:10]),
    }


def parked_inbound(*, before: int | None = None) -> dict[str, Any]:
    """Inbound messages the flow could not process within its attempts, grouped by error."""
    rows = InboundMessage.objects.filter(
        processed_at__isnull=True, parked_at__isnull=False
    ).select_related("contact")
    if before:
        rows = rows.filter(id__lt=before)
    fetched = list(rows.defer("payload").order_by("-id")[: PAGE_SIZE + 1])
    more = len(fetched) > PAGE_SIZE
    fetched = fetched[:PAGE_SIZE]
    groups: dict[str, int] = {}
    for error, count in (
        InboundMessage.objects.filter(processed_at__isnull=True, parked_at__isnull=False)
        .values_list("processing_error")
        .annotate(n=Count("id"))
        .order_by("-n")[:200]
    ):
        label = (
            (error or "no error recorded").splitlines()[0][:120] if error else "no error recorded"
        )
        groups[label] = groups.get(label, 0) + count
    return {
        "rows": fetched,
        "groups": sorted(groups.items(), key=lambda item: -item[1]),
        "next_before": fetched[-1].id if more and fetched else None,
    }


def parked_ids(*, cap: int) -> list[int]:
    return list(
        InboundMessage.objects.filter(processed_at__isnull=True, parked_at__isnull=False)
        .order_by("id")
        .values_list("id", flat=True)[: cap + 1]
    )
