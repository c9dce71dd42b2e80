"""What a pool child's replacement costs the task handed to it (celery/celery#9588).

A prefork child that reaches `--max-tasks-per-child` exits after its task, and the next task
the parent hands out can wait until a timer starts the replacement: seconds, not
milliseconds. This starts one latency worker as the Procfile does (concurrency 2), once with
a child replaced every 10 tasks and once with the Procfile's own setting, sends no-op tasks
one at a time with 20 ms gaps, and counts the tasks that waited over a second.

    .venv/bin/python bench/recycle_stall.py [--samples 200]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, report
from bench.stack import measure_task_waits, percentiles, procfile_entries, running_stack

STALL_MS = 1000.0


def main() -> None:
    p = common.parser(__doc__, runs=1)
    p.add_argument("--samples", type=int, default=200)
    args = p.parse_args()
    procfile = procfile_entries()["worker_celery"].split()
    own = procfile[procfile.index("--max-tasks-per-child") + 1]
    rows = []
    with running_stack(postgres=args.postgres) as stack:
        stack.start(web=False, sandbox=False)
        for label, every in (
            ("a child replaced every 10 tasks", 10),
            (f"the Procfile's ({own})", None),
        ):
            stack.start_worker("recycle", concurrency=2, max_tasks_per_child=every)
            waits = measure_task_waits(stack.redis_url, samples=args.samples, gap=0.02)
            stack.stop_process("recycle")
            stalls = [w for w in waits if w > STALL_MS]
            figures = percentiles(waits)
            print(f"{label}: {len(stalls)} of {len(waits)} tasks waited over 1 s; "
                  + common.fmt_ms(figures))  # fmt: skip
            rows.append([label, f"{len(stalls)} of {len(waits)}",
                         *(f"{figures[k]:.1f} ms" for k in ("p50", "p99", "max"))])  # fmt: skip
        header = report.header_block(stack)
    body = "\n".join(
        [
            header,
            "",
            f"One latency worker (concurrency 2), {args.samples} no-op tasks one at a time with "
            "20 ms gaps; enqueue -> start.",
            "",
            report.table(["max tasks per child", "waited > 1 s", "p50", "p99", "max"], rows),
        ]
    )
    common.write(args, "recycle-stall", "Pool child replacement stall", body)


if __name__ == "__main__":
    main()
