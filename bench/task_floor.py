"""The floor: enqueue->start of a no-op task on one real worker, back to back and with gaps.

One latency worker as the Procfile starts it, but with concurrency 1 (the floor of a single
slot). Every other benchmark measures this same floor (20 ms gaps) in its own run.

    .venv/bin/python bench/task_floor.py [--samples 300] [--runs 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, report
from bench.stack import measure_task_floor, running_stack


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--samples", type=int, default=300)
    args = p.parse_args()
    results: dict[str, list[dict[str, float]]] = {"back to back": [], "20 ms idle gaps": []}
    with running_stack(postgres=args.postgres) as stack:
        stack.start(web=False, sandbox=False)
        stack.start_worker("floor", concurrency=1)
        for run in range(args.runs):
            for label, gap in (("back to back", 0.0), ("20 ms idle gaps", 0.02)):
                figures = measure_task_floor(stack.redis_url, samples=args.samples, gap=gap)
                results[label].append(figures)
                print(f"run {run + 1}, {label}: " + common.fmt_ms(figures, ("p50", "p99", "max")))
        header = report.header_block(stack)
    rows = [
        [label, *(report.spread([r[k] for r in runs], digits=2) for k in ("p50", "p99", "max"))]
        for label, runs in results.items()
    ]
    body = "\n".join(
        [
            header,
            "",
            f"{args.samples} no-op tasks per run, {args.runs} runs; min / median / max over runs.",
            "",
            report.table(["", "p50", "p99", "max"], rows),
        ]
    )
    common.write(args, "task-floor", "Task floor: enqueue -> start of a no-op task", body)


if __name__ == "__main__":
    main()
