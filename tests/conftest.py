"""Shared fixtures: a clean Redis database per test and real Celery worker processes.

Worker tests need committed rows, so they use `transactional_db`; the worker process gets the
test database's URL (SQLite test databases live in a file for this reason).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django_redis import get_redis_connection

from whatsappcrm_backend.devenv import worker_argv

BASE_DIR = Path(settings.BASE_DIR)


def broker_redis():
    """The broker's Redis database (settings.CELERY_BROKER_URL: REDIS_URL's number + 1)."""
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


@pytest.fixture(autouse=True)
def no_queued_status_drain():
    """A status drain queued by an earlier test (its key lives 10 s) must not swallow this
    test's status POSTs."""
    from django.core.cache import cache

    from meta_integration.ingest import STATUS_DRAIN_QUEUED_KEY

    cache.delete(STATUS_DRAIN_QUEUED_KEY)


@pytest.fixture
def broker_conn(redis_conn):
    """The broker's database (queues `celery`, `celery:3`, ..., `unacked`), flushed with
    redis_conn. Queued tasks live here, never in the cache database."""
    return broker_redis()


@pytest.fixture
def redis_conn():
    """The test Redis databases, flushed before and after the test: the cache/locks/limits
    database (returned) and the broker's own database."""
    conn = get_redis_connection("default")
    broker = broker_redis()
    conn.flushdb()
    broker.flushdb()
    yield conn
    conn.flushdb()
    broker.flushdb()


def test_database_url() -> str:
    """The URL of the database the test run is using (test name, not the configured one)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}{port}/{db['NAME']}"


class WorkerProcess:
    def __init__(self, process: subprocess.Popen, log_path: Path, name: str) -> None:
        self.process = process
        self.log_path = log_path
        self.name = name

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pool_pids(self) -> list[int]:
        """The prefork children that run the tasks."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@pytest.fixture
def celery_worker_factory(
    transactional_db, redis_conn, tmp_path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real `celery worker` processes on the test database and Redis; stopped after."""
    workers: list[WorkerProcess] = []

    def start(
        queues: str = "celery",
        concurrency: int = 1,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        ready_timeout: float = 30.0,
    ) -> WorkerProcess:
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        log_path = tmp_path / f"worker-{len(workers)}.log"
        worker_env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        process = subprocess.Popen(
            [*worker_argv(name, queues, concurrency), *(extra_args or [])],
            cwd=BASE_DIR,
            env=worker_env,
            stdout=log_path.open("w"),
            stderr=subprocess.STDOUT,
        )
        worker = WorkerProcess(process, log_path, name)
        workers.append(worker)
        deadline = time.monotonic() + ready_timeout
        while " ready." not in worker.log():
            if process.poll() is not None or time.monotonic() > deadline:
                worker.stop()
                raise RuntimeError(f"worker did not start:\n{worker.log()}")
            time.sleep(0.1)
        return worker

    yield start
    for worker in workers:
        worker.stop()
        # Shown by pytest only when the test failed.
        print(f"--- log of worker {worker.name} (last 4000 chars) ---\n{worker.log()[-4000:]}")


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05):
    """Poll until predicate() is truthy; return its value or fail with the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
