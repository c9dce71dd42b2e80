"""Queues, workers, JSON and readiness (under /ops/; /metrics is at the root, see ../urls.py)."""

from django.urls import path

from whatsappcrm_backend.console import health_views

urlpatterns: list = [
    path("", health_views.queues_page, name="index"),
    path("queues/", health_views.queues_page, name="queues"),
    path("workers/", health_views.workers_page, name="workers"),
    path("queues.json", health_views.queues_json, name="queues_json"),
    path("ready", health_views.ready, name="ready"),
]
