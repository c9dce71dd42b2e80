"""Export every flow definition as JSON (the format import_flows reads; see docs/flows.md)."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from flows.selectors import flows_export


class Command(BaseCommand):
    help = "Export all flows (steps, transitions, triggers) as JSON to stdout or --output FILE."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--output", "-o", help="Write to this file instead of stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        document = self.export(options.get("output"))
        if not options.get("output"):
            self.stdout.write(document)
        else:
            self.stderr.write(
                f"{len(json.loads(document)['flows'])} flow(s) written to {options['output']}"
            )

    def export(self, output: str | None) -> str:
        document = json.dumps(flows_export(), indent=2, ensure_ascii=False) + "\n"
        if output:
            Path(output).write_text(document, encoding="utf-8")
        return document
