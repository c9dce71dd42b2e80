"""A lock file beside the SQLite database, on which its writers queue in the kernel.

SQLite's own write lock has no queue: a writer that finds it taken can only sleep and try
again. Under load that is most of the cost of waiting: at 40 msg/s with two latency worker
processes, 42 failed attempts per answered message, each a statement, an exception and a
sleep (counted during bench/throughput.py; about 2.7 ms of the latency worker's CPU per
message, plus the web's). `flock` puts the
waiter to sleep until the holder lets go, and wakes it then: no polling, no lost millisecond.

The lock is held exactly as long as SQLite's: from `BEGIN IMMEDIATE` to COMMIT or ROLLBACK,
or for one write statement outside a transaction. The kernel drops it when its holder dies,
so a SIGKILLed worker never leaves it taken. A wait has no timeout of its own: the holder is
one of our processes inside one write transaction, bounded by its task or request limits.
Writers that do not take it (the sqlite3 shell) still meet SQLite's lock, which the backend
waits for as before.
"""

from __future__ import annotations

import fcntl
import os

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")  # REPLACE: six letters are compared


def starts_transaction(sql: str) -> bool:
    return sql.lstrip()[:5].upper() == "BEGIN"


def is_write(sql: str) -> bool:
    """A statement that takes SQLite's write lock on its own (outside a transaction)."""
    return sql.lstrip()[:6].upper() in WRITES


class WriteLock:
    """One connection's handle on `<database>-writelock` (an flock: per open file, so each
    connection, thread or process queues on its own)."""

    def __init__(self, database_path: str) -> None:
        self.path = f"{database_path}-writelock"
        self.fd: int | None = None
        self.pid = 0
        self.held = False

    def acquire(self) -> None:
        if self.fd is None or self.pid != os.getpid():
            # A forked child (Celery's pool) must not share its parent's open file: an
            # flock belongs to the open file, so both would think they held it.
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self.pid = os.getpid()
            self.held = False
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if self.held and self.fd is not None and self.pid == os.getpid():
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.held = False

    def close(self) -> None:
        self.release()
        if self.fd is not None and self.pid == os.getpid():
            os.close(self.fd)
        self.fd = None
