"""What every hot-path benchmark and drill shares: arguments, the stack, the floor line."""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

from bench import report
from bench.load import Sandbox, Webhook
from bench.stack import measure_task_floor, running_stack


def parser(doc: str, runs: int = 3) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--postgres", action="store_true", help="a fresh PostgreSQL database")
    p.add_argument("--runs", type=int, default=runs, help="repetitions (min/median/max)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="scaled-down sizes (the default)")
    mode.add_argument("--full", action="store_true", help="the issue's exact sizes")
    p.add_argument("--concurrency", type=int, default=None, help="override the Procfile's")
    p.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    return p


def db_label(args: argparse.Namespace) -> str:
    return "PostgreSQL" if args.postgres else "SQLite"


@contextmanager
def hot_path_stack(args: argparse.Namespace, beat: bool = False, maintenance: bool = False):
    """Web (Procfile gunicorn), one latency worker and the background worker (status drains,
    bulk sends) as the Procfile runs them, the sandbox; Django set up here."""
    with running_stack(postgres=args.postgres) as stack:
        stack.start(beat=beat, maintenance=maintenance)
        stack.start_worker("chat", "celery", concurrency=args.concurrency)
        stack.start_worker("bulk", "bulk", procfile_name="worker_bulk")
        sandbox = Sandbox(stack.sandbox_url)
        # Meta's pair limit (one user, ~1 per 6 s) is not what these measure: simulated
        # customers write far faster than people do. The per-number 80/s limit stays.
        sandbox.config(pair_burst=100000)
        yield stack, Webhook(stack.webhook_url), sandbox


def queued(stack, queue: str = "celery") -> int:
    """Tasks waiting on `queue` (every priority list) plus unacked deliveries."""
    broker = stack.redis(broker=True)
    pipe = broker.pipeline(transaction=False)
    for p in range(10):
        pipe.llen(queue if p == 0 else f"{queue}:{p}")
    pipe.hlen("unacked")
    return sum(pipe.execute())


def drain(stack, timeout: float = 300.0) -> None:
    """Wait until the latency queue is empty, so a run (and its floor) does not start behind
    the previous run's leftovers."""
    deadline = time.monotonic() + timeout
    while queued(stack) and time.monotonic() < deadline:
        time.sleep(0.5)


def floor(stack, samples: int = 200, drain_first: bool = True) -> dict[str, float]:
    if drain_first:
        drain(stack)
    figures = measure_task_floor(stack.redis_url, samples=samples, gap=0.02)
    print("no-op task floor (enqueue->start, 20 ms gaps): " + fmt_ms(figures))
    return figures


def fmt_ms(figures: dict[str, float], keys=("p50", "p99", "max"), digits: int = 1) -> str:
    return ", ".join(f"{k} {figures[k]:.{digits}f} ms" for k in keys if k in figures)


def floor_row(floors: list[dict[str, float]]) -> list[str]:
    return [
        "no-op task floor (same run)",
        report.spread([f["p50"] for f in floors], digits=1),
        report.spread([f["p99"] for f in floors], digits=1),
        report.spread([f["max"] for f in floors], digits=1),
    ]


def write(args, key: str, title: str, body: str) -> None:
    if not args.no_write:
        report.write_section(key, title, body)
