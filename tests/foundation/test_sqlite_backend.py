"""The SQLite backend waits for the write lock in short steps, up to the configured timeout,
where a retry is safe (outside a transaction, and BEGIN IMMEDIATE), whatever database the
test run itself uses."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from django.db.utils import ConnectionHandler, OperationalError

from whatsappcrm_backend.sqlite.base import SQLITE_WAIT_SECONDS, run_promptly


@pytest.fixture
def lite(tmp_path, django_db_blocker):
    """A connection through our backend to a fresh WAL file, and a rival raw connection."""
    path = tmp_path / "lock.sqlite3"
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "whatsappcrm_backend.sqlite",
                "NAME": str(path),
                "OPTIONS": {
                    "timeout": 2,
                    "transaction_mode": "IMMEDIATE",
                    "init_command": "PRAGMA journal_mode=WAL;",
                },
            }
        }
    )
    conn = handler["default"]  # this handler's own default, not the test run's database
    with django_db_blocker.unblock():  # a file of its own: the test run's database is untouched
        with conn.cursor() as cursor:
            cursor.execute("CREATE TABLE t (n INTEGER)")
        rival = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        yield conn, rival
        rival.close()
        conn.close()


def hold_lock(rival: sqlite3.Connection, seconds: float) -> dict[str, float]:
    """Take the write lock now, release it after `seconds` from a thread; when it was freed."""
    rival.execute("BEGIN IMMEDIATE")
    freed: dict[str, float] = {}

    def release() -> None:
        time.sleep(seconds)
        rival.execute("COMMIT")
        freed["at"] = time.monotonic()

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    freed["thread"] = thread  # type: ignore[assignment]
    return freed


def test_a_statement_outside_a_transaction_waits_past_sqlites_own_wait(lite):
    conn, rival = lite
    freed = hold_lock(rival, 0.3)  # far longer than SQLITE_WAIT_SECONDS
    with conn.cursor() as cursor:
        cursor.execute("INSERT INTO t (n) VALUES (1)")
    done = time.monotonic()
    assert freed and done >= freed["at"]
    assert SQLITE_WAIT_SECONDS < 0.3
    with conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM t")
        assert cursor.fetchone() == (1,)


def test_begin_immediate_waits_too(lite):
    conn, rival = lite
    freed = hold_lock(rival, 0.3)
    conn.ensure_connection()
    conn._start_transaction_under_autocommit()  # what atomic() runs first on SQLite
    assert freed and time.monotonic() >= freed["at"]
    assert conn.connection.in_transaction
    with conn.cursor() as cursor:
        cursor.execute("INSERT INTO t (n) VALUES (2)")
    conn.connection.execute("COMMIT")


def test_a_lock_held_past_the_timeout_is_an_error(lite):
    conn, rival = lite
    conn.settings_dict["OPTIONS"]["timeout"] = 0.2
    conn.close()  # reconnect with the shorter timeout
    freed = hold_lock(rival, 1.0)
    started = time.monotonic()
    with pytest.raises(OperationalError, match="locked"), conn.cursor() as cursor:
        cursor.execute("INSERT INTO t (n) VALUES (3)")
    assert 0.2 <= time.monotonic() - started < 1.0
    freed["thread"].join()  # the rival commits before the fixture closes it


def test_run_promptly_retries_only_lock_errors_until_the_wait_ends():
    # What a new connection's init commands (PRAGMA journal_mode=WAL takes a lock) go through.
    outcomes = [sqlite3.OperationalError("database is locked")] * 3 + ["done"]

    def run() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert run_promptly(run, wait_seconds=1.0) == "done"
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        run_promptly(_raise(sqlite3.OperationalError("no such table: t")), wait_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        run_promptly(_raise(sqlite3.OperationalError("database is locked")), wait_seconds=0.05)
    assert time.monotonic() - started >= 0.05


def _raise(exc: Exception):
    def run() -> None:
        raise exc

    return run


@pytest.mark.django_db(transaction=True)
def test_a_task_and_a_request_keep_the_database_connection():
    # Celery's prerun hook and Django's request signals both run close_old_connections. On
    # SQLite a connection per task or request cost a connect, the WAL PRAGMA (which takes a
    # lock) and a close: bench/ measured ~25% of the worker's CPU per message.
    from django.db import close_old_connections, connection

    from whatsappcrm_backend.celery import refresh_stale_connections

    connection.ensure_connection()
    kept = connection.connection
    refresh_stale_connections()
    close_old_connections()
    connection.ensure_connection()
    assert connection.connection is kept
