"""SQLite files grown by append-only named migrations, and the connections that open them.

A migration is a `(name, step)` pair; each database module keeps its own list, appends to it
and never edits or reorders a released entry. `migrate(path, migrations)` applies the
missing ones, each in its own `BEGIN IMMEDIATE` transaction that also records its name in
`_migrations`: a crash leaves the step either wholly applied or not at all, and two processes
starting at once take turns (the second sees the first's record and skips the step).

`connect(path)` opens a connection the way every store here wants it: WAL journal,
`synchronous=NORMAL` (a committed transaction survives the process being killed), a busy
timeout, autocommit mode so callers open transactions explicitly (see `transaction`).

This module knows nothing about any table but `_migrations`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

Migration = tuple[str, Callable[[sqlite3.Connection], None]]
BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another writer's lock


def connect(path: Path, *, wal: bool = True, timeout_s: float = BUSY_TIMEOUT_S):
    """A connection in autocommit mode with WAL, synchronous=NORMAL and a busy timeout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    if wal:
        _set_wal(db, timeout_s)
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def _set_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    """Switch to WAL, retrying while another connection holds the lock: changing the journal
    mode of a new file needs it exclusively, and SQLite answers "database is locked" at once
    instead of waiting on the busy timeout (two processes opening one new file at start-up
    failed this way, rarely)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def transaction(db: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` when the body raises."""
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _ensure_table(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, at REAL)")


def migrate(path: Path, migrations: Sequence[Migration], *, wal: bool = True) -> list[str]:
    """Apply the migrations not yet applied to the file at `path`; returns their names."""
    _check_names(migrations)
    applied_now: list[str] = []
    db = connect(path, wal=wal)
    try:
        with transaction(db):
            _ensure_table(db)
        for name, step in migrations:
            with transaction(db):  # the lock is taken before we look: no double apply
                if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                    continue
                step(db)
                db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
                applied_now.append(name)
    finally:
        db.close()
    return applied_now


def applied(path: Path) -> list[str]:
    """Names of the migrations applied to the file at `path`, in the order they were applied."""
    db = sqlite3.connect(Path(path), timeout=BUSY_TIMEOUT_S)
    try:
        rows = db.execute("SELECT name FROM _migrations ORDER BY at, name").fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


def _check_names(migrations: Sequence[Migration]) -> None:
    names = [name for name, _ in migrations]
    if len(set(names)) != len(names):
        raise ValueError(f"migration names must be unique, got {names}")
