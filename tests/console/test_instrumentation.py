"""instrumented(): duration, DB query count, Redis round trips, the SLOW line, the metrics."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django_redis import get_redis_connection

from whatsappcrm_backend.console import metrics
from whatsappcrm_backend.instrumentation import instrumented

pytestmark = pytest.mark.django_db


def test_slow_line_carries_query_and_redis_counts(redis_conn, caplog):
    conn = get_redis_connection("default")

    @instrumented("test.work", warn_ms=0, error_ms=60_000)
    def work() -> int:
        users = get_user_model().objects
        users.filter(username="a").exists()
        users.filter(username="b").exists()
        users.count()
        conn.get("x")
        pipe = conn.pipeline()
        pipe.get("y")
        pipe.get("z")
        pipe.execute()  # one round trip
        return 7

    with caplog.at_level(logging.WARNING, logger="whatsappcrm_backend.slow"):
        assert work() == 7
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("SLOW test.work ")
    assert record.getMessage().endswith(" ms queries=3 redis=2")

    metrics.buffer.flush()  # operations are buffered in memory, written once a second
    stats = metrics.operation_stats(900)["test.work"]
    assert stats["count"] == 1 and stats["slow"] == 1
    assert stats["queries_p95"] == pytest.approx(3, rel=0.25)


def test_error_level_over_the_higher_threshold_and_silence_under(redis_conn, caplog):
    import time

    with caplog.at_level(logging.INFO, logger="whatsappcrm_backend.slow"):
        with instrumented("test.fast", warn_ms=10_000):
            pass
        with instrumented("test.slow", warn_ms=1, error_ms=5) as op:
            op.detail = "contact=42"
            time.sleep(0.02)
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "SLOW test.slow" in record.getMessage()
    assert record.getMessage().endswith("queries=0 redis=0 contact=42")
    metrics.buffer.flush()
    stats = metrics.operation_stats(900)
    assert stats["test.fast"]["slow"] == 0 and stats["test.slow"]["slow"] == 1
    assert stats["test.slow"]["duration_p50"] >= 15


def test_exceptions_pass_through_and_are_still_measured(redis_conn, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="whatsappcrm_backend.slow"),
        pytest.raises(ValueError),
        instrumented("test.boom", warn_ms=0),
    ):
        raise ValueError("bad input")
    assert caplog.records[0].getMessage().endswith("error=ValueError")
    metrics.buffer.flush()
    assert metrics.operation_stats(900)["test.boom"]["count"] == 1
