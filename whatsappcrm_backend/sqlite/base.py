"""Django's SQLite backend, waiting for the write lock in 1 ms steps.

SQLite has one write lock. A connection that finds it taken waits in SQLite's busy handler,
which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms at a time: a writer that
arrives just after another took the lock wakes up to 100 ms after it was freed. Measured on
the webhook (one INSERT): ack times bunched at 103, 128, 178, 228 and 328 ms, the handler's
running sums, while the transactions ahead of it held the lock for a few ms.

Our own writers do not meet that lock at all: they queue first on a lock file
(`write_lock.WriteLock`, an flock the kernel hands to the next waiter as it is released),
held from `BEGIN IMMEDIATE` to COMMIT or ROLLBACK, or around one write statement outside a
transaction. For any other writer (the sqlite3 shell, an older process), Python's sqlite3
cannot install a busy handler of its own, so this backend keeps SQLite's own wait short
(`SQLITE_WAIT_SECONDS`) and retries in 1 ms steps up to the configured `timeout`. Only where a
retry is safe: a statement outside a transaction (it either ran whole or not at all) and
`BEGIN IMMEDIATE` itself. Inside a transaction, which holds the lock from its BEGIN, nothing
changes.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from django.db.backends.sqlite3 import base

from whatsappcrm_backend.sqlite.write_lock import WriteLock, is_write, starts_transaction

SQLITE_WAIT_SECONDS = 0.002
POLL_SECONDS = 0.001


def is_lock_error(exc: sqlite3.OperationalError) -> bool:
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


def run_promptly(run: Any, *args: Any, wait_seconds: float) -> Any:
    """`run(*args)`, retried every millisecond while the database is locked, up to the wait."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return run(*args)
        except sqlite3.OperationalError as exc:
            if not is_lock_error(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(POLL_SECONDS)


class PromptCursorWrapper(base.SQLiteCursorWrapper):
    lock_wait_seconds: float = 30.0
    write_lock: WriteLock | None = None

    def execute(self, query: str, params: Any = None) -> Any:
        return self._promptly(super().execute, query, params)

    def executemany(self, query: str, param_list: Any) -> Any:
        return self._promptly(super().executemany, query, list(param_list))

    def _promptly(self, run: Any, *args: Any) -> Any:
        if self.connection.in_transaction:
            return run(*args)  # the transaction holds the lock since its BEGIN IMMEDIATE
        lock, sql = self.write_lock, args[0]
        if lock is None or not (starts_transaction(sql) or is_write(sql)):
            return run_promptly(run, *args, wait_seconds=self.lock_wait_seconds)
        lock.acquire()
        try:
            return run_promptly(run, *args, wait_seconds=self.lock_wait_seconds)
        finally:
            if not self.connection.in_transaction:
                lock.release()  # one statement, or a failed BEGIN; a BEGIN keeps it to COMMIT


class DatabaseWrapper(base.DatabaseWrapper):
    _write_lock: WriteLock | None = None

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        self.lock_wait_seconds = float(params.get("timeout", 5.0))
        params["timeout"] = SQLITE_WAIT_SECONDS
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        # The init commands (PRAGMA journal_mode=WAL takes a lock) wait like any statement:
        # the web opens a connection per request, often while a worker holds the lock.
        commands, self.init_commands = self.init_commands, []
        try:
            conn = super().get_new_connection(conn_params)
        finally:
            self.init_commands = commands
        for command in commands:
            if command := command.strip():
                run_promptly(conn.execute, command, wait_seconds=self.lock_wait_seconds)
        return conn

    def create_cursor(self, name: str | None = None) -> PromptCursorWrapper:
        cursor = self.connection.cursor(factory=PromptCursorWrapper)
        cursor.lock_wait_seconds = self.lock_wait_seconds
        cursor.write_lock = self.write_lock()
        return cursor

    def write_lock(self) -> WriteLock | None:
        """This connection's place in the writers' queue; none for an in-memory database."""
        if self._write_lock is None and not self.is_in_memory_db():
            self._write_lock = WriteLock(str(self.settings_dict["NAME"]))
        return self._write_lock

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            if self._write_lock is not None:
                self._write_lock.close()

    def _release_write_lock(self) -> None:
        # Only once SQLite's transaction has ended: a failed COMMIT leaves it open.
        if self._write_lock is not None and not (
            self.connection is not None and self.connection.in_transaction
        ):
            self._write_lock.release()
