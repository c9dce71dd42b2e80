"""Page 7, message latency, and the message lookup (by wamid or customer number)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from whatsappcrm_backend.console import selectors_latency, selectors_lookup
from whatsappcrm_backend.console.pages_common import render_page, staff_required

WINDOW_CHOICES = (5, 15, 60, 240, 1440)


@staff_required
@require_GET
def latency_page(request: HttpRequest) -> HttpResponse:
    try:
        minutes = int(request.GET.get("minutes") or 15)
    except ValueError:
        minutes = 15
    minutes = min(max(minutes, 1), 1440)
    return render_page(
        request,
        "console/latency.html",
        title="Message latency",
        current="console:latency",
        context={
            "data": selectors_latency.latency_overview(minutes=minutes),
            "window_choices": WINDOW_CHOICES,
        },
    )


@staff_required
@require_GET
def lookup_page(request: HttpRequest) -> HttpResponse:
    query = (request.GET.get("q") or "").strip()[:255]
    return render_page(
        request,
        "console/lookup.html",
        title="Look up a message or customer",
        current="console:lookup",
        # The operator is reading or typing: no auto-refresh unless a result is shown.
        refresh_seconds=15 if query else None,
        context={"result": selectors_lookup.lookup(query)},
    )
