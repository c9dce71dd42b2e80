"""Page 6, sessions: time to expiry, expiries per hour, timeouts, expire now, hand-overs."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from flows.models import ConversationSession
from flows.services.sessions import session_expire
from whatsappcrm_backend.console import selectors_sessions as sel
from whatsappcrm_backend.console.pages_common import (
    log_operator_action,
    render_page,
    staff_required,
)

logger = logging.getLogger(__name__)


@staff_required
@require_GET
def sessions_page(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    series = sel.expired_per_hour(now=now)
    return render_page(
        request,
        "console/sessions.html",
        title="Conversation sessions",
        current="console:sessions",
        context={
            "now": now,
            "active": sel.active_sessions(now=now),
            "handovers": sel.handed_over_sessions(),
            "chart": sel.bar_chart(series),
            "expired_24h": sum(point["count"] for point in series),
            "timeouts": sel.configured_timeouts(),
        },
    )


@transaction.atomic
def operator_session_expire(*, session_id: int, user_id: int, username: str) -> bool:
    """Expire an active session now (flows' own service: the contact lock, the timeout
    message within the 24 h window) and log who did it."""
    expired = session_expire(
        session_id=session_id, reason=f"expired by operator {username}"[:64], only_if_due=False
    )
    if expired:
        log_operator_action(
            user_id=user_id,
            model=ConversationSession,
            objects=[(session_id, f"session {session_id}")],
            message="Expired now from the console",
        )
    return expired


@staff_required
@require_POST
def sessions_action(request: HttpRequest) -> HttpResponse:
    try:
        session_id = int(request.POST.get("id", ""))
    except ValueError:
        messages.error(request, "Bad session id: nothing was done.")
        return HttpResponseRedirect(reverse("console:sessions"))
    if request.POST.get("action") != "expire":
        messages.error(request, "Unknown action: nothing was done.")
    elif operator_session_expire(
        session_id=session_id, user_id=request.user.pk, username=request.user.get_username()
    ):
        messages.success(request, f"Session {session_id} expired.")
    else:
        messages.warning(request, f"Session {session_id} is not active any more: nothing done.")
    return HttpResponseRedirect(reverse("console:sessions"))
