"""The handoff: follow-ups published inside `follow_ups_here` at their runner's priority run in
this process, after the block, replies first; everything else, and every follow-up that fails,
goes to the broker."""

from __future__ import annotations

import json

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction

from whatsappcrm_backend import handoff, publishing
from whatsappcrm_backend.celery import Priority

pytestmark = pytest.mark.django_db(transaction=True)


def queued(redis_conn) -> list[tuple[str, str, dict]]:
    """(task, args as Celery shows them, headers and priority) of every queued message."""
    found = []
    for key in redis_conn.keys("celery*"):
        if redis_conn.type(key) == b"list":
            for raw in redis_conn.lrange(key, 0, -1):
                message = json.loads(raw)
                headers = {**message["headers"], "priority": message["properties"]["priority"]}
                found.append((headers["task"], headers["argsrepr"], headers))
    return found


@pytest.fixture
def runners():
    """Register runners for two made-up task names; `calls` records what ran, in order."""
    calls: list[tuple[str, tuple]] = []
    behaviour: dict[str, object] = {}

    def make(name: str):
        def run(*args):
            calls.append((name, args))
            action = behaviour.get(name)
            if callable(action):
                action(*args)

        return run

    for name in ("first_task", "second_task"):
        handoff.runs_here(name)(make(name))
    handoff.runs_here("receipt_task", priority=Priority.RECEIPT)(make("receipt_task"))
    yield calls, behaviour
    # Only the made-up names: a publish may have imported the real task modules meanwhile.
    for name in ("first_task", "second_task", "receipt_task"):
        handoff._runners.pop(name, None)


def test_outside_a_block_a_registered_task_goes_to_the_broker(runners, broker_conn):
    calls, _ = runners
    publishing.publish("first_task", 1, priority=Priority.REPLY)
    assert calls == []
    assert [(task, args) for task, args, _ in queued(broker_conn)] == [("first_task", "[1]")]


def test_reply_follow_ups_run_here_after_the_block_in_order(runners, broker_conn):
    calls, _ = runners
    with handoff.follow_ups_here():
        with transaction.atomic():
            publishing.publish_on_commit("first_task", 1, priority=Priority.REPLY)
            publishing.publish_on_commit("second_task", 2, priority=Priority.REPLY)
        assert calls == []  # not before the block's own work is done
    assert calls == [("first_task", (1,)), ("second_task", (2,))]
    assert queued(broker_conn) == []


def test_a_rolled_back_follow_up_neither_runs_nor_is_published(runners, broker_conn):
    calls, _ = runners
    with handoff.follow_ups_here(), pytest.raises(RuntimeError), transaction.atomic():
        publishing.publish_on_commit("first_task", 1, priority=Priority.REPLY)
        raise RuntimeError("rolls back")
    assert calls == []
    assert queued(broker_conn) == []


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("noop_task", {"priority": Priority.REPLY}),  # no runner registered
        ("first_task", {"priority": Priority.RECEIPT}),  # never ahead of the reply
        ("first_task", {"priority": Priority.REPLY, "countdown": 5}),  # a chosen delay
    ],
)
def test_other_publishes_go_to_the_broker(runners, broker_conn, name, options):
    calls, _ = runners
    with handoff.follow_ups_here():
        publishing.publish(name, 7, **options)
    assert calls == []
    assert [(task, args) for task, args, _ in queued(broker_conn)] == [(name, "[7]")]


def test_a_receipt_runs_here_after_every_reply_follow_up(runners, broker_conn):
    calls, behaviour = runners
    behaviour["first_task"] = lambda n: publishing.publish("second_task", n + 1)
    with handoff.follow_ups_here(), transaction.atomic():
        publishing.publish_on_commit("receipt_task", 9, priority=Priority.RECEIPT)
        publishing.publish_on_commit("first_task", 1, priority=Priority.REPLY)
    # The reply's own follow-up (second_task), published after the receipt, still runs first.
    assert calls == [("first_task", (1,)), ("second_task", (2,)), ("receipt_task", (9,))]
    assert queued(broker_conn) == []


def test_follow_ups_published_by_a_runner_join_the_run(runners, broker_conn):
    calls, behaviour = runners
    behaviour["first_task"] = lambda n: publishing.publish("second_task", n + 1)
    with handoff.follow_ups_here():
        publishing.publish("first_task", 1)
    assert calls == [("first_task", (1,)), ("second_task", (2,))]
    assert queued(broker_conn) == []


def test_a_follow_up_already_waiting_is_not_kept_twice(runners, broker_conn):
    calls, _ = runners
    with handoff.follow_ups_here():
        publishing.publish("first_task", 1)
        publishing.publish("first_task", 1)
    assert calls == [("first_task", (1,))]


@pytest.mark.parametrize(
    ("name", "priority"), [("first_task", Priority.REPLY), ("receipt_task", Priority.RECEIPT)]
)
def test_a_runner_that_raises_hands_its_task_to_the_broker_with_a_delay(
    runners, broker_conn, name, priority
):
    calls, behaviour = runners

    def fail(_):
        raise RuntimeError("database is locked")

    behaviour[name] = fail
    with handoff.follow_ups_here():
        publishing.publish(name, 1, priority=priority)
        publishing.publish("second_task", 2)
    assert sorted(calls) == sorted([(name, (1,)), ("second_task", (2,))])  # the other still ran
    [(task, args, headers)] = queued(broker_conn)
    assert (task, args) == (name, "[1]")
    assert headers["eta"]  # retried after FALLBACK_COUNTDOWN_SECONDS, by the task's policy
    assert headers["priority"] == priority  # a receipt stays behind the replies


def test_follow_ups_past_the_limit_go_to_the_broker(runners, broker_conn):
    calls, _ = runners
    with handoff.follow_ups_here(limit=2):
        for n in range(3):
            publishing.publish("first_task", n)
    assert calls == [("first_task", (0,)), ("first_task", (1,))]
    assert [(task, args) for task, args, _ in queued(broker_conn)] == [("first_task", "[2]")]


def test_out_of_time_the_running_follow_up_and_the_rest_go_to_the_broker(runners, broker_conn):
    calls, behaviour = runners

    def out_of_time(_):
        raise SoftTimeLimitExceeded()

    behaviour["first_task"] = out_of_time
    with pytest.raises(SoftTimeLimitExceeded), handoff.follow_ups_here():
        publishing.publish("first_task", 1)
        publishing.publish("second_task", 2)
    assert calls == [("first_task", (1,))]
    assert sorted((task, args) for task, args, _ in queued(broker_conn)) == [
        ("first_task", "[1]"),
        ("second_task", "[2]"),
    ]


def test_when_the_block_itself_fails_its_committed_follow_ups_go_to_the_broker(
    runners, broker_conn
):
    calls, _ = runners
    with pytest.raises(RuntimeError), handoff.follow_ups_here():
        publishing.publish("first_task", 1)
        raise RuntimeError("the task failed after its commit")
    assert calls == []
    assert [(task, args) for task, args, _ in queued(broker_conn)] == [("first_task", "[1]")]


def test_the_registered_runners_are_the_flow_and_the_send():
    from flows import tasks as flow_tasks  # noqa: F401 - registers its runner
    from meta_integration import tasks as channel_tasks  # noqa: F401

    assert {
        "process_flow_for_message_task",
        "send_whatsapp_message_task",
        "send_read_receipt_task",
    } <= set(handoff._runners)
    assert handoff._runners["send_read_receipt_task"][0] == Priority.RECEIPT
