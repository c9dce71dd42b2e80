"""Isolation (issue 11): chat reply latency at 20 msg/s with and without a bulk backlog.

The stack runs as the Procfile does: web, the latency worker (`-Q celery`), the football
worker (`-Q football_data`) and the bulk-send worker (`-Q bulk`), both niced, and the sandbox.
First --runs chats without a backlog, then `manage.py enqueue_backlog --bulk-sends 20000
--football 50000` (settlement-notification sends at BULK priority, routed to the bulk queue,
football tasks on theirs) and --runs chats again while that backlog drains. Goal: reply p99
grows by at most 20%.

    .venv/bin/python bench/isolation.py [--postgres] [--runs 3] [--seconds 30]
    .venv/bin/python bench/isolation.py --bulk-sends 2000 --football 5000   # smaller backlog
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, report
from bench.load import chat


def depths() -> str:
    from whatsappcrm_backend.management.commands.enqueue_backlog import queue_depths

    return "; ".join(
        f"{queue} " + (", ".join(f"p{p}={n}" for p, n in sorted(d.items())) or "empty")
        for queue, d in queue_depths().items()
    )


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--bulk-sends", type=int, default=20000)
    p.add_argument("--football", type=int, default=50000)
    args = p.parse_args()
    label = common.db_label(args)
    phases: dict[str, list] = {"no backlog": [], "with backlog": []}
    notes: list[str] = []
    with common.hot_path_stack(args) as (stack, webhook, sandbox):
        stack.start_worker("football", "football_data", procfile_name="worker_football")
        chat(webhook=webhook, sandbox=sandbox, users=10, rate=10, messages=20, seed=1)  # warm-up
        for phase in phases:
            if phase == "with backlog":
                started = time.monotonic()
                out = stack.manage(
                    "enqueue_backlog",
                    "--bulk-sends", str(args.bulk_sends),
                    "--football", str(args.football),
                )  # fmt: skip
                print(out.strip())
                notes.append(
                    f"- enqueue_backlog took {time.monotonic() - started:.0f} s; queues after: "
                    + depths()
                )
            for run in range(args.runs):
                # With the backlog queued, the floor is a REPLY task's wait behind it.
                floor = common.floor(stack, drain_first=phase == "no backlog")
                before = depths()
                result = chat(
                    webhook=webhook,
                    sandbox=sandbox,
                    users=args.users,
                    rate=args.rate,
                    messages=int(args.rate * args.seconds),
                    seed=run + (100 if phase == "with backlog" else 0),
                )
                latency = result.latency()
                phases[phase].append((floor, result, latency))
                line = (
                    f"{phase}, run {run + 1}: {result.accounting()}; reply "
                    + common.fmt_ms(latency, digits=0)
                    + f"; queues before: {before}; after: {depths()}"
                )
                print(line)
                notes.append(f"- {line}")
                time.sleep(3)
        header = report.header_block(stack)
    rows = []
    for phase, runs in phases.items():
        rows.append(
            [
                phase,
                report.spread([lat.get("p50") for _, _, lat in runs]),
                report.spread([lat.get("p99") for _, _, lat in runs]),
                report.spread([lat.get("max") for _, _, lat in runs]),
                report.spread([f["p99"] for f, _, _ in runs], digits=1),
                sum(r.accounting()["lost"] for _, r, _ in runs),
                sum(r.accounting()["duplicated"] for _, r, _ in runs),
            ]
        )

    def median_p99(phase: str) -> float:
        values = sorted(lat.get("p99", 0.0) for _, _, lat in phases[phase])
        return values[len(values) // 2]

    base, loaded = median_p99("no backlog"), median_p99("with backlog")
    growth = (loaded / base - 1) * 100 if base else float("nan")
    verdict = "met" if growth <= 20 else "missed"
    if base > 1000:
        # Over capacity without the backlog: the baseline is a queue, not a latency.
        verdict = (
            f"not judged (the baseline p99 is {base / 1000:.1f} s: the stack was over capacity)"
        )
    body = "\n".join(
        [
            header,
            "",
            f"{args.users} customers at {args.rate:.0f} msg/s for {args.seconds:.0f} s per run, "
            f"{args.runs} runs per phase, {label}. Backlog: {args.bulk_sends} bulk sends + "
            f"{args.football} football tasks. min / median / max over the runs.",
            "",
            report.table(
                [
                    "",
                    "reply p50",
                    "reply p99",
                    "reply max",
                    "floor p99 (same run)",
                    "lost",
                    "duplicated",
                ],
                rows,
            ),
            "",
            f"Median p99 grew by {growth:+.0f}% (goal <= +20%): **{verdict}**.",
            "",
            *notes,
        ]
    )
    common.write(
        args, f"isolation-{label.lower()}", f"Isolation under a bulk backlog ({label})", body
    )


if __name__ == "__main__":
    main()
