"""Drill: webhook POSTs with 30% redelivered (Meta's at-least-once delivery).

Every message must be answered exactly once: no reply missing, none sent twice, one inbound
row per wamid. --full: 10,000 POSTs; quick (default): 1,000.

    .venv/bin/python bench/drill_redelivery.py [--full] [--rate 20] [--postgres]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, drills, report
from bench.load import chat


def main() -> None:
    p = drills.parser(__doc__)
    p.add_argument("--posts", type=int, default=None)
    p.add_argument("--duplicates", type=float, default=0.3)
    args = p.parse_args()
    posts = args.posts or (10000 if args.full else 1000)
    messages = round(posts / (1 + args.duplicates))
    with drills.drill_stack(args) as (stack, webhook, sandbox):
        floor = common.floor(stack)
        run = chat(
            webhook=webhook,
            sandbox=sandbox,
            users=args.users,
            rate=args.rate,
            messages=messages,
            duplicates=args.duplicates,
            timeout=max(180.0, messages / 2),
            seed=7,
        )
        rows = drills.db_counts(run.posted_at)
        header = report.header_block(stack)
    acct = run.accounting()
    print(
        acct,
        rows,
        "non-200 by status",
        run.non_200_codes,
        dict(webhook.client_errors),
        "reply",
        common.fmt_ms(run.latency(), digits=0),
    )
    ok = (
        acct["lost"] == 0
        and acct["duplicated"] == 0
        and acct["non_200"] == 0
        and rows["inbound rows"] == acct["sent"]
    )
    body = "\n".join(
        [
            header,
            "",
            drills.scaled_note(args, "10,000 POSTs", f"{messages + run.redelivered} POSTs")
            + f"; {args.rate:.0f} messages/s offered, {args.duplicates:.0%} redelivered 0-0.5 s "
            "later with the same bytes.",
            "",
            drills.accounting_table([("redelivery drill", run)]),
            "",
            f"- database: {rows} for {acct['sent']} distinct wamids",
            f"- non-200 answers by status (0: the client's own timeout or reset): "
            f"{run.non_200_codes or 'none'}; client errors {dict(webhook.client_errors) or 'none'}",
            f"- reply latency {common.fmt_ms(run.latency(), digits=0)}; floor p99 "
            f"{floor['p99']:.1f} ms",
            f"- verdict: **{'pass' if ok else 'FAIL'}** (every message answered once, one row "
            "per wamid, every POST 200)",
        ]
    )
    common.write(args, "drill-redelivery", "Drill: redelivered webhooks", body)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
