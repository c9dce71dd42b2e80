"""Where the time goes: CPU, queries, writes and Redis commands per message, and profiles.

Phase 1 (costs, no profiler): a chat at --rate for --seconds; CPU seconds of each process
tree (web, latency worker, sandbox, redis-server) from /proc, Redis commands from
INFO commandstats, both as deltas divided by the messages answered. An idle interval of the
same length is measured first and subtracted (broker polling, heartbeats, beat).
Phase 2 (profiles): web and worker restarted under bench/profiling.py (pyinstrument per
request / per task, query and write counters) and the same chat again; top frames per
request kind and per task. Writes "Where the time goes (measured)" in docs/benchmarks.md and
the raw profiles to the run's directory.

    .venv/bin/python bench/profile_hot_path.py [--postgres] [--rate 20] [--seconds 20]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(BASE := Path(__file__).resolve().parent.parent))

from bench import common, report
from bench.load import chat
from bench.stack import PYTHON, procfile_argv, wait_until

TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    pids = [pid]
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    for child in out.split():
        pids += tree(int(child))
    return pids


def cpu_seconds(pid: int) -> float:
    total = 0
    for each in tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def _stat_fields(pid: int) -> tuple[str, int]:
    """(command name, parent pid) from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    name = text[text.index("(") + 1 : text.rindex(")")]
    return name, int(text.rsplit(")", 1)[1].split()[1])


def postgres_server_pid() -> int | None:
    """The PostgreSQL server's main process (a `postgres` whose parent is not one)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, parent = _stat_fields(int(entry.name))
            if name == "postgres" and _stat_fields(parent)[0] != "postgres":
                return int(entry.name)
        except (OSError, ValueError):
            continue
    return None


def snapshot(stack) -> dict[str, object]:
    cpu = {name: cpu_seconds(p.pid) for name, p in stack.processes.items() if p.poll() is None}
    if stack.redis_process is not None:
        cpu["redis-server"] = cpu_seconds(stack.redis_process.pid)
    if stack.postgres_db and (server := postgres_server_pid()):
        # The machine's database service shares these cores: its backends (and, through
        # cutime, the ones that exited) are part of a message's cost. Nothing else uses it
        # while a benchmark runs.
        cpu["postgresql server"] = cpu_seconds(server)
    times = os.times()
    cpu["load generator (this process)"] = times.user + times.system
    stats = stack.redis().info("commandstats")
    calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
    return {"cpu": cpu, "calls": calls, "t": time.time()}


def delta(a: dict, b: dict) -> dict[str, dict[str, float]]:
    return {
        "cpu": {k: b["cpu"].get(k, 0) - a["cpu"].get(k, 0) for k in b["cpu"]},
        "calls": {k: b["calls"].get(k, 0) - a["calls"].get(k, 0) for k in b["calls"]},
        "seconds": b["t"] - a["t"],
    }


def main() -> None:
    p = common.parser(__doc__, runs=1)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--users", type=int, default=100)
    args = p.parse_args()
    label = common.db_label(args)
    messages = int(args.rate * args.seconds)
    with common.hot_path_stack(args) as (stack, webhook, sandbox):
        floor = common.floor(stack)
        chat(webhook=webhook, sandbox=sandbox, users=10, rate=10, messages=20, seed=1)  # warm-up
        time.sleep(3)
        idle_a = snapshot(stack)
        time.sleep(args.seconds)
        idle = delta(idle_a, snapshot(stack))
        load_a = snapshot(stack)
        run = chat(webhook=webhook, sandbox=sandbox, users=args.users, rate=args.rate,
                   messages=messages, seed=3)  # fmt: skip
        load = delta(load_a, snapshot(stack))
        answered = max(1, run.report.replied)
        scale = load["seconds"] / max(1e-9, idle["seconds"])
        cpu_ms = {
            name: max(0.0, load["cpu"][name] - idle["cpu"].get(name, 0) * scale) * 1000 / answered
            for name in load["cpu"]
        }
        calls = {
            name: (n - idle["calls"].get(name, 0) * scale) / answered
            for name, n in load["calls"].items()
        }
        calls = {k: v for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v >= 0.05}
        print("CPU ms per message:", {k: round(v, 1) for k, v in cpu_ms.items()})
        print("Redis commands per message:", {k: round(v, 1) for k, v in calls.items()})

        # Phase 2: profiled web and worker.
        profile_dir = stack.workdir / "profiles"
        profile_dir.mkdir()
        stack.env["BENCH_PROFILE_DIR"] = str(profile_dir)
        stack.stop_process("web")
        stack.stop_process("chat")
        web_argv = [
            "bench.profiling:web_application" if a.startswith("whatsappcrm_backend.wsgi") else a
            for a in procfile_argv("web", stack.env)
        ]
        stack.spawn("web", *web_argv)
        wait_until(lambda: common_http_ok(stack), 60, "profiled web")
        worker_argv = procfile_argv(
            "worker_celery", stack.env, queues="celery", hostname="prof@%h", loglevel="INFO",
            concurrency=None if args.concurrency is None else str(args.concurrency),
        )  # fmt: skip
        worker_argv = [PYTHON, "-m", "bench.profiling", *worker_argv[3:]]
        stack.spawn("chat", *worker_argv)
        wait_until(lambda: " ready." in stack.log("chat"), 90, "profiled worker")
        profiled = chat(webhook=webhook, sandbox=sandbox, users=args.users, rate=args.rate,
                        messages=messages, seed=4)  # fmt: skip
        time.sleep(2)
        stack.stop_process("web", group=False, timeout=60)
        stack.stop_process("chat", group=False, timeout=60)
        header = report.header_block(stack)
    summaries = merge_summaries(profile_dir)
    body = render(args, label, header, floor, run, profiled, cpu_ms, calls, summaries, profile_dir)
    print(body)
    common.write(args, f"profile-{label.lower()}", f"Where the time goes (measured, {label})", body)


def common_http_ok(stack) -> bool:
    from bench.stack import http_ok

    return http_ok(f"{stack.web_url}/healthz")


def merge_summaries(directory: Path) -> dict[str, dict[str, float]]:
    merged: dict[str, dict[str, float]] = {}
    for path in directory.glob("*-summary-*.json"):
        kind = path.name.split("-", 1)[0]
        for label, s in json.loads(path.read_text()).items():
            m = merged.setdefault(f"{kind}: {label}", {"count": 0, "q": 0.0, "w": 0.0,
                                                       "cpu": 0.0, "wall": 0.0, "qmax": 0})  # fmt: skip
            m["count"] += s["count"]
            m["q"] += s["queries_mean"] * s["count"]
            m["w"] += s.get("writes_mean", 0) * s["count"]
            m["cpu"] += s["cpu_s"]
            m["wall"] += s["wall_s"]
            m["qmax"] = max(m["qmax"], s["queries_max"])
    return merged


def top_frames(directory: Path, prefix: str, lines: int = 28) -> str:
    files = sorted(directory.glob(f"{prefix}*.txt"), key=lambda p: -p.stat().st_size)
    if not files:
        return "(no profile written)"
    text = files[0].read_text().splitlines()
    body = [line for line in text if line.strip() and not line.startswith(("  _ ", "Recorded"))]
    return "\n".join("    " + line for line in body[:lines])


def render(args, label, header, floor, run, profiled, cpu_ms, calls, summaries, directory) -> str:
    rows = [
        [name, s["count"], f"{s['q'] / s['count']:.1f}", s["qmax"], f"{s['w'] / s['count']:.1f}",
         f"{s['wall'] * 1000 / s['count']:.1f} ms", f"{s['cpu'] * 1000 / s['count']:.1f} ms"]
        for name, s in sorted(summaries.items(), key=lambda kv: -kv[1]["wall"])
    ]  # fmt: skip
    per_message = {name.split(": ", 1)[1]: s["count"] / max(1, profiled.report.replied)
                   for name, s in summaries.items() if name.startswith("worker")}  # fmt: skip
    summaries = {k: v for k, v in summaries.items() if "healthz" not in k}
    queries_per_message = sum(s["q"] for s in summaries.values()) / max(1, profiled.report.replied)
    writes_per_message = sum(s["w"] for s in summaries.values()) / max(1, profiled.report.replied)
    replied = max(1, profiled.report.replied)
    ours = {k: v for k, v in cpu_ms.items() if k in ("web", "chat", "redis-server")}
    everything = sum(cpu_ms.values())
    cores = os.cpu_count() or 1
    outbound = run.report.extra_messages / max(1, run.report.sent)
    redis_calls = sum(calls.values())
    model = [
        "### Capacity model from these costs (see docs/scaling.md)",
        "",
        report.table(
            ["", "per message", "at 1,000 msg/s"],
            [
                ["web CPU", f"{cpu_ms.get('web', 0):.1f} ms", f"{cpu_ms.get('web', 0):.1f} cores"],
                [
                    "worker CPU",
                    f"{cpu_ms.get('chat', 0):.1f} ms",
                    f"{cpu_ms.get('chat', 0):.1f} cores",
                ],
                [
                    "redis-server CPU",
                    f"{cpu_ms.get('redis-server', 0):.1f} ms",
                    f"{cpu_ms.get('redis-server', 0):.2f} cores (single-threaded: must stay < 1)",
                ],
                ["Redis commands", f"{redis_calls:.0f}", f"{redis_calls * 1000:,.0f}/s"],
                [
                    "database queries (of which writes)",
                    f"{queries_per_message:.1f} ({writes_per_message:.1f})",
                    f"{queries_per_message * 1000:,.0f}/s "
                    f"({writes_per_message * 1000:,.0f} writes/s)",
                ],
                [
                    "outbound sends (Meta's per-number limit)",
                    f"{outbound:.2f}",
                    f"{outbound * 1000:,.0f}/s",
                ],
            ],
        ),
        "",
        f"- this machine ({cores} cores shared by web, worker, Redis, the sandbox and the load "
        f"generator: {everything:.0f} ms of CPU per message in all): predicted ceiling "
        f"**{cores * 1000 / max(1e-9, everything):.1f} msg/s**; our processes alone "
        f"({sum(ours.values()):.0f} ms) would allow {cores * 1000 / max(1e-9, sum(ours.values())):.1f} "
        "msg/s on the same cores. Compare with bench/throughput.py (1 and 2 worker processes).",
    ]
    del replied
    parts = [
        header,
        "",
        f"{args.users} customers at {args.rate:.0f} msg/s for {args.seconds:.0f} s, {label}. "
        f"Unprofiled run: {run.accounting()}, reply {common.fmt_ms(run.latency(), digits=0)}; "
        f"floor p99 {floor['p99']:.1f} ms.",
        "",
        "### Cost per answered message (unprofiled run, idle baseline subtracted)",
        "",
        report.table(
            ["process tree", "CPU ms per message"], [[k, f"{v:.1f}"] for k, v in cpu_ms.items()]
        ),
        "",
        "Redis commands per message (all databases: cache, locks, broker): "
        + ", ".join(f"{k} {v:.1f}" for k, v in calls.items())
        + f"; total {sum(calls.values()):.1f}.",
        "",
        "### Per request and per task (profiled run: pyinstrument per request/task, query counter)",
        "",
        report.table(
            [
                "request / task",
                "count",
                "queries mean",
                "queries max",
                "writes mean",
                "wall mean",
                "CPU mean",
            ],
            rows,
        ),
        "",
        "- tasks per answered message: "
        + ", ".join(f"{k} {v:.2f}" for k, v in per_message.items()),
        f"- database queries per answered message (web + worker): {queries_per_message:.1f}, "
        f"of which writes {writes_per_message:.1f}",
        f"- profiled run: {profiled.accounting()}, reply "
        f"{common.fmt_ms(profiled.latency(), digits=0)} (profiling overhead included)",
        f"- raw profiles: {directory}",
        "",
        *model,
        "",
        "Top frames, web (largest profile):",
        "",
        top_frames(directory, "web-POST"),
        "",
        "Top frames, worker (largest profile):",
        "",
        top_frames(directory, "worker-"),
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
