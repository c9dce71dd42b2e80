"""Queues and Workers pages, the JSON figures, /metrics and the readiness view."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from whatsappcrm_backend.console import heartbeats, metrics, prometheus, queues
from whatsappcrm_backend.console.auth import is_staff, staff_or_token, staff_page, token_ok
from whatsappcrm_backend.console.pages_common import render_page
from whatsappcrm_backend.health import health_report

SPARK_WIDTH, SPARK_HEIGHT = 120, 24


def sparkline(values: list[int], width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT) -> str:
    """SVG polyline points for a series (oldest first), scaled to the box."""
    if not values:
        return ""
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    return " ".join(
        f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values)
    )


def fmt_ms(value: float | None) -> str:
    """Milliseconds for people: 0.29, 4.2, 543, 18,941."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value:.2f}"
    if value < 10:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _task_rows(tasks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, s in sorted(tasks.items()):
        rows.append(
            {
                "name": name,
                "runs": s["count_in_queue"],
                "failures": s["failures"],
                "retries": s["retries"],
                "wait": " / ".join(fmt_ms(s[f"wait_{p}"]) for p in ("p50", "p95", "p99")),
                "run": " / ".join(fmt_ms(s[f"run_{p}"]) for p in ("p50", "p95", "p99")),
            }
        )
    return rows


def _rates(throughput: dict[str, dict[str, float]]) -> str:
    return " · ".join(
        f"{throughput[w]['in_per_s']:.2f} / {throughput[w]['out_per_s']:.2f}"
        for w in ("1m", "5m", "15m")
    )


def _refresh() -> int:
    return int(getattr(settings, "OPS_REFRESH_SECONDS", 10))


@never_cache
@require_GET
@staff_page
def queues_page(request: HttpRequest) -> HttpResponse:
    figures = queues.collect()
    series = metrics.queue_series(minutes=15, now=figures["generated_at"])
    rows = []
    for q in figures["queues"]:
        points = series.get(q["name"], [])
        ins = [p["in"] for p in points]
        outs = [p["out"] for p in points]
        rows.append(
            {
                **q,
                "spark_in": sparkline(ins),
                "spark_out": sparkline(outs),
                "spark_peak": max(ins + outs, default=0),
                "oldest_human": queues.humanize_seconds(q["oldest_age_seconds"])
                if q["oldest_age_seconds"] is not None
                else "",
                "drain_human": queues.humanize_seconds(q["drain_seconds"])
                if q["drain_seconds"] is not None
                else ("growing" if q["depth"] else "empty"),
                "since_human": queues.humanize_seconds(q["since_consumed_seconds"]),
                "redeliver_in": None
                if q["next_redelivery_at"] is None
                else queues.humanize_seconds(q["next_redelivery_at"] - figures["generated_at"]),
                "task_rows": _task_rows(q["tasks"]),
                "rates": _rates(q["throughput"]),
            }
        )
    return render_page(
        request,
        "console/queues.html",
        title="Queues",
        current="console:queues",
        refresh_seconds=_refresh(),
        context={
            "figures": figures,
            "rows": rows,
            "spark_width": SPARK_WIDTH,
            "spark_height": SPARK_HEIGHT,
            "stuck_seconds": getattr(settings, "OPS_STUCK_SECONDS", 120),
            "operations": [
                {
                    "name": name,
                    "count": s["count"],
                    "slow": s["slow"],
                    "duration": " / ".join(
                        fmt_ms(s[f"duration_{p}"]) for p in ("p50", "p95", "p99")
                    ),
                    "queries_p95": fmt_ms(s["queries_p95"]),
                }
                for name, s in sorted(figures["operations"].items())
            ],
        },
    )


@never_cache
@require_GET
@staff_page
def workers_page(request: HttpRequest) -> HttpResponse:
    now = time.time()
    worker_list = heartbeats.workers(now=now)
    for worker in worker_list:
        worker["last_beat_human"] = queues.humanize_seconds(worker["silent_seconds"]) + " ago"
        worker["uptime_human"] = queues.humanize_seconds(now - worker.get("started_at", now))
        for task in worker["current"]:
            started = task.get("started")
            task["running_human"] = queues.humanize_seconds(now - started) if started else ""
    beat = heartbeats.beat_status(now=now)
    if beat.get("last_beat"):
        beat["last_beat_human"] = queues.humanize_seconds(beat["silent_seconds"]) + " ago"
    if beat.get("last_tick"):
        beat["last_tick_human"] = queues.humanize_seconds(now - beat["last_tick"]) + " ago"
    declared = queues.declared_queues()
    consumers = heartbeats.consumers_by_queue(worker_list)
    return render_page(
        request,
        "console/workers.html",
        title="Workers",
        current="console:workers",
        refresh_seconds=_refresh(),
        context={
            "workers": worker_list,
            "beat": beat,
            "uncovered": [q for q in declared if not consumers.get(q)],
            "lost_seconds": heartbeats.lost_seconds(),
        },
    )


@never_cache
@require_GET
@staff_or_token
def queues_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(queues.collect())


@never_cache
@require_GET
@staff_or_token
def metrics_view(request: HttpRequest) -> HttpResponse:
    body = prometheus.exposition(queues.collect())
    return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")


def readiness_report() -> dict[str, Any]:
    """Database and Redis (as /healthz), a live worker on every declared queue, and beat."""
    report = health_report()
    now = time.time()
    worker_list = heartbeats.workers(now=now)
    consumers = heartbeats.consumers_by_queue(worker_list)
    beat = heartbeats.beat_status(now=now)
    uncovered = [q for q in queues.declared_queues() if not consumers.get(q)]
    failed = list(report["failed"])
    if uncovered:
        failed.append("workers")
    if beat.get("status") != "ok":
        failed.append("beat")
    return {
        "status": "ok" if not failed else "fail",
        "checks": {
            **report["checks"],
            "workers": "ok" if not uncovered else f"no live worker for: {', '.join(uncovered)}",
            "beat": beat.get("status"),
        },
        "failed": failed,
        "workers": [
            {k: w[k] for k in ("hostname", "queues", "status", "silent_seconds")}
            for w in worker_list
        ],
    }


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """The status code is public (load balancers); the details need staff or the token."""
    report = readiness_report()
    code = 200 if report["status"] == "ok" else 503
    if is_staff(request) or token_ok(request):
        return JsonResponse(report, status=code)
    return JsonResponse({"status": report["status"]}, status=code)
