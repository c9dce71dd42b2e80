"""Drill: Meta misbehaving. The Graph sandbox answers 20% 5xx and 10% 130429 while customers
chat, then fails everything for 30 s (an outage), then recovers.

Checks: every message is eventually sent (retries with backoff), none twice; the circuit
breaker (state in Redis, shared by all workers) opens during the outage and closes after it;
a permanent error (131026 injected afterwards) fails its rows at once, and those rows are
replayable (`outbound_replay`, the admin's action) and then sent.
Quick (default): 300 messages; --full: 1,000.

    .venv/bin/python bench/drill_sandbox_faults.py [--full] [--outage 30]
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, drills, report
from bench.load import chat

BREAKER_PATTERN = "*pybreaker*"


def breaker_state(stack) -> str:
    client = stack.redis()
    for key in client.scan_iter(BREAKER_PATTERN):
        if key.endswith(b":state"):
            value = client.get(key)
            return value.decode() if value else "closed"
    return "closed"


def main() -> None:
    p = drills.parser(__doc__)
    p.add_argument("--messages", type=int, default=None)
    p.add_argument("--outage", type=float, default=30.0)
    p.add_argument("--permanent", type=int, default=20, help="messages hit by 131026")
    args = p.parse_args()
    messages = args.messages or (1000 if args.full else 300)
    transitions: list[tuple[float, str]] = []
    stop = threading.Event()

    with drills.drill_stack(args) as (stack, webhook, sandbox):
        floor = common.floor(stack)
        started = time.time()

        def watch() -> None:
            last = None
            while not stop.is_set():
                try:
                    state = breaker_state(stack)
                except Exception:
                    state = "unknown"
                if state != last:
                    transitions.append((time.time() - started, state))
                    last = state
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        sandbox.faults(error_rate=0.3, error_codes=[500, 500, 130429], seed=5)

        def requests_reach(count: float, timeout: float = 600.0) -> None:
            deadline = time.monotonic() + timeout
            while sandbox.stats()["requests"] < count and time.monotonic() < deadline:
                time.sleep(0.5)

        def outage(run) -> None:
            # Tied to the Graph calls actually made, not to the posting clock: on a slow
            # machine the sends lag the POSTs by a long way.
            requests_reach(messages * 0.6)  # a send and a read receipt per message
            sandbox.faults(error_rate=1.0, error_codes=[500])
            time.sleep(args.outage)
            sandbox.faults(error_rate=0.3, error_codes=[500, 500, 130429], seed=6)
            requests_reach(messages * 1.8)
            sandbox.clear_faults()

        run = chat(
            webhook=webhook,
            sandbox=sandbox,
            users=args.users,
            rate=args.rate,
            messages=messages,
            timeout=max(400.0, messages),
            seed=29,
            during=outage,
        )
        # Permanent errors: the next messages' sends fail with 131026 and must be replayable.
        sandbox.faults(error_rate=1.0, error_codes=[131026])
        permanent = chat(
            webhook=webhook, sandbox=sandbox, users=args.permanent, rate=10,
            messages=args.permanent, timeout=20, seed=31,
        )  # fmt: skip
        from meta_integration.models import OutboundMessage, OutboundStatus
        from meta_integration.services import outbound_replay

        keys = [f"{w}:0" for w in permanent.posted_at]
        failed_rows = OutboundMessage.objects.filter(
            idempotency_key__in=keys, status=OutboundStatus.FAILED
        )
        deadline = time.monotonic() + 180
        while failed_rows.count() < len(keys) and time.monotonic() < deadline:
            time.sleep(1)
        failed = list(failed_rows.values_list("pk", flat=True))
        sandbox.clear_faults()  # only now: the sends lag the POSTs on a slow machine
        replayed = outbound_replay(failed)
        replay_report = chat_collect(sandbox, permanent)
        stop.set()
        watcher.join(timeout=5)
        rows = drills.db_counts(run.posted_at)
        stats = sandbox.stats()
        header = report.header_block(stack)
    acct = run.accounting()
    states = [s for _, s in transitions]
    opened = "open" in states
    closed_after = opened and "closed" in states[states.index("open") :]
    ok = (
        acct["lost"] == 0
        and acct["duplicated"] == 0
        and opened
        and closed_after
        and len(failed) == args.permanent
        and replay_report.replied == args.permanent
        and not replay_report.duplicated
    )
    print(acct, rows, stats, transitions, f"permanent failed {len(failed)}, replayed {replayed}")
    body = "\n".join(
        [
            header,
            "",
            drills.scaled_note(args, "no size set; 1,000 messages", f"{messages} messages")
            + f"; {args.rate:.0f} messages/s; sandbox at 20% 5xx + 10% 130429, with a "
            f"{args.outage:.0f} s total outage after about 30% of the expected Graph calls.",
            "",
            drills.accounting_table([("fault drill", run)]),
            "",
            f"- sandbox counters: {stats}",
            "- breaker state changes (s since start: state): "
            + ", ".join(f"{t:.0f}: {s}" for t, s in transitions),
            f"- breaker opened: {opened}; closed again after: {closed_after}",
            f"- permanent 131026: {len(failed)} of {args.permanent} rows failed at once; "
            f"outbound_replay re-queued {int(replayed)}; then {replay_report.replied} sent, "
            f"{len(replay_report.duplicated)} twice",
            f"- reply latency {common.fmt_ms(run.latency(), digits=0)}; floor p99 "
            f"{floor['p99']:.1f} ms",
            f"- verdict: **{'pass' if ok else 'FAIL'}**",
        ]
    )
    common.write(args, "drill-sandbox-faults", "Drill: Graph API faults and outage", body)
    sys.exit(0 if ok else 1)


def chat_collect(sandbox, run):
    from bench.load import collect

    return collect(sandbox, run.posted_at, run.started, 120.0)


if __name__ == "__main__":
    main()
