"""Start the real processes (web, worker, sandboxes) on a throwaway database for a benchmark.

Each benchmark measures the enqueue->start floor of a no-op task in the same run as what it
compares with it, because that floor moves with the machine's load.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import redis

from whatsappcrm_backend.devenv import worker_argv

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def http_ok(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False


class Stack:
    def __init__(self, redis_db: int = 12) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="wcrm-bench-"))
        self.web_port = free_port()
        self.sandbox_port = free_port()
        self.redis_url = os.environ.get("REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}")
        self.env = {
            **os.environ,
            "DATABASE_URL": os.environ.get(
                "DATABASE_URL", f"sqlite:///{self.workdir / 'bench.sqlite3'}"
            ),
            "REDIS_URL": self.redis_url,
            "SANDBOX": "1",
            "PORT": str(self.web_port),
            "META_SANDBOX_PORT": str(self.sandbox_port),
            "META_GRAPH_BASE_URL": f"http://127.0.0.1:{self.sandbox_port}",
            "META_SANDBOX_WEBHOOK_URL": f"http://127.0.0.1:{self.web_port}/webhooks/whatsapp/",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: list[subprocess.Popen] = []

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    def manage(self, *args: str) -> None:
        subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def spawn(self, name: str, *cmd: str) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("w")
        process = subprocess.Popen(
            list(cmd),
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start_worker(self, name: str, queues: str = "celery", concurrency: int = 2) -> None:
        self.spawn(name, *worker_argv(f"{name}@%h", queues, concurrency))
        log = self.workdir / f"{name}.log"
        wait_until(lambda: log.exists() and " ready." in log.read_text(), 60, f"{name} ready")

    def start(self, web: bool = True, sandbox: bool = True) -> None:
        redis.Redis.from_url(self.redis_url).flushdb()
        self.manage("migrate", "--noinput")
        self.manage("bootstrap_demo")
        if sandbox:
            self.spawn("sandbox", PYTHON, "manage.py", "run_sandboxes")
            wait_until(lambda: http_ok(f"{self.sandbox_url}/sandbox/meta/sent"), 30, "sandbox")
        if web:
            self.spawn(
                "web",
                PYTHON,
                "-m",
                "gunicorn",
                "whatsappcrm_backend.wsgi",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                "2",
                "--threads",
                "4",
            )
            wait_until(lambda: http_ok(f"{self.web_url}/healthz"), 30, "web")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def running_stack(**kwargs):
    stack = Stack(**kwargs)
    try:
        yield stack
    finally:
        stack.stop()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1]}


def measure_task_floor(redis_url: str, samples: int = 200, gap: float = 0.0) -> dict[str, float]:
    """Enqueue->start of a no-op task (record_start_task), in ms, on a running worker."""
    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsappcrm_backend.settings")
    os.environ["REDIS_URL"] = redis_url
    import django

    django.setup()
    from whatsappcrm_backend.celery import Priority
    from whatsappcrm_backend.tasks import record_start_task

    client = redis.Redis.from_url(redis_url)
    key = f"bench:floor:{time.time()}"
    for index in range(samples):
        record_start_task.apply_async(args=[key, str(index)], priority=Priority.REPLY)
        expected = index + 1
        while client.llen(key) < expected:
            time.sleep(0.0002)
        if gap:
            time.sleep(gap)
    waits = []
    for raw in client.lrange(key, 0, -1):
        _, published, started = raw.decode().split()
        waits.append((float(started) - float(published)) * 1000)
    client.delete(key)
    return percentiles(waits)
