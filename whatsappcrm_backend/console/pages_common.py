"""What every operator page shares: the staff gate, the console nav, rendering, the action log."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from whatsappcrm_backend.console.auth import staff_page

# Pages 1-2 (queues, workers) belong to the health half of the console; a name that does not
# resolve (yet) is simply left out of the nav.
NAV: tuple[tuple[str, str], ...] = (
    ("Queues", "console:queues"),
    ("Workers", "console:workers"),
    ("Task results", "console:tasks"),
    ("Failed work", "console:failed"),
    ("Schedules", "console:schedules"),
    ("Sessions", "console:sessions"),
    ("Message latency", "console:latency"),
    ("Look up a message", "console:lookup"),
)

# Bulk actions on "everything a filter matches" stop here: an operator who needs more runs the
# action again (the rows already handled no longer match a failed/parked filter).
BULK_CAP = 1000

staff_required = staff_page  # the console's one staff gate (console/auth.py)


def console_nav(current: str) -> list[dict[str, Any]]:
    items = []
    for label, name in NAV:
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        items.append({"label": label, "url": url, "current": name == current})
    return items


def render_page(
    request: HttpRequest,
    template: str,
    *,
    title: str,
    current: str,
    context: dict[str, Any],
    refresh_seconds: int | None = 10,
) -> HttpResponse:
    """A console page; refresh_seconds=None for pages that hold a form the operator fills in.
    `?refresh=0` turns the auto-refresh off (while ticking rows for a bulk action)."""
    if request.GET.get("refresh") == "0":
        refresh_seconds = None
    return render(
        request,
        template,
        {
            "title": title,
            "console_nav": console_nav(current),
            "refresh_seconds": refresh_seconds,
            "no_refresh": refresh_seconds is None,
            **context,
        },
    )


def log_operator_action(
    *, user_id: int, model: type[Model], objects: Iterable[tuple[Any, str]], message: str
) -> int:
    """One admin LogEntry per object acted on (`(pk, repr)` pairs): who did what, to what."""
    content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
    entries = [
        LogEntry(
            user_id=user_id,
            content_type=content_type,
            object_id=str(pk),
            object_repr=str(text)[:200],
            action_flag=CHANGE,
            change_message=message,
        )
        for pk, text in objects
    ]
    LogEntry.objects.bulk_create(entries, batch_size=500)
    return len(entries)
