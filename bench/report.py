"""Figures into docs/benchmarks.md: one section per benchmark, replaced when it runs again.

A section sits between `<!-- bench:<key> -->` and `<!-- /bench:<key> -->`; anything outside
the markers (other benchmarks, hand-written notes) is left as it is. Every section states the
command, the machine, the versions and when it ran.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DOC = BASE_DIR / "docs" / "benchmarks.md"
NOISE = (
    "The machine is a shared VM whose speed varies (the CPU-speed line above): compare "
    "figures with those measured in the same run or hour, not across days."
)


def machine() -> str:
    cores = os.cpu_count() or 0
    try:
        kb = int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown memory"
    try:
        load = "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = ""
    return (
        f"{cores} cores, {memory}, {platform.system()} {platform.machine()}; {load} at start; "
        f"CPU speed: a 10^7-step Python loop takes {cpu_probe_seconds():.2f} s (compare runs "
        "by this: the same machine has measured 2.5x apart on one day)"
    )


def cpu_probe_seconds() -> float:
    """This process's CPU time for a fixed pure-Python loop: how fast the cores are right now
    (a shared VM's host load shows up here, not in the load average or steal time)."""
    started = time.process_time()
    total = 0
    for step in range(10_000_000):
        total += step
    return time.process_time() - started


def versions(stack=None) -> str:
    import celery
    import django

    parts = [f"Python {platform.python_version()}", f"Django {django.get_version()}"]
    parts.append(f"Celery {celery.__version__}")
    if stack is not None:
        try:
            info = stack.redis().info("server")
            parts.append(f"Redis server {info.get('redis_version')}")
        except Exception:  # a figure line, not a failure
            parts.append("Redis server (version unknown)")
        if stack.postgres_db:
            parts.append(postgres_version())
        else:
            import sqlite3

            parts.append(f"SQLite {sqlite3.sqlite_version}")
    try:
        import gunicorn

        parts.append(f"gunicorn {gunicorn.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def postgres_version() -> str:
    try:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
    except Exception:
        return "PostgreSQL"


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return f"{rev}{' + uncommitted changes' if dirty else ''}"
    except OSError:
        return "unknown"


def command_line() -> str:
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(BASE_DIR)
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def spread(values: Iterable[float | None], unit: str = "ms", digits: int = 0) -> str:
    """min / median / max over runs, e.g. "41 / 43 / 52 ms"."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    fmt = f"{{:.{digits}f}}"
    low, mid, high = min(present), statistics.median(present), max(present)
    return f"{fmt.format(low)} / {fmt.format(mid)} / {fmt.format(high)} {unit}".strip()


def ratio(value: float | None, floor: float | None) -> str:
    if value is None or not floor:
        return "-"
    return f"{value / floor:.0f}x"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def header_block(stack=None, extra: str = "") -> str:
    lines = [
        "```",
        command_line(),
        "```",
        "",
        f"- ran {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on revision {git_revision()}",
        f"- machine: {machine()}",
        f"- versions: {versions(stack)}",
    ]
    if extra:
        lines.append(f"- {extra}")
    lines.append(f"- {NOISE}")
    return "\n".join(lines)


def write_section(key: str, title: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section `key` of docs/benchmarks.md."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = f"{start}\n## {title}\n\n{body.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)
    print(f"wrote section '{title}' to {doc.relative_to(BASE_DIR)}")
