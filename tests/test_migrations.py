"""The shared migrations runner on real SQLite files: once, in order, atomic, process-safe."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time

import pytest

from lora_land import migrations


def _create(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("CREATE TABLE applied_log (step TEXT)")
    db.execute("INSERT INTO applied_log VALUES ('create')")


def _slow_add_column(db: sqlite3.Connection) -> None:
    time.sleep(0.3)  # long enough for a second process to arrive while this one holds the lock
    db.execute("ALTER TABLE things ADD COLUMN size INTEGER")
    db.execute("INSERT INTO applied_log VALUES ('add')")


def _broken(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE half_done (x INTEGER)")
    raise RuntimeError("step failed half way")


STEPS = [("m001_create", _create), ("m002_add_size", _slow_add_column)]


def _migrate_in_process(path: str, queue) -> None:
    try:
        queue.put(migrations.migrate(path, STEPS))
    except Exception as e:  # report, so the parent can fail with the reason
        queue.put(repr(e))


def test_migrations_apply_once_in_order_and_set_wal(tmp_path):
    path = tmp_path / "db.sqlite"
    assert migrations.migrate(path, STEPS) == ["m001_create", "m002_add_size"]
    assert migrations.migrate(path, STEPS) == []
    assert migrations.applied(path) == ["m001_create", "m002_add_size"]
    db = migrations.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_a_failing_migration_leaves_nothing_half_applied(tmp_path):
    path = tmp_path / "db.sqlite"
    with pytest.raises(RuntimeError, match="half way"):
        migrations.migrate(path, [*STEPS, ("m003_broken", _broken)])
    assert migrations.applied(path) == ["m001_create", "m002_add_size"]
    db = sqlite3.connect(path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half_done" not in tables


def test_two_processes_starting_at_once_apply_each_migration_once(tmp_path):
    path = str(tmp_path / "db.sqlite")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_migrate_in_process, args=(path, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(isinstance(r, list) for r in results), results
    assert sorted(name for r in results for name in r) == ["m001_create", "m002_add_size"]
    db = sqlite3.connect(path)
    assert sorted(r[0] for r in db.execute("SELECT step FROM applied_log")) == ["add", "create"]


def test_duplicate_migration_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        migrations.migrate(tmp_path / "db.sqlite", [STEPS[0], STEPS[0]])
