"""The worker's CPU per answered message, alone: no contention, no queue, no profiler.

Runs the latency worker's whole path for one inbound message (the ingest task, and inside it
the flow and the send to the Graph sandbox, as `whatsappcrm_backend.handoff` runs them) in
this process, one message after another, and divides this process's CPU time by the
messages. The latency worker is stopped first, so nothing else writes to the database.
Under load the same work also waits on locks and shares the cores (bench/profile_hot_path.py
measures that); this figure is the cost a change to the code moves, so A/B a change here:

    .venv/bin/python bench/worker_cpu.py [--postgres] [--runs 3] [--messages 300]
    CONN_MAX_AGE=0 .venv/bin/python bench/worker_cpu.py --no-write   # a setting, A/B
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, report
from bench.load import text_body


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--messages", type=int, default=300)
    args = p.parse_args()
    label = common.db_label(args)
    with common.hot_path_stack(args) as (stack, _webhook, _sandbox):
        stack.stop_process("chat")
        import flows.tasks  # noqa: F401 - registers the flow's handoff runner, as a worker does
        from meta_integration import ingest, simulation
        from meta_integration.models import InboundMessage, OutboundMessage
        from meta_integration.tasks import ingest_webhook_event_task

        users = simulation.make_users(50, random.Random(5))

        def one(index: int) -> None:
            body = text_body(users[index % len(users)], f"wamid.cpu{uuid.uuid4().hex}", "hi")
            event_id = ingest.webhook_event_store(raw_body=body.decode())
            ingest_webhook_event_task.apply(args=[event_id])

        for index in range(50):  # warm-up: imports, caches, the contacts' first messages
            one(index)
        figures: list[float] = []
        for _ in range(args.runs):
            replies_before = OutboundMessage.objects.count()
            started = time.process_time()
            for index in range(args.messages):
                one(index)
            figures.append((time.process_time() - started) * 1000.0 / args.messages)
            replies = OutboundMessage.objects.count() - replies_before
            print(f"{figures[-1]:.1f} ms CPU per message; {replies} replies")
            if replies < args.messages:
                raise SystemExit(f"only {replies} of {args.messages} messages were answered")
        unprocessed = InboundMessage.objects.filter(processed_at__isnull=True).count()
        header = report.header_block(stack)
    body = "\n".join(
        [
            header,
            "",
            f"{args.messages} inbound texts from 50 customers per run, {label}, {args.runs} runs; "
            f"each answered in this process (ingest + flow + send to the sandbox); "
            f"{unprocessed} left unprocessed.",
            "",
            report.table(
                ["", "min / median / max"],
                [["worker CPU per answered message", report.spread(figures, digits=1)]],
            ),
        ]
    )
    common.write(args, f"worker-cpu-{label.lower()}", f"Worker CPU per message ({label})", body)


if __name__ == "__main__":
    main()
