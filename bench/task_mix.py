"""Which tasks a reply costs, and the CPU of each process tree per reply, at one fixed rate.

A chat at --rate for --seconds against the Procfile's processes, then: the tasks the latency
worker ran per answered message, by name (its log's "succeeded" lines), the CPU of each
process tree per answered message (from /proc, as bench/profile_hot_path.py measures it, but
with no idle baseline: run both sides of an A/B the same way), and reply p50/p99. Made to
A/B a change to the hot path's task mix back to back, e.g. two checkouts sharing one venv:

    .venv/bin/python bench/task_mix.py [--rate 20] [--seconds 20] [--runs 2]
"""

from __future__ import annotations

import collections
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, report
from bench.load import chat
from bench.profile_hot_path import delta, snapshot

SUCCEEDED = re.compile(r"Task (\w+)\[[^\]]+\] succeeded")


def tasks_run(stack) -> collections.Counter:
    return collections.Counter(SUCCEEDED.findall(stack.log("chat")))


def main() -> None:
    p = common.parser(__doc__, runs=2)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    rows = []
    with common.hot_path_stack(args) as (stack, webhook, sandbox):
        chat(webhook=webhook, sandbox=sandbox, users=10, rate=10, messages=20, seed=1)  # warm-up
        for run_index in range(args.runs):
            time.sleep(3)  # the warm-up's or the last run's status drains
            tasks_before, cpu_before = tasks_run(stack), snapshot(stack)
            run = chat(webhook=webhook, sandbox=sandbox, users=100, rate=args.rate,
                       messages=int(args.rate * args.seconds), seed=3 + run_index)  # fmt: skip
            cpu = delta(cpu_before, snapshot(stack))["cpu"]
            time.sleep(3)  # the drains its last statuses queued
            answered = max(1, run.report.replied)
            tasks = tasks_run(stack) - tasks_before
            latency = run.latency()
            row = [
                f"{run.report.replied}/{run.report.sent}",
                f"{latency.get('p50', 0):.0f} / {latency.get('p99', 0):.0f} ms",
                ", ".join(f"{name} {n / answered:.2f}" for name, n in tasks.most_common()),
                ", ".join(f"{name} {s * 1000 / answered:.1f}" for name, s in cpu.items()),
            ]
            print(" | ".join(row))
            rows.append(row)
        header = report.header_block(stack)
    body = "\n".join(
        [
            header,
            "",
            f"100 customers at {args.rate:g} msg/s for {args.seconds:g} s per run, "
            f"{common.db_label(args)}.",
            "",
            report.table(
                [
                    "answered",
                    "reply p50 / p99",
                    "tasks per answered message",
                    "CPU ms per answered message (process tree)",
                ],
                rows,
            ),
        ]
    )
    common.write(args, "task-mix", "Tasks and CPU per reply", body)


if __name__ == "__main__":
    main()
