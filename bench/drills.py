"""Shared by the drill scripts: the full stack (with beat and the maintenance worker, so the
sweeper recovers what a fault strands), the accounting table, and database cross-checks."""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

from bench import common, report
from bench.load import ChatRun


def parser(doc: str) -> argparse.ArgumentParser:
    p = common.parser(doc, runs=1)
    p.add_argument("--rate", type=float, default=20.0, help="messages per second offered")
    p.add_argument("--users", type=int, default=200)
    return p


@contextmanager
def drill_stack(args: argparse.Namespace):
    with common.hot_path_stack(args, beat=True, maintenance=True) as (stack, webhook, sandbox):
        yield stack, webhook, sandbox


def db_counts(posted: dict[str, float]) -> dict[str, int]:
    """Rows behind the accounting: inbound rows for our wamids (one each, never two), and
    replies created for them."""
    from meta_integration.models import InboundMessage, OutboundMessage

    wamids = list(posted)
    inbound = 0
    replies = 0
    for start in range(0, len(wamids), 500):
        chunk = wamids[start : start + 500]
        inbound += InboundMessage.objects.filter(wamid__in=chunk).count()
        replies += OutboundMessage.objects.filter(
            idempotency_key__in=[f"{w}:0" for w in chunk]
        ).count()
    return {"inbound rows": inbound, "reply rows (:0)": replies}


def accounting_table(runs: list[tuple[str, ChatRun]]) -> str:
    rows = []
    for name, run in runs:
        acct = run.accounting()
        rows.append(
            [name, acct["sent"], acct["redelivered"], acct["replied"], acct["duplicated"],
             acct["lost"], acct["non_200"]]
        )  # fmt: skip
    return report.table(
        ["", "sent", "redelivered", "replied", "duplicated", "lost", "non-200 acks"], rows
    )


def scaled_note(args, full_size: str, used: str) -> str:
    if args.full:
        return f"full size ({full_size})"
    return f"QUICK mode: scaled down to {used} (the issue's size: {full_size}; run with --full)"


def elapsed(since: float) -> str:
    return f"{time.time() - since:.0f} s"
