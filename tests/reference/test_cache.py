"""ReferenceCache on a real SQLite file: migrations, keys, recordings."""

from __future__ import annotations

import sqlite3

import pytest

from lora_land.errors import ConfigError
from lora_land.reference.cache import MIGRATIONS, ReferenceCache


def test_migrations_apply_once_in_order(tmp_path):
    cache = ReferenceCache(tmp_path / "c.sqlite")
    assert cache.applied_migrations() == [name for name, _ in MIGRATIONS]
    assert cache.migrate() == []  # nothing left to apply


def test_a_database_from_the_first_migration_is_upgraded(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, at REAL)")
    MIGRATIONS[0][1](db)
    db.execute("INSERT INTO _migrations VALUES (?, 0)", (MIGRATIONS[0][0],))
    db.execute("INSERT INTO responses VALUES ('e', 'm', 'p', '{}', 'old answer', 0)")
    db.commit()
    db.close()
    cache = ReferenceCache(path)
    assert cache.get("e", "m", "p", {}).output == "old answer"
    assert len(cache.applied_migrations()) == len(MIGRATIONS)


def test_key_is_endpoint_model_prompt_and_parameters(tmp_path):
    cache = ReferenceCache(tmp_path / "c.sqlite")
    cache.put("e1", "gpt-4", "p", {"temperature": 0, "max_tokens": 256}, "answer", 1, 0.5)
    assert cache.get("e1", "gpt-4", "p", {"max_tokens": 256, "temperature": 0}).output == "answer"
    assert cache.get("e2", "gpt-4", "p", {"temperature": 0, "max_tokens": 256}) is None
    assert cache.get("e1", "gpt-3.5", "p", {"temperature": 0, "max_tokens": 256}) is None
    assert cache.get("e1", "gpt-4", "p", {"temperature": 0, "max_tokens": 16}) is None
    assert cache.get_any("gpt-4", "p").output == "answer"


def test_recordings_match_any_endpoint_and_bad_lines_name_the_line(tmp_path):
    cache = ReferenceCache(tmp_path / "c.sqlite")
    good = tmp_path / "r.jsonl"
    good.write_text('{"prompt": "p", "output": "o"}\n\n')
    assert cache.import_recordings(good, "gpt-4") == 1
    hit = cache.get("anywhere", "gpt-4", "p", {"temperature": 0})
    assert hit.output == "o" and hit.recorded
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "output": "o"}\n{"prompt": "no output"}\n')
    with pytest.raises(ConfigError, match="line 2"):
        cache.import_recordings(bad, "gpt-4")
    with pytest.raises(ConfigError, match="not found"):
        cache.import_recordings(tmp_path / "missing.jsonl", "gpt-4")
