"""Prometheus exposition of the console's figures (the same `queues.collect()` the pages use).

Percentiles and counts over the last 15 minutes are exported as gauges with a `window` or
`quantile` label: they are already aggregated in Redis across every worker, which a per-process
prometheus counter could not do without a multiprocess directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STATUSES = ("ok", "busy", "stuck", "no_consumer")
QUANTILES = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}


class ConsoleCollector(Collector):
    def __init__(self, figures: dict[str, Any]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = self.figures
        depth = GaugeMetricFamily("ops_queue_depth", "Messages waiting", labels=["queue"])
        by_pri = GaugeMetricFamily(
            "ops_queue_depth_by_priority", "Messages waiting", labels=["queue", "priority"]
        )
        age = GaugeMetricFamily(
            "ops_queue_oldest_age_seconds", "Age of the oldest waiting message", labels=["queue"]
        )
        flight = GaugeMetricFamily(
            "ops_queue_in_flight", "Messages taken and not yet acked", labels=["queue"]
        )
        rate = GaugeMetricFamily(
            "ops_queue_throughput_per_second",
            "Messages published (in) and finished (out) per second",
            labels=["queue", "direction", "window"],
        )
        consumers = GaugeMetricFamily(
            "ops_queue_consumers", "Live workers consuming the queue", labels=["queue"]
        )
        drain = GaugeMetricFamily(
            "ops_queue_drain_seconds",
            "Estimated time to drain (absent if growing)",
            labels=["queue"],
        )
        status = GaugeMetricFamily(
            "ops_queue_status", "1 for the queue's current status", labels=["queue", "status"]
        )
        for q in f["queues"]:
            name = q["name"]
            depth.add_metric([name], q["depth"])
            for pri, count in q["depth_by_priority"].items():
                by_pri.add_metric([name, str(pri)], count)
            age.add_metric([name], q["oldest_age_seconds"] or 0.0)
            flight.add_metric([name], q["in_flight"])
            for window, values in q["throughput"].items():
                rate.add_metric([name, "in", window], values["in_per_s"])
                rate.add_metric([name, "out", window], values["out_per_s"])
            consumers.add_metric([name], q["consumers"])
            if q["drain_seconds"] is not None:
                drain.add_metric([name], q["drain_seconds"])
            for s in STATUSES:
                status.add_metric([name, s], 1.0 if q["status"] == s else 0.0)
        yield from (depth, by_pri, age, flight, rate, consumers, drain, status)

        runs = GaugeMetricFamily(
            "ops_task_runs_15m",
            "Task runs finished in the last 15 minutes",
            labels=["queue", "task"],
        )
        failures = GaugeMetricFamily(
            "ops_task_failures_15m",
            "Task failures in the last 15 minutes",
            labels=["queue", "task"],
        )
        retries = GaugeMetricFamily(
            "ops_task_retries_15m", "Task retries in the last 15 minutes", labels=["queue", "task"]
        )
        wait = GaugeMetricFamily(
            "ops_task_wait_seconds",
            "Publish to start, last 15 minutes",
            labels=["queue", "task", "quantile"],
        )
        run = GaugeMetricFamily(
            "ops_task_run_seconds",
            "Run time, last 15 minutes",
            labels=["queue", "task", "quantile"],
        )
        for q in f["queues"]:
            for task, s in q["tasks"].items():
                labels = [q["name"], task]
                runs.add_metric(labels, s["count_in_queue"])
                failures.add_metric(labels, s["failures"])
                retries.add_metric(labels, s["retries"])
                for quantile, qv in QUANTILES.items():
                    if s.get(f"wait_{quantile}") is not None:
                        wait.add_metric([*labels, qv], s[f"wait_{quantile}"] / 1000.0)
                    if s.get(f"run_{quantile}") is not None:
                        run.add_metric([*labels, qv], s[f"run_{quantile}"] / 1000.0)
        yield from (runs, failures, retries, wait, run)

        up = GaugeMetricFamily(
            "ops_worker_up", "1 if the worker's heartbeat is fresh", labels=["worker"]
        )
        done = GaugeMetricFamily(
            "ops_worker_tasks_done", "Tasks done since start", labels=["worker"]
        )
        busy = GaugeMetricFamily("ops_worker_current_tasks", "Tasks running now", labels=["worker"])
        for w in f["workers"]:
            up.add_metric([w["hostname"]], 1.0 if w["status"] == "ok" else 0.0)
            done.add_metric([w["hostname"]], w["tasks_done"])
            busy.add_metric([w["hostname"]], len(w["current"]))
        beat = GaugeMetricFamily("ops_beat_up", "1 if beat's heartbeat is fresh")
        beat.add_metric([], 1.0 if f["beat"].get("status") == "ok" else 0.0)
        yield from (up, done, busy, beat)

        op_count = GaugeMetricFamily(
            "ops_operation_runs_15m",
            "Instrumented operation runs, last 15 minutes",
            labels=["name"],
        )
        op_slow = GaugeMetricFamily(
            "ops_operation_slow_15m",
            "Runs over the SLOW threshold, last 15 minutes",
            labels=["name"],
        )
        op_time = GaugeMetricFamily(
            "ops_operation_duration_seconds",
            "Duration, last 15 minutes",
            labels=["name", "quantile"],
        )
        for name, s in f["operations"].items():
            op_count.add_metric([name], s["count"])
            op_slow.add_metric([name], s["slow"])
            for quantile, qv in QUANTILES.items():
                if s.get(f"duration_{quantile}") is not None:
                    op_time.add_metric([name, qv], s[f"duration_{quantile}"] / 1000.0)
        yield from (op_count, op_slow, op_time)


def exposition(figures: dict[str, Any]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsoleCollector(figures))
    return generate_latest(registry)
