"""The vote store: one SQLite file of arena votes that never loses a committed vote.

Each vote keeps the timestamp, task, prompt, both contestants' full specs (base, adapter,
parameters, seed), both outputs, the vote, the counted outcome, the revealed names and metric
scores, how long the voter took, a flag when the vote is left out of ratings, and a salted
hash of the voter's session (no personal data). One vote per battle: the battle id is unique.

The schema grows by append-only named migrations applied by `lora_land.migrations`; the file
is in WAL mode with synchronous=NORMAL and a busy timeout, so many threads and processes can
vote at once. Each thread keeps its own connection. This module stores and reads; it does
not decide what a vote means (see `battles.py`) or rate anyone (see `ratings.py`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lora_land import migrations
from lora_land.errors import UserError

VoteKind = Literal["left", "right", "tie", "both_bad"]
Outcome = Literal["left", "right", "tie"]
VOTE_KINDS: tuple[str, ...] = ("left", "right", "tie", "both_bad")


class AlreadyVotedError(UserError):
    """This battle already has its vote."""


def _m001_create_votes(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE votes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            battle_id TEXT NOT NULL UNIQUE,
            created REAL NOT NULL,
            task TEXT NOT NULL,
            prompt TEXT NOT NULL,
            left_id TEXT NOT NULL,
            right_id TEXT NOT NULL,
            left_spec TEXT NOT NULL,
            right_spec TEXT NOT NULL,
            left_output TEXT NOT NULL,
            right_output TEXT NOT NULL,
            vote TEXT NOT NULL CHECK (vote IN ('left', 'right', 'tie', 'both_bad')),
            outcome TEXT NOT NULL CHECK (outcome IN ('left', 'right', 'tie')),
            flag TEXT,
            read_s REAL,
            left_score REAL,
            right_score REAL,
            session_hash TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX votes_task ON votes (task)")


def _m002_create_meta(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('session_salt', ?)", (secrets.token_hex(16),))


# Append only: never edit or reorder an entry once released; add a new one instead.
MIGRATIONS: list[migrations.Migration] = [
    ("m001_create_votes", _m001_create_votes),
    ("m002_create_meta", _m002_create_meta),
]

_COLUMNS = (
    "battle_id, created, task, prompt, left_id, right_id, left_spec, right_spec, left_output, "
    "right_output, vote, outcome, flag, read_s, left_score, right_score, session_hash"
)


@dataclass(frozen=True)
class Vote:
    battle_id: str
    task: str
    prompt: str
    left: Mapping[str, Any]  # the contestant's spec; "id" is its rating key
    right: Mapping[str, Any]
    left_output: str
    right_output: str
    vote: VoteKind
    outcome: Outcome  # what ratings count: both_bad and identical outputs count as a tie
    session_hash: str
    flag: str | None = None  # why the vote is left out of ratings (None: counted)
    read_s: float | None = None  # seconds from both outputs done to the vote
    left_score: float | None = None
    right_score: float | None = None
    created: float = field(default_factory=time.time)
    id: int | None = None  # set once stored

    @property
    def counted(self) -> bool:
        return self.flag is None


class VoteStore:
    """Arena votes in one SQLite file (thread-safe; one connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        migrations.migrate(self.path, MIGRATIONS)
        self._local = threading.local()
        self._salt = self._db().execute("SELECT value FROM meta WHERE key = 'session_salt'")
        self._salt = self._salt.fetchone()[0]

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = migrations.connect(self.path)
        return db

    def session_hash(self, session_token: str) -> str:
        """A salted hash of a session token: stable per session, meaningless elsewhere."""
        return hashlib.sha256(f"{self._salt}:{session_token}".encode()).hexdigest()[:24]

    def record(self, vote: Vote) -> int:
        """Store a vote (committed on return); `AlreadyVotedError` if the battle has one."""
        values = (
            vote.battle_id,
            vote.created,
            vote.task,
            vote.prompt,
            vote.left["id"],
            vote.right["id"],
            json.dumps(dict(vote.left), sort_keys=True),
            json.dumps(dict(vote.right), sort_keys=True),
            vote.left_output,
            vote.right_output,
            vote.vote,
            vote.outcome,
            vote.flag,
            vote.read_s,
            vote.left_score,
            vote.right_score,
            vote.session_hash,
        )
        db = self._db()
        try:
            with migrations.transaction(db):
                cursor = db.execute(
                    f"INSERT INTO votes ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})",
                    values,
                )
        except sqlite3.IntegrityError as e:
            if "battle_id" in str(e):
                raise AlreadyVotedError("this battle already has a vote; start a new one") from e
            raise
        return int(cursor.lastrowid)

    def votes(self, task: str | None = None, counted_only: bool = False) -> list[Vote]:
        """Stored votes, oldest first (one task or all; all or only those ratings count)."""
        where, args = [], []
        if task is not None:
            where.append("task = ?")
            args.append(task)
        if counted_only:
            where.append("flag IS NULL")
        sql = f"SELECT id, {_COLUMNS} FROM votes"
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._db().execute(sql + " ORDER BY id", args).fetchall()
        return [_vote(row) for row in rows]

    def battles(self, task: str | None = None) -> list[tuple[str, str, str]]:
        """(left id, right id, outcome) of the counted votes: what ratings are fitted on."""
        sql = "SELECT left_id, right_id, outcome FROM votes WHERE flag IS NULL"
        args: tuple = ()
        if task is not None:
            sql, args = sql + " AND task = ?", (task,)
        return [tuple(r) for r in self._db().execute(sql, args).fetchall()]

    def count(self, task: str | None = None) -> int:
        if task is None:
            return int(self._db().execute("SELECT COUNT(*) FROM votes").fetchone()[0])
        sql = "SELECT COUNT(*) FROM votes WHERE task = ?"
        return int(self._db().execute(sql, (task,)).fetchone()[0])

    def votes_since(self, session_hash: str, since: float) -> int:
        """Votes of one session since a time (for the per-session rate limit)."""
        sql = "SELECT COUNT(*) FROM votes WHERE session_hash = ? AND created >= ?"
        return int(self._db().execute(sql, (session_hash, since)).fetchone()[0])

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _vote(row: tuple) -> Vote:
    (vid, battle, created, task, prompt, _, _, left, right, lo, ro, vote, outcome, flag) = row[:14]
    read_s, left_score, right_score, session = row[14:]
    return Vote(
        battle_id=battle,
        task=task,
        prompt=prompt,
        left=json.loads(left),
        right=json.loads(right),
        left_output=lo,
        right_output=ro,
        vote=vote,
        outcome=outcome,
        session_hash=session,
        flag=flag,
        read_s=read_s,
        left_score=left_score,
        right_score=right_score,
        created=created,
        id=vid,
    )
