"""The SQLite backend: our writers queue on a lock file (no polling), and any other writer's
lock is waited for in short steps, up to the configured timeout, where a retry is safe
(outside a transaction, and BEGIN IMMEDIATE), whatever database the test run itself uses."""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from django.db.utils import ConnectionHandler, OperationalError

from whatsappcrm_backend.sqlite import base
from whatsappcrm_backend.sqlite.base import SQLITE_WAIT_SECONDS, run_promptly
from whatsappcrm_backend.sqlite.write_lock import WriteLock, is_write, starts_transaction


def backend_connection(path):
    """A connection through our backend to `path`: this handler's own default, not the test
    run's database (a handler per call: two are two connections, as two processes hold)."""
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
    return handler["default"]


@pytest.fixture
def lite(tmp_path, django_db_blocker):
    """A connection through our backend to a fresh WAL file, and a rival raw connection."""
    path = tmp_path / "lock.sqlite3"
    conn = backend_connection(path)
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


# --- our writers queue on the lock file ---------------------------------------------------------


def test_statements_that_take_the_write_lock_are_recognised():
    assert starts_transaction("BEGIN IMMEDIATE") and starts_transaction(" begin")
    for sql in ("INSERT INTO t VALUES (1)", "update t set n=1", " DELETE FROM t", "REPLACE INTO t"):
        assert is_write(sql), sql
    for sql in ("SELECT 1", "PRAGMA journal_mode", "SAVEPOINT s1", "COMMIT"):
        assert not is_write(sql) and not starts_transaction(sql), sql


@pytest.fixture
def two_writers(tmp_path, django_db_blocker):
    """Two connections through our backend to one WAL file (as two worker processes hold)."""
    path = tmp_path / "queue.sqlite3"
    first, second = backend_connection(path), backend_connection(path)
    with django_db_blocker.unblock():
        with first.cursor() as cursor:
            cursor.execute("CREATE TABLE t (n INTEGER)")
        yield first, second
        first.close()
        second.close()


def test_a_writer_waits_for_a_transaction_on_the_lock_file_without_polling(
    two_writers, monkeypatch
):
    first, second = two_writers
    failed_attempts = []
    real = base.is_lock_error
    monkeypatch.setattr(base, "is_lock_error", lambda exc: failed_attempts.append(exc) or real(exc))
    first.ensure_connection()
    first._start_transaction_under_autocommit()  # atomic()'s BEGIN IMMEDIATE: the lock file
    with first.cursor() as cursor:
        cursor.execute("INSERT INTO t (n) VALUES (1)")
    done = {}

    def write() -> None:
        second.inc_thread_sharing()  # the fixture made it; this thread writes with it
        try:
            with second.cursor() as cursor:
                cursor.execute("INSERT INTO t (n) VALUES (2)")
            done["at"] = time.monotonic()
        finally:
            second.dec_thread_sharing()

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.3)
    assert not done  # queued behind the open transaction
    committed = time.monotonic()
    first.commit()  # COMMIT frees the lock file
    thread.join(5)
    assert done and done["at"] - committed < 0.1
    assert failed_attempts == []  # it never met SQLite's lock: no failed try, no 1 ms sleep
    with first.cursor() as cursor:
        cursor.execute("SELECT n FROM t ORDER BY n")
        assert cursor.fetchall() == [(1,), (2,)]


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_the_lock_file_is_free_once_the_transaction_ends(two_writers, end):
    first, _ = two_writers
    first.ensure_connection()
    first._start_transaction_under_autocommit()
    lock = first.write_lock()
    assert lock.held and not _free(lock.path)
    getattr(first, end)()
    assert not lock.held and _free(lock.path)


def test_a_write_outside_a_transaction_holds_the_lock_file_for_that_statement_only(two_writers):
    first, _ = two_writers
    with first.cursor() as cursor:
        cursor.execute("INSERT INTO t (n) VALUES (1)")
        assert _free(first.write_lock().path)
        cursor.execute("SELECT count(*) FROM t")  # a read takes no lock
        assert cursor.fetchone() == (1,)


def test_a_killed_holder_frees_the_lock_file(two_writers):
    first, _ = two_writers
    first.ensure_connection()
    path = first.write_lock().path
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOREVER, path], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "holding"
    assert not _free(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(5)
    with first.cursor() as cursor:  # does not hang: the kernel dropped the dead process's lock
        cursor.execute("INSERT INTO t (n) VALUES (1)")


HOLD_FOREVER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("holding", flush=True)
time.sleep(60)
"""


def test_a_forked_child_does_not_share_its_parents_hold(tmp_path):
    # Celery's prefork pool forks children from a parent that may have used the database.
    lock = WriteLock(str(tmp_path / "db.sqlite3"))
    lock.acquire()
    pid = os.fork()
    if pid == 0:  # the child: its acquire must wait for the parent, not pass through
        signal.signal(signal.SIGALRM, lambda *_: os._exit(0))  # still waiting after 0.5 s
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        lock.acquire()
        os._exit(1)  # acquired while the parent held it
    _, status = os.waitpid(pid, 0)
    lock.close()
    assert os.waitstatus_to_exitcode(status) == 0


def _free(path: str) -> bool:
    """Whether another open file could take the lock now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
