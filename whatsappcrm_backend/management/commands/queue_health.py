"""`manage.py queue_health [--json]`: the Queues page as a table, for cron and alerting.

Exits 1 when any declared queue is stuck or has no live consumer.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from whatsappcrm_backend.console import queues

FAILING = {"stuck", "no_consumer"}


def format_table(figures: dict[str, Any]) -> list[str]:
    header = (
        "queue",
        "status",
        "depth",
        "oldest",
        "in flight",
        "in/s",
        "out/s",
        "workers",
        "drain",
    )
    rows = [header]
    for q in figures["queues"]:
        rate = q["throughput"]["5m"]
        rows.append(
            (
                q["name"],
                q["status"],
                f"{q['depth']:,}",
                queues.humanize_seconds(q["oldest_age_seconds"])
                if q["oldest_age_seconds"] is not None
                else "-",
                str(q["in_flight"]),
                f"{rate['in_per_s']:.2f}",
                f"{rate['out_per_s']:.2f}",
                str(q["consumers"]),
                queues.humanize_seconds(q["drain_seconds"])
                if q["drain_seconds"] is not None
                else ("growing" if q["depth"] else "-"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


class Command(BaseCommand):
    help = (
        "Queue depth, oldest message, throughput and status; "
        "exit code 1 if a queue is stuck or has no consumer."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the figures as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        figures = queues.collect()
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2, sort_keys=True))
        else:
            for line in format_table(figures):
                self.stdout.write(line)
            for line in figures["recommendations"]:
                self.stdout.write(f"- {line}")
        failing = failing_queues(figures)
        if failing:
            raise CommandError(
                "queue(s) stuck or without a consumer: " + ", ".join(failing), returncode=1
            )


def failing_queues(figures: dict[str, Any]) -> list[str]:
    return [f"{q['name']} ({q['status']})" for q in figures["queues"] if q["status"] in FAILING]
