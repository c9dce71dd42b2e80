"""Task results, schedules, failed work, sessions, latency and message lookup."""

from django.urls import path

from whatsappcrm_backend.console import (
    pages_failed,
    pages_latency,
    pages_schedules,
    pages_sessions,
    pages_tasks,
)

urlpatterns: list = [
    path("tasks/", pages_tasks.tasks_page, name="tasks"),
    path("tasks/action/", pages_tasks.tasks_action, name="tasks_action"),
    path("tasks/<str:task_id>.json", pages_tasks.task_status_json, name="task_status"),
    path("failed/", pages_failed.failed_page, name="failed"),
    path("failed/action/", pages_failed.failed_action, name="failed_action"),
    path("schedules/", pages_schedules.schedules_page, name="schedules"),
    path("schedules/action/", pages_schedules.schedules_action, name="schedules_action"),
    path("sessions/", pages_sessions.sessions_page, name="sessions"),
    path("sessions/action/", pages_sessions.sessions_action, name="sessions_action"),
    path("latency/", pages_latency.latency_page, name="latency"),
    path("lookup/", pages_latency.lookup_page, name="lookup"),
]
