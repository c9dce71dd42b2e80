"""Beat schedules are declared in code, per app, and installed into django-celery-beat.

Each app may have a `schedules.py` with `SCHEDULES = [{"name", "task", "every_seconds"}, ...]`.
`manage.py install_schedules` (run by `make run` and deploys) upserts them; queue and priority
come from the route table, so a schedule cannot disagree with it.
"""

from __future__ import annotations

from importlib import import_module

from django.apps import apps
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from whatsappcrm_backend.celery import TASK_ROUTES


def declared_schedules() -> list[dict[str, object]]:
    declared: list[dict[str, object]] = []
    for config in apps.get_app_configs():
        try:
            module = import_module(f"{config.name}.schedules")
        except ModuleNotFoundError:
            continue
        declared.extend(getattr(module, "SCHEDULES", []))
    return declared


@transaction.atomic
def install_schedules() -> list[str]:
    installed = []
    for entry in declared_schedules():
        task = str(entry["task"])
        route = TASK_ROUTES[task]
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=int(entry["every_seconds"]), period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.update_or_create(
            name=str(entry["name"]),
            defaults={
                "task": task,
                "interval": interval,
                "crontab": None,
                "queue": route["queue"],
                "priority": int(route["priority"]),
                # An expired run is worthless: the next one is seconds away.
                "expire_seconds": int(entry["every_seconds"]),
                "description": str(entry.get("description", "")),
            },
        )
        installed.append(str(entry["name"]))
    return installed
