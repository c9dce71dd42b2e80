"""P4: the highest sustained offered rate whose reply p99 stays under 1 s, nothing lost.

Steps the offered rate up (open loop, --users customers, --step-seconds per step) and stops
at the first step that fails (reply p99 >= 1 s, or a message unanswered within the step's
timeout). Reports the highest passing rate per run; min / median / max over runs. The
sandbox keeps Meta's 80 messages/s per-number limit. Goal (issue 14): >= 80 msg/s on 2 cores.

The capacity model (docs/scaling.md) is checked in the same run: the CPU of every process tree
on the machine (ours, the sandbox, this load generator) per answered message at the
--cost-rate step, below saturation, predicts the ceiling `cores x 1000 / CPU ms`, printed
beside the highest rate the run served. Costs measured in another minute do not compare:
this VM's speed moves by half within minutes.

    .venv/bin/python bench/throughput.py [--postgres] [--runs 3] [--steps 10,20,40,60,80,100,120]
    .venv/bin/python bench/throughput.py --full     # 30 s per step
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, report
from bench.load import chat
from bench.profile_hot_path import delta, snapshot

P99_LIMIT_MS = 1000.0


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--steps", default="10,20,40,60,80,100,120")
    p.add_argument("--step-seconds", type=float, default=None, help="15 (quick) or 30 (full)")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--processes", type=int, default=1, help="latency worker processes")
    p.add_argument(
        "--cost-rate",
        type=float,
        default=20.0,
        help="the step whose CPU per message predicts the ceiling",
    )
    args = p.parse_args()
    seconds = args.step_seconds or (30.0 if args.full else 15.0)
    steps = [float(s) for s in args.steps.split(",")]
    label = common.db_label(args)
    best: list[float] = []
    served: list[float] = []
    lines: list[str] = []
    floors = []
    predicted: list[float] = []
    with common.hot_path_stack(args) as (stack, webhook, sandbox):
        for extra in range(1, args.processes):
            stack.start_worker(f"chat{extra}", "celery", concurrency=args.concurrency)
        chat(webhook=webhook, sandbox=sandbox, users=10, rate=10, messages=20, seed=1)  # warm-up
        for run in range(args.runs):
            floors.append(common.floor(stack))
            passing = 0.0
            served_max = 0.0
            for rate in steps:
                before = snapshot(stack) if rate == args.cost_rate else None
                result = chat(
                    webhook=webhook,
                    sandbox=sandbox,
                    users=args.users,
                    rate=rate,
                    messages=int(rate * seconds),
                    seed=run * 1000 + int(rate),
                    timeout=max(60.0, seconds * 2),
                )
                latency = result.latency()
                if before is not None and result.report.replied:
                    cpu_ms = sum(delta(before, snapshot(stack))["cpu"].values()) * 1000.0
                    cpu_ms /= result.report.replied
                    predicted.append(os.cpu_count() * 1000.0 / cpu_ms)
                    print(f"{cpu_ms:.1f} ms of CPU per message -> model {predicted[-1]:.1f} msg/s")
                served_max = max(served_max, result.completion_rate())
                acct = result.accounting()
                ok = acct["lost"] == 0 and latency.get("p99", 1e9) < P99_LIMIT_MS
                line = (
                    f"run {run + 1}, {rate:.0f} msg/s offered: {acct}; reply "
                    + common.fmt_ms(latency, digits=0)
                    + f"; served {result.completion_rate():.1f} msg/s"
                    + f" -> {'pass' if ok else 'FAIL'}"
                )
                print(line)
                lines.append(f"- {line}")
                if not ok:
                    break
                passing = rate
                time.sleep(3)
            best.append(passing)
            served.append(served_max)
            # Let the failed step's backlog drain before the next run.
            time.sleep(10)
        header = report.header_block(stack)
    median = sorted(best)[len(best) // 2]
    body = "\n".join(
        [
            header,
            "",
            f"{args.users} customers, {seconds:.0f} s per step, steps {args.steps} msg/s, "
            f"{args.processes} latency worker process(es) (Procfile concurrency"
            f"{'' if args.concurrency is None else f' overridden to {args.concurrency}'}), "
            f"{label}, {args.runs} runs.",
            "",
            report.table(
                ["", "min / median / max"],
                [
                    ["highest rate with reply p99 < 1 s", report.spread(best, unit="msg/s")],
                    [
                        "highest served rate in any step (capacity; compare with the model)",
                        report.spread(served, unit="msg/s", digits=1),
                    ],
                    [
                        f"capacity the model predicts from the {args.cost_rate:g} msg/s step's "
                        f"CPU per message ({os.cpu_count()} cores)",
                        report.spread(predicted, unit="msg/s", digits=1),
                    ],
                    [
                        "no-op task floor p99 (same run)",
                        report.spread([f["p99"] for f in floors], digits=1),
                    ],
                ],
            ),
            "",
            f"Goal >= 80 msg/s: **{'met' if median >= 80 else 'missed'}**.",
            "",
            "Steps:",
            *lines,
        ]
    )
    key = f"p4-throughput-{label.lower()}" + (
        "" if args.processes == 1 else f"-{args.processes}proc"
    )
    title = f"P4 sustained throughput ({label}, {args.processes} worker process(es))"
    common.write(args, key, title, body)


if __name__ == "__main__":
    main()
