"""Page 3, task results: filters, keyset pages, retry and revoke (one, selected, or all that a
filter matches, behind a confirmation and a cap), and a task's status by id as JSON."""

from __future__ import annotations

from html import escape
from urllib.parse import quote, urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from whatsappcrm_backend.console import selectors_tasks as sel
from whatsappcrm_backend.console import task_actions
from whatsappcrm_backend.console.auth import staff_or_token
from whatsappcrm_backend.console.pages_common import BULK_CAP, render_page, staff_required

ACTIONS = {
    "retry": ("retried", task_actions.results_retry),
    "revoke": ("revoked", task_actions.results_revoke),
}


def _dash(value: object) -> object:
    return "—" if value is None or value == "" else value


def rows_html(items: list[dict]) -> str:
    """The table's rows, built in Python with the standard library's escape: Django's template
    engine (or format_html per cell) costs milliseconds per row of this width, which alone
    would put a 50-row page near its 300 ms budget. Every value below is escaped."""
    schedules_url = reverse("console:schedules")
    status_url = reverse("console:task_status", args=["TASK-ID"])
    html = []
    for item in items:
        row = item["row"]
        pk = int(row.pk)
        task_id = escape(row.task_id)
        schedule = ""
        if row.periodic_task_name:
            name = row.periodic_task_name
            schedule = (
                f'<a href="?{escape(urlencode({"schedule": name}))}">{escape(name)}</a> '
                f'(<a href="{schedules_url}#{escape(slugify(name))}">schedule</a>)'
            )
        cells = [
            f'<input type="checkbox" name="ids" value="{pk}" aria-label="select {task_id}">',
            row.date_done.strftime("%Y-%m-%d %H:%M:%S") if row.date_done else "",
            escape(row.task_name or "?"),
            escape(row.status),
            escape(str(_dash(item["queue"]))),
            escape(str(_dash(item["wait_ms"]))),
            escape(str(_dash(item["run_ms"]))),
            escape(str(_dash(item["retries"]))),
            f"<code>{escape(item['args'])}</code>",
            f"<code>{escape(item['kwargs'])}</code>",
            f"<code>{escape(item['result'])}</code>",
            schedule,
            escape(row.worker or ""),
            f'<a href="{escape(status_url.replace("TASK-ID", quote(row.task_id, safe="")))}">'
            f'json</a> <button type="submit" name="row_retry" value="{pk}" class="retry-one">'
            f'retry</button> <button type="submit" name="row_revoke" value="{pk}" '
            'class="revoke-one">revoke</button>',
        ]
        html.append(
            f'<tr class="status-{escape(row.status.lower())}"><td>'
            + "</td><td>".join(cells)
            + "</td></tr>"
        )
    if not html:
        return mark_safe('<tr><td colspan="14">No task results match.</td></tr>')
    return mark_safe("\n".join(html))  # noqa: S308 - every value above went through escape()


def _list_url(flt: sel.TaskFilter) -> str:
    query = urlencode(flt.as_params())
    return reverse("console:tasks") + (f"?{query}" if query else "")


@staff_required
@require_GET
def tasks_page(request: HttpRequest) -> HttpResponse:
    flt = sel.TaskFilter.from_params(request.GET)
    try:
        before = int(request.GET.get("before") or 0) or None
    except ValueError:
        before = None
    page = sel.results_page(flt, before=before)
    next_url = None
    if page["next_before"]:
        next_url = (
            _list_url(flt) + ("&" if flt.as_params() else "?") + f"before={page['next_before']}"
        )
    return render_page(
        request,
        "console/tasks.html",
        title="Task results",
        current="console:tasks",
        # A page the operator is reading further back, or selecting rows on, must not reload.
        refresh_seconds=None if before else 60,
        context={
            "flt": flt,
            "page": page,
            "rows_html": rows_html(page["items"]),
            "next_url": next_url,
            "first_url": _list_url(flt),
            "statuses": sel.STATUSES,
            "queues": sel.known_queues(),
            "windows": list(sel.WINDOWS),
            "task_names": sorted(sel.TASK_ROUTES),
            "filter_params": flt.as_params(),
            "cap": BULK_CAP,
        },
    )


@staff_required
@require_POST
def tasks_action(request: HttpRequest) -> HttpResponse:
    """POST action=retry|revoke with either ids (selected rows) or scope=filter (+ the filter's
    fields). A filter-wide action first shows how many rows it would touch; `confirm=yes`
    runs it on at most BULK_CAP rows."""
    action = request.POST.get("action", "")
    row_ids: list[str] = []
    for row_action in ACTIONS:  # a row's own button: `row_retry=<id>` / `row_revoke=<id>`
        if request.POST.get(f"row_{row_action}"):
            action, row_ids = row_action, [request.POST[f"row_{row_action}"]]
    flt = sel.TaskFilter.from_params(request.POST)
    if action not in ACTIONS:
        messages.error(request, f"Unknown action {action!r}: nothing was done.")
        return HttpResponseRedirect(_list_url(flt))
    verb, service = ACTIONS[action]
    if request.POST.get("scope") == "filter":
        ids = sel.matching_ids(flt, cap=BULK_CAP)
        if request.POST.get("confirm") != "yes":
            return render_page(
                request,
                "console/tasks_confirm.html",
                title=f"Confirm: {action} task results",
                current="console:tasks",
                refresh_seconds=None,
                context={
                    "action": action,
                    "flt": flt,
                    "filter_params": flt.as_params(),
                    "count": min(len(ids), BULK_CAP),
                    "more": len(ids) > BULK_CAP,
                    "cap": BULK_CAP,
                    "back_url": _list_url(flt),
                },
            )
        ids = ids[:BULK_CAP]
    else:
        try:
            ids = [int(value) for value in row_ids or request.POST.getlist("ids")]
        except ValueError:
            messages.error(request, "Bad row ids: nothing was done.")
            return HttpResponseRedirect(_list_url(flt))
        if not ids:
            messages.warning(request, "No rows selected: nothing was done.")
            return HttpResponseRedirect(_list_url(flt))
    report = service(ids=ids, user_id=request.user.pk)
    level = messages.SUCCESS if report.done and not report.refused else messages.WARNING
    messages.add_message(request, level, f"Task results: {report.summary(verb)}.")
    return HttpResponseRedirect(_list_url(flt))


@require_GET
@staff_or_token
def task_status_json(request: HttpRequest, task_id: str) -> HttpResponse:
    """State, progress (update_state meta), result, queue, wait and run time of one task."""
    return JsonResponse(sel.task_status(task_id[:255]), json_dumps_params={"default": str})
