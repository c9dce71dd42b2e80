"""Reply latency of the whole hot path, measured beside the task floor in the same run.

Starts web (gunicorn), one `-Q celery` worker, the Meta sandbox and (for --backlog) a BULK
backlog on the same queue, then runs `manage.py simulate_chat` against them: signed webhook
POSTs -> flow task -> reply in the sandbox. Reply latency is sandbox receipt minus webhook POST.

    .venv/bin/python bench/chat_latency.py --users 20 --messages 200 --duplicates 0.3
    .venv/bin/python bench/chat_latency.py --users 20 --messages 200 --backlog 2000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import PYTHON, measure_task_floor, running_stack


def queue_bulk_backlog(redis_url: str, count: int, seconds_each: float) -> None:
    """`count` BULK-priority tasks on the latency queue, each busy for `seconds_each`."""
    from whatsappcrm_backend.celery import Priority, app
    from whatsappcrm_backend.tasks import record_start_task

    with app.producer_or_acquire() as producer:
        for index in range(count):
            record_start_task.apply_async(
                args=["bench:backlog", f"bulk-{index}", seconds_each],
                priority=Priority.BULK,
                producer=producer,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duplicates", type=float, default=0.3)
    parser.add_argument("--backlog", type=int, default=0, help="BULK tasks queued first")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    with running_stack() as stack:
        stack.start()
        stack.start_worker("chat", concurrency=args.concurrency)
        floor = measure_task_floor(stack.redis_url, samples=200, gap=0.02)
        print(
            "no-op task floor (20 ms gaps): "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in floor.items())
        )
        if args.backlog:
            queue_bulk_backlog(stack.redis_url, args.backlog, 0.02)
            print(f"queued a backlog of {args.backlog} BULK tasks (20 ms each) on queue celery")
        result = subprocess.run(
            [
                PYTHON,
                "manage.py",
                "simulate_chat",
                "--users",
                str(args.users),
                "--messages",
                str(args.messages),
                "--rate",
                str(args.rate),
                "--duplicates",
                str(args.duplicates),
                "--webhook-url",
                f"{stack.web_url}/webhooks/whatsapp/",
                "--sandbox-url",
                stack.sandbox_url,
            ],
            cwd=stack.env.get("PWD", None) or Path(__file__).resolve().parent.parent,
            env=stack.env,
            capture_output=True,
            text=True,
            check=False,
        )
        print(result.stdout.strip())
        if result.returncode:
            print(result.stderr.strip()[-3000:])
            print(f"logs in {stack.workdir}")
        if args.backlog:
            broker = stack.redis(broker=True)
            left = sum(broker.llen("celery" if p == 0 else f"celery:{p}") for p in range(10))
            print(f"backlog tasks still queued when the chat finished: {left}")
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()
