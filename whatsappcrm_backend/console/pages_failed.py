"""Page 4, failed work: failed sends by error code and parked inbound messages, with replay of
one, the selected, or a whole error-code group (capped); every replay is in the admin log."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from whatsappcrm_backend.console import selectors_failed as sel
from whatsappcrm_backend.console import services_failed
from whatsappcrm_backend.console.pages_common import BULK_CAP, render_page, staff_required


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value or 0) or None
    except ValueError:
        return None


@staff_required
@require_GET
def failed_page(request: HttpRequest) -> HttpResponse:
    code = (request.GET.get("code") or "").strip()
    try:
        sends = sel.failed_sends(code=code, before=_int_or_none(request.GET.get("before")))
    except ValueError as exc:
        messages.error(request, str(exc))
        code, sends = "", sel.failed_sends()
    parked = sel.parked_inbound(before=_int_or_none(request.GET.get("parked_before")))
    base = reverse("console:failed")
    next_sends = None
    if sends["next_before"]:
        next_sends = base + "?" + urlencode({"code": code, "before": sends["next_before"]})
    next_parked = None
    if parked["next_before"]:
        next_parked = base + "?" + urlencode({"parked_before": parked["next_before"]})
    return render_page(
        request,
        "console/failed.html",
        title="Failed work",
        current="console:failed",
        refresh_seconds=None if request.GET.get("before") else 60,
        context={
            "groups": sel.failed_send_groups(),
            "code": code,
            "sends": sends,
            "next_sends": next_sends,
            "duplicates": sel.possible_duplicates(),
            "parked": parked,
            "next_parked": next_parked,
            "cap": BULK_CAP,
        },
    )


def _ids(request: HttpRequest, name: str) -> list[int]:
    if request.POST.get("one"):  # a row's own button: that row only, whatever is ticked
        return [int(request.POST["one"])]
    return [int(value) for value in request.POST.getlist(name) if value.strip()]


@staff_required
@require_POST
def failed_action(request: HttpRequest) -> HttpResponse:
    """POST kind=send|inbound; ids (selected or one row's button), or group=<code> (send) /
    all=1 (inbound) for every row of the group, at most BULK_CAP."""
    kind = request.POST.get("kind", "")
    back = reverse("console:failed")
    try:
        if kind == "send":
            if "group" in request.POST:
                ids = sel.failed_send_ids(code=request.POST["group"], cap=BULK_CAP)[:BULK_CAP]
            else:
                ids = _ids(request, "ids")
            if not ids:
                messages.warning(request, "No failed sends selected: nothing was done.")
                return HttpResponseRedirect(back)
            summary = services_failed.sends_replay(ids=ids, user_id=request.user.pk)
            messages.success(request, f"Replay of {len(ids)} failed send(s): {summary}.")
        elif kind == "inbound":
            ids = (
                sel.parked_ids(cap=BULK_CAP)[:BULK_CAP]
                if request.POST.get("all")
                else _ids(request, "ids")
            )
            if not ids:
                messages.warning(request, "No parked messages selected: nothing was done.")
                return HttpResponseRedirect(back)
            summary = services_failed.inbound_replay(ids=ids, user_id=request.user.pk)
            messages.success(request, f"Replay of {len(ids)} parked message(s): {summary}.")
        else:
            messages.error(request, f"Unknown kind {kind!r}: nothing was done.")
    except services_failed.ReplayUnavailable as exc:
        messages.error(request, str(exc))
    except ValueError as exc:
        messages.error(request, f"Bad request ({exc}): nothing was done.")
    return HttpResponseRedirect(back)
