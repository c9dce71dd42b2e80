"""Page 5, schedules: next run, last run and its result, run now, pause/resume, missed runs."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from whatsappcrm_backend.console import selectors_schedules as sel
from whatsappcrm_backend.console import services_schedules as svc
from whatsappcrm_backend.console.pages_common import render_page, staff_required


@staff_required
@require_GET
def schedules_page(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows, missing = sel.schedules(now=now)
    return render_page(
        request,
        "console/schedules.html",
        title="Schedules",
        current="console:schedules",
        context={
            "rows": rows,
            "missing": missing,
            "now": now,
            "missed_count": sum(1 for row in rows if row["missed"]),
            "tasks_url": reverse("console:tasks"),
        },
    )


@staff_required
@require_POST
def schedules_action(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    try:
        schedule_id = int(request.POST.get("id", ""))
        if action == "run":
            task_id = svc.schedule_run_now(schedule_id=schedule_id, user_id=request.user.pk)
            messages.success(request, f"Published now as task {task_id}.")
        elif action in {"pause", "resume"}:
            changed = svc.schedule_set_enabled(
                schedule_id=schedule_id, enabled=action == "resume", user_id=request.user.pk
            )
            messages.success(
                request,
                f"Schedule {'paused' if action == 'pause' else 'resumed'}."
                if changed
                else "Nothing to change: it already was.",
            )
        else:
            messages.error(request, f"Unknown action {action!r}: nothing was done.")
    except ValueError as exc:  # ScheduleActionError included
        messages.error(request, f"{exc}: nothing was done.")
    return HttpResponseRedirect(reverse("console:schedules"))
