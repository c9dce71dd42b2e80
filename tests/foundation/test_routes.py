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
    # None: the routers decide (a fixed queue would override them; see the send task).
    assert getattr(task, "queue", None) in (None, TASK_ROUTES[name]["queue"])
    assert app.amqp.router.route({}, name)["queue"].name == TASK_ROUTES[name]["queue"]


@pytest.mark.parametrize("name", PROJECT_TASKS)
def test_routed_priority_is_a_broker_step(name):
    priority = app.amqp.router.route({}, name).get("priority")
    assert priority == TASK_ROUTES[name]["priority"]
    assert priority in app.conf.broker_transport_options["priority_steps"]


@pytest.mark.parametrize(
    ("priority", "queue"),
    [(0, "celery"), (3, "celery"), (6, "celery"), (9, "bulk"), (None, "celery")],
)
def test_a_bulk_send_goes_to_the_bulk_queue_and_a_reply_to_the_latency_queue(priority, queue):
    """Priority orders what is queued, not what runs: a bulk send on the latency worker would
    hold the slot a reply needs, so BULK sends have their own queue (and worker)."""
    options = {} if priority is None else {"priority": priority}
    route = app.amqp.router.route(options, "send_whatsapp_message_task")
    assert route["queue"].name == queue
    if priority is not None:
        assert route["priority"] == priority


def test_only_sends_are_routed_by_priority():
    route = app.amqp.router.route({"priority": 9}, "process_flow_for_message_task")
    assert route["queue"].name == "celery"


@pytest.mark.parametrize(("priority", "queue_list"), [(9, "bulk:9"), (0, "celery")])
def test_a_published_send_lands_on_the_queue_its_priority_picks(priority, queue_list, broker_conn):
    """Through the real publish path, with the task registered (as in every worker): a task's
    own `queue` would win over the router, so the send task has none."""
    from whatsappcrm_backend.publishing import publish

    assert getattr(app.tasks["send_whatsapp_message_task"], "queue", None) is None
    assert publish("send_whatsapp_message_task", 12345, priority=priority)
    assert broker_conn.llen(queue_list) == 1
    other = "celery" if queue_list != "celery" else "bulk:9"
    assert broker_conn.llen(other) == 0


def test_api_football_tasks_start_no_faster_than_the_plan_and_the_rest_are_unpaced(settings):
    """A football backlog racing through no-op work takes CPU from the chat path; the tasks
    that call API-Football could not go faster than the plan anyway."""
    from whatsappcrm_backend.celery import API_FOOTBALL_TASKS

    rate = f"{settings.APIFOOTBALL_REQUESTS_PER_MINUTE}/m"
    for name in API_FOOTBALL_TASKS:
        assert app.tasks[name].rate_limit == rate
    for name in ("settle_fixture_pipeline_task", "send_whatsapp_message_task", "noop_task"):
        assert app.tasks[name].rate_limit is None
