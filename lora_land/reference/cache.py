"""SQLite cache of GPT-4 reference answers, grown by append-only named migrations.

The schema's migrations are listed here and applied by the shared runner
(`lora_land.migrations`), the same one the arena's vote store uses.

One row per (endpoint, model, prompt, parameters): the same question never costs twice and a
demo replays offline. Rows recorded elsewhere (a JSONL file of `prompt`, `model`, `output`)
are imported under the pseudo-endpoint `RECORDED` and match any endpoint and parameters.

This module only stores and finds answers; it never talks to an endpoint (see `client.py`).
Each call opens its own short connection, so the cache is safe to share between threads.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lora_land import migrations
from lora_land.errors import ConfigError

RECORDED = "recorded"  # pseudo-endpoint of answers imported from a recordings file


def _m001_create_responses(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE responses (
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt TEXT NOT NULL,
            params TEXT NOT NULL,
            output TEXT NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (endpoint, model, prompt, params)
        )"""
    )


def _m002_add_usage(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE responses ADD COLUMN completion_tokens INTEGER")
    db.execute("ALTER TABLE responses ADD COLUMN latency_s REAL")


def _m003_index_model_prompt(db: sqlite3.Connection) -> None:
    db.execute("CREATE INDEX responses_model_prompt ON responses (model, prompt)")


# Append only: never edit or reorder an entry once released; add a new one instead.
MIGRATIONS: list[migrations.Migration] = [
    ("m001_create_responses", _m001_create_responses),
    ("m002_add_usage", _m002_add_usage),
    ("m003_index_model_prompt", _m003_index_model_prompt),
]


@dataclass(frozen=True)
class CachedAnswer:
    output: str
    endpoint: str
    model: str
    completion_tokens: int | None
    latency_s: float | None

    @property
    def recorded(self) -> bool:
        return self.endpoint == RECORDED


def params_key(params: Mapping[str, object]) -> str:
    """Canonical text of request parameters (sorted keys), part of the cache key."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


class ReferenceCache:
    """Answers keyed by (endpoint, model, prompt, params) in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:  # commits on success, rolls back on error
                yield db
        finally:
            db.close()

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied (the shared runner); returns their names."""
        return migrations.migrate(self.path, MIGRATIONS)

    def applied_migrations(self) -> list[str]:
        return migrations.applied(self.path)

    def get(
        self, endpoint: str, model: str, prompt: str, params: Mapping[str, object]
    ) -> CachedAnswer | None:
        """The exact answer for this key, else a recorded answer for (model, prompt)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT output, endpoint, model, completion_tokens, latency_s FROM responses "
                "WHERE endpoint = ? AND model = ? AND prompt = ? AND params = ?",
                (endpoint, model, prompt, params_key(params)),
            ).fetchone()
            if row is None:
                row = self._recorded(db, model, prompt)
        return CachedAnswer(*row) if row else None

    def get_any(self, model: str, prompt: str) -> CachedAnswer | None:
        """The newest answer from any endpoint for (model, prompt): the offline replay."""
        with self._connect() as db:
            row = db.execute(
                "SELECT output, endpoint, model, completion_tokens, latency_s FROM responses "
                "WHERE model = ? AND prompt = ? ORDER BY created DESC LIMIT 1",
                (model, prompt),
            ).fetchone()
        return CachedAnswer(*row) if row else None

    @staticmethod
    def _recorded(db: sqlite3.Connection, model: str, prompt: str) -> tuple | None:
        return db.execute(
            "SELECT output, endpoint, model, completion_tokens, latency_s FROM responses "
            "WHERE endpoint = ? AND model = ? AND prompt = ? LIMIT 1",
            (RECORDED, model, prompt),
        ).fetchone()

    def put(
        self,
        endpoint: str,
        model: str,
        prompt: str,
        params: Mapping[str, object],
        output: str,
        completion_tokens: int | None = None,
        latency_s: float | None = None,
    ) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO responses "
                "(endpoint, model, prompt, params, output, created, completion_tokens, latency_s) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    endpoint,
                    model,
                    prompt,
                    params_key(params),
                    output,
                    time.time(),
                    completion_tokens,
                    latency_s,
                ),
            )

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def import_recordings(self, path: Path, default_model: str) -> int:
        """Load a JSONL of recorded outputs (`prompt`, `output`, optional `model`); returns rows."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"reference recordings file not found: {path}")
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                rows.append((item.get("model") or default_model, item["prompt"], item["output"]))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
                raise ConfigError(
                    f"{path} line {number}: expected a JSON object with 'prompt' and 'output'"
                ) from e
        for model, prompt, output in rows:
            self.put(RECORDED, model, prompt, {}, output)
        return len(rows)
