"""The pure rules: queue status, drain time and recommendations, as tables."""

from __future__ import annotations

import pytest

from whatsappcrm_backend.console.queues import drain_seconds, queue_status, recommendations


@pytest.mark.parametrize(
    ("depth", "oldest_age", "since_consumed", "consumers", "expected"),
    [
        (0, None, None, 0, "no_consumer"),  # an idle queue nobody consumes is still a problem
        (5, 1.0, 1.0, 0, "no_consumer"),
        (0, None, None, 1, "ok"),
        (0, None, 999.0, 1, "ok"),  # nothing to do is not stuck
        (5, 2.0, None, 1, "ok"),  # a fresh backlog after a quiet spell
        (5, 60.0, 1.0, 1, "busy"),  # old messages, but draining
        (5, 300.0, 1.0, 1, "busy"),
        (5, 300.0, 200.0, 1, "stuck"),  # backlog, nothing finished for > 120 s
        (5, 300.0, None, 2, "stuck"),  # never consumed anything
        (5, 100.0, 200.0, 1, "busy"),  # the oldest has not waited the stuck time yet
    ],
)
def test_queue_status(depth, oldest_age, since_consumed, consumers, expected):
    assert (
        queue_status(
            depth=depth,
            oldest_age=oldest_age,
            since_consumed=since_consumed,
            consumers=consumers,
            stuck_seconds=120,
            busy_age_seconds=30,
        )
        == expected
    )


@pytest.mark.parametrize(
    ("depth", "in_per_s", "out_per_s", "expected"),
    [
        (0, 0.0, 0.0, 0.0),
        (40_000, 0.0, 120.0, 40_000 / 120),
        (40_000, 20.0, 120.0, 400.0),
        (10, 5.0, 5.0, None),  # not shrinking
        (10, 6.0, 5.0, None),  # growing
    ],
)
def test_drain_seconds(depth, in_per_s, out_per_s, expected):
    assert drain_seconds(depth=depth, in_per_s=in_per_s, out_per_s=out_per_s) == expected


def rate(in_per_s=0.0, out_per_s=0.0):
    return {"in": int(in_per_s * 60), "out": int(out_per_s * 60), "in_per_s": in_per_s,
            "out_per_s": out_per_s}  # fmt: skip


def queue(name="football_data", status="ok", depth=0, drain=0.0, in_s=0.0, out_s=0.0, **extra):
    return {
        "name": name, "status": status, "depth": depth, "drain_seconds": drain,
        "oldest_age_seconds": extra.get("oldest", 5.0),
        "since_consumed_seconds": extra.get("since", 1.0),
        "throughput": {"1m": rate(in_s, out_s), "5m": rate(in_s, out_s), "15m": rate(in_s, out_s)},
        "tasks": extra.get("tasks", {}),
    }  # fmt: skip


BEAT_OK = {"status": "ok"}


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        ({"queues": [queue()], "workers": [], "beat": BEAT_OK}, []),
        (
            {"queues": [queue(depth=40_000, drain=333.3, out_s=120.0)], "beat": BEAT_OK},
            [
                "football_data backlog 40,000 draining 120/s: about 6 minutes; "
                "add a worker with -Q football_data"
            ],
        ),
        ({"queues": [queue(depth=300, drain=30.0, out_s=10.0)], "beat": BEAT_OK}, []),
        (
            {"queues": [queue(depth=500, drain=None, in_s=12.0, out_s=4.0)], "beat": BEAT_OK},
            [
                "football_data backlog 500 is growing: 12.0/s in, 4.0/s out; "
                "add a worker with -Q football_data"
            ],
        ),
        (
            {"queues": [queue(name="maintenance", status="no_consumer", depth=3)],
             "beat": BEAT_OK},
            [
                "maintenance: no live worker consumes this queue; 3 messages wait. Start one: "
                "celery -A whatsappcrm_backend worker -Q maintenance"
            ],
        ),
        (
            {"queues": [queue(name="celery", status="stuck", depth=7, oldest=600, since=400)],
             "beat": BEAT_OK},
            [
                "celery is stuck: backlog 7, oldest waiting 10 minutes, nothing finished for "
                "7 minutes. A task may hang or the workers on -Q celery may be wedged: check "
                "the Workers page and restart them."
            ],
        ),
        (
            {"queues": [], "beat": {"status": "never_seen"}},
            [
                "beat is not running: scheduled work (sweeper, session timeouts) does not "
                "fire; start celery -A whatsappcrm_backend beat"
            ],
        ),
        (
            {"queues": [], "beat": BEAT_OK,
             "workers": [{"hostname": "celery@a", "status": "lost", "silent_seconds": 45}]},
            [
                "worker celery@a silent for 45 s (lost): restart it; tasks it held come back "
                "after the visibility timeout"
            ],
        ),
        (
            {"latency_queue": "celery", "beat": BEAT_OK, "queues": [queue(name="celery", tasks={
                "send_whatsapp_message_task": {"count": 100, "failures": 30, "wait_p95": 2500.0},
            })]},
            [
                "send_whatsapp_message_task: 30 of 100 runs failed in the last 15 minutes; "
                "see the failed work and task results pages",
                "send_whatsapp_message_task waits 2.5 s at p95 before it starts on celery: "
                "customers feel it; add concurrency or a worker with -Q celery",
            ],
        ),
    ],
)  # fmt: skip
def test_recommendations(figures, expected):
    assert recommendations(figures) == expected
