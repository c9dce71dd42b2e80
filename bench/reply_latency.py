"""P2: reply latency (webhook POST -> the sandbox received the reply) at 20 and 50 msg/s.

100 simulated customers, open loop, for --seconds at each offered rate, against the
Procfile's gunicorn and latency worker; the sandbox answers as Meta does and calls back with
sent/delivered/read statuses (three more webhooks per reply). Goal (issue 14): p99 <= 10x the
no-op task floor's p99 at 20 msg/s, <= 20x at 50 msg/s.

    .venv/bin/python bench/reply_latency.py [--postgres] [--runs 3] [--seconds 30] [--rates 20,50]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, report
from bench.load import chat

GOAL_X = {20.0: 10, 50.0: 20}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--rates", default="20,50")
    args = p.parse_args()
    label = common.db_label(args)
    rates = [float(r) for r in args.rates.split(",")]
    rows, notes, floors = [], [], []
    with common.hot_path_stack(args) as (stack, webhook, sandbox):
        chat(webhook=webhook, sandbox=sandbox, users=10, rate=10, messages=20, seed=1)  # warm-up
        for rate in rates:
            runs = []
            for run in range(args.runs):
                floor = common.floor(stack)
                floors.append(floor)
                result = chat(
                    webhook=webhook,
                    sandbox=sandbox,
                    users=args.users,
                    rate=rate,
                    messages=int(rate * args.seconds),
                    seed=int(rate * 100 + run),
                )
                latency = result.latency()
                runs.append((floor, result, latency))
                print(
                    f"{rate:.0f} msg/s run {run + 1}: {result.accounting()}; reply "
                    + common.fmt_ms(latency, digits=0)
                    + "; ack "
                    + common.fmt_ms(result.ack_ms, digits=0)
                )
                time.sleep(3)
            p99s = [lat.get("p99") for _, _, lat in runs]
            floor_p99 = [f["p99"] for f, _, _ in runs]
            xs = [p / f for p, f in zip(p99s, floor_p99, strict=True) if p is not None and f]
            goal = GOAL_X.get(rate)
            med_x = sorted(xs)[len(xs) // 2] if xs else None
            rows.append(
                [
                    f"{rate:.0f} msg/s",
                    report.spread([lat.get("p50") for _, _, lat in runs]),
                    report.spread(p99s),
                    report.spread([lat.get("max") for _, _, lat in runs]),
                    report.spread([r.ack_ms.get("p99") for _, r, _ in runs]),
                    report.spread(floor_p99, digits=1),
                    report.spread(xs, unit="x"),
                    "-" if goal is None or med_x is None else
                    f"<= {goal}x: **{'met' if med_x <= goal else 'missed'}**",
                ]
            )  # fmt: skip
            totals = {
                k: sum(r.accounting()[k] for _, r, _ in runs) for k in runs[0][1].accounting()
            }
            per = [r.report.extra_messages / max(1, r.report.sent) for _, r, _ in runs]
            notes.append(
                f"- {rate:.0f} msg/s: " + ", ".join(f"{k} {v}" for k, v in totals.items())
                + f"; {sum(per) / len(per):.2f} outbound messages per inbound"
            )  # fmt: skip
        header = report.header_block(stack)
    body = "\n".join(
        [
            header,
            "",
            f"{args.users} customers, {args.seconds:.0f} s per run, {args.runs} runs per rate, "
            f"{label}; min / median / max over the runs.",
            "",
            report.table(
                [
                    "offered",
                    "reply p50",
                    "reply p99",
                    "reply max",
                    "ack p99",
                    "floor p99 (same run)",
                    "p99 / floor p99",
                    "goal",
                ],
                rows,
            ),
            "",
            "Accounting over all runs:",
            *notes,
        ]
    )
    common.write(args, f"p2-reply-latency-{label.lower()}", f"P2 reply latency ({label})", body)


if __name__ == "__main__":
    main()
