"""Drill: Redis stopped for 10 s in the middle of a chat (the stack's own redis-server).

The webhook must keep answering 200 (rows are written before anything is enqueued) and every
message must be answered within 60 s after Redis returns (the sweeper re-enqueues what could
not be published). By default Redis is shut down with SAVE and restarted on the same port
(a stop/restart); --lose-data kills it instead (a crash without persistence: queued tasks
vanish, only the database remains). Quick (default): 400 messages; --full: 1,200.

    .venv/bin/python bench/drill_redis_outage.py [--full] [--outage 10] [--lose-data]
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from bench import common, drills, report
from bench.load import chat


def main() -> None:
    p = drills.parser(__doc__)
    p.add_argument("--messages", type=int, default=None)
    p.add_argument("--outage", type=float, default=10.0)
    p.add_argument("--lose-data", action="store_true")
    args = p.parse_args()
    messages = args.messages or (1200 if args.full else 400)
    posting = messages / args.rate
    window: dict[str, float] = {}

    with drills.drill_stack(args) as (stack, webhook, sandbox):
        floor = common.floor(stack)

        def outage(run) -> None:
            time.sleep(posting / 3)
            window["down"] = time.time()
            if args.lose_data:
                stack.stop_redis()
            else:
                # The server closes the connection as it exits.
                with contextlib.suppress(redis.ConnectionError):
                    stack.redis().shutdown(save=True)
                stack.redis_process.wait(timeout=30)
            time.sleep(args.outage)
            stack.start_redis()
            window["up"] = time.time()

        run = chat(
            webhook=webhook,
            sandbox=sandbox,
            users=args.users,
            rate=args.rate,
            messages=messages,
            timeout=240.0,
            seed=23,
            during=outage,
        )
        rows = drills.db_counts(run.posted_at)
        header = report.header_block(stack)
        sent = sandbox.sent(run.started - 1)
    # Replies to messages posted during the outage, and how long after Redis returned.
    first: dict[str, float] = {}
    for message in sent:
        inbound, _, index = (message.get("biz_opaque_callback_data") or "").rpartition(":")
        if index == "0" and inbound in run.posted_at:
            first[inbound] = min(first.get(inbound, 1e18), message["received_at"])
    during = [w for w, t in run.posted_at.items() if window["down"] <= t <= window["up"]]
    # Messages posted before Redis returned: answered within 60 s of its return?
    late = [
        first[w] - window["up"]
        for w, t in run.posted_at.items()
        if w in first and t <= window["up"]
    ]
    worst_after = max(late) if late else float("nan")
    answered_during = sum(1 for w in during if w in first)
    acct = run.accounting()
    ok = (
        acct["non_200"] == 0
        and acct["lost"] == 0
        and acct["duplicated"] == 0
        and worst_after <= 60.0
    )
    print(acct, rows, f"posted during the outage {len(during)}, answered {answered_during}")
    print(f"last reply {worst_after:.1f} s after Redis returned")
    body = "\n".join(
        [
            header,
            "",
            drills.scaled_note(args, "no size set; 1,200 messages", f"{messages} messages")
            + f"; {args.rate:.0f} messages/s; Redis "
            + ("killed (data lost)" if args.lose_data else "shut down with SAVE")
            + f" for {window['up'] - window['down']:.1f} s, a third of the way in.",
            "",
            drills.accounting_table([("Redis outage drill", run)]),
            "",
            f"- webhook answers during the outage: {acct['non_200']} non-200 of "
            f"{len(run.acks)} POSTs in the whole run",
            f"- messages posted while Redis was down: {len(during)}, all answered: "
            f"{answered_during == len(during)}",
            f"- the last reply went out {worst_after:.1f} s after Redis returned (goal <= 60 s)",
            f"- database: {rows}; floor p99 before {floor['p99']:.1f} ms",
            f"- verdict: **{'pass' if ok else 'FAIL'}**",
        ]
    )
    key = "drill-redis-outage" + ("-lose-data" if args.lose_data else "")
    common.write(
        args, key, "Drill: Redis outage" + (" (data lost)" if args.lose_data else ""), body
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
