"""Drill: SIGKILL the latency worker five times while customers are chatting.

--target worker (default): the whole worker (main process and pool, as the OOM killer or a
lost machine would), restarted a second later as a supervisor would; its unacked tasks are
recovered by the sweeper (beat + maintenance worker run). --target child: one busy pool
process (acks_late + reject_on_worker_lost requeue its task at once).
Accounting: every message answered, none twice. --full: 5,000 messages; quick: 600.

    .venv/bin/python bench/drill_worker_kill.py [--full] [--kills 5] [--target worker|child]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, drills, report
from bench.load import chat


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(x) for x in out.split()]


def main() -> None:
    p = drills.parser(__doc__)
    p.add_argument("--messages", type=int, default=None)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--target", choices=("worker", "child"), default="worker")
    args = p.parse_args()
    messages = args.messages or (5000 if args.full else 600)
    posting_seconds = messages / args.rate
    events: list[str] = []

    with drills.drill_stack(args) as (stack, webhook, sandbox):
        floor = common.floor(stack)
        started = time.time()

        def killer(run) -> None:
            for kill in range(args.kills):
                time.sleep(posting_seconds / (args.kills + 1))
                process = stack.processes["chat"]
                if args.target == "child":
                    children = pool_children(process.pid)
                    if not children:
                        events.append(f"kill {kill + 1}: no pool child found")
                        continue
                    os.kill(children[0], signal.SIGKILL)
                    events.append(f"kill {kill + 1} at {time.time() - started:.0f} s: pool "
                                  f"child {children[0]}")  # fmt: skip
                    continue
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                events.append(f"kill {kill + 1} at {time.time() - started:.0f} s: worker "
                              f"{process.pid} and its pool")  # fmt: skip
                time.sleep(1.0)
                stack.start_worker("chat", "celery", concurrency=args.concurrency)

        run = chat(
            webhook=webhook,
            sandbox=sandbox,
            users=args.users,
            rate=args.rate,
            messages=messages,
            timeout=max(300.0, messages / 2),
            seed=17,
            during=killer,
        )
        rows = drills.db_counts(run.posted_at)
        header = report.header_block(stack)
    acct = run.accounting()
    print(acct, rows, "reply", common.fmt_ms(run.latency(), digits=0), *events, sep="\n")
    ok = acct["lost"] == 0 and acct["duplicated"] == 0 and rows["inbound rows"] == acct["sent"]
    body = "\n".join(
        [
            header,
            "",
            drills.scaled_note(args, "5,000 messages", f"{messages} messages")
            + f"; {args.rate:.0f} messages/s offered; {args.kills} SIGKILLs of the "
            f"{'whole latency worker' if args.target == 'worker' else 'busy pool child'}.",
            "",
            drills.accounting_table([("worker-kill drill", run)]),
            "",
            f"- database: {rows}",
            f"- reply latency {common.fmt_ms(run.latency(), digits=0)} (the stranded ones wait "
            f"for the sweeper's grace); floor p99 {floor['p99']:.1f} ms",
            *[f"- {event}" for event in events],
            f"- verdict: **{'pass' if ok else 'FAIL'}**",
        ]
    )
    common.write(args, f"drill-worker-kill-{args.target}", f"Drill: SIGKILL ({args.target})", body)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
