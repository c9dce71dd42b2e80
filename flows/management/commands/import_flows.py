"""Import flow definitions from JSON: all-or-nothing, idempotent by flow name."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from flows.services import FlowImportError, flows_import


class Command(BaseCommand):
    help = (
        "Import flows from a JSON file (the export_flows format). Every error is reported with "
        "its JSON path and nothing is written unless the whole file is valid."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="The JSON file to import.")

    def handle(self, *args: Any, **options: Any) -> None:
        summary = self.import_file(options["file"])
        self.stdout.write(
            self.style.SUCCESS(
                f"created: {', '.join(summary['created']) or '-'}; "
                f"updated: {', '.join(summary['updated']) or '-'}"
            )
        )

    def import_file(self, path: str) -> dict[str, list[str]]:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path} is not valid JSON: {exc}") from exc
        try:
            return flows_import(data=data)
        except FlowImportError as exc:
            lines = "\n".join(f"  {error}" for error in exc.errors)
            raise CommandError(
                f"{path}: {len(exc.errors)} error(s); nothing was imported:\n{lines}"
            ) from exc
