"""Who may see the console: staff sessions everywhere; the X-Ops-Token header for machine
endpoints (JSON, readiness, /metrics) when OPS_TOKEN is set. Everyone else gets nothing."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden

TOKEN_HEADER = "X-Ops-Token"  # noqa: S105 - a header name, not a secret


def is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_active and user.is_staff)


def token_ok(request: HttpRequest) -> bool:
    expected = getattr(settings, "OPS_TOKEN", "") or ""
    given = request.headers.get(TOKEN_HEADER, "")
    # Empty setting = token access off; compare in constant time.
    return bool(expected) and bool(given) and hmac.compare_digest(given, expected)


def staff_or_token(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For JSON and metrics: a staff session or the right token, else 403 (never a redirect)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if is_staff(request) or token_ok(request):
            return view(request, *args, **kwargs)
        return HttpResponseForbidden("staff session or X-Ops-Token required\n")

    return wrapper


# Pages: anonymous and non-staff are sent to the admin login (302).
staff_page = staff_member_required
