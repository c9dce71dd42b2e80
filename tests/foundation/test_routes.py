from __future__ import annotations

import pytest

from whatsappcrm_backend.celery import TASK_ROUTES, app

app.loader.import_default_modules()
PROJECT_TASKS = sorted(name for name in app.tasks if not name.startswith("celery."))


def test_every_routed_task_is_registered():
    assert set(TASK_ROUTES) == set(PROJECT_TASKS)


@pytest.mark.parametrize("name", PROJECT_TASKS)
def test_registered_task_queue_matches_route_table(name):
    assert name in TASK_ROUTES, f"{name} has no route"
    task = app.tasks[name]
    assert task.queue == TASK_ROUTES[name]["queue"]
    assert app.amqp.router.route({}, name)["queue"].name == TASK_ROUTES[name]["queue"]


@pytest.mark.parametrize("name", PROJECT_TASKS)
def test_routed_priority_is_a_broker_step(name):
    priority = app.amqp.router.route({}, name).get("priority")
    assert priority == TASK_ROUTES[name]["priority"]
    assert priority in app.conf.broker_transport_options["priority_steps"]
