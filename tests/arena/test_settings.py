"""Arena settings come from the environment, with clear errors for bad values."""

from __future__ import annotations

import pytest

from lora_land.config import Settings
from lora_land.errors import ConfigError


def test_arena_settings_are_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LORA_LAND_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LORA_LAND_ARENA_MAX_PROMPT_CHARS", "1234")
    monkeypatch.setenv("LORA_LAND_ARENA_BATTLES_PER_MINUTE", "3")
    monkeypatch.setenv("LORA_LAND_ARENA_MIN_VOTE_S", "2.5")
    monkeypatch.setenv("LORA_LAND_ARENA_READ_CHARS_PER_S", "40")
    s = Settings.from_env()
    assert s.arena_db == tmp_path / "arena.sqlite"
    assert (s.arena_max_prompt_chars, s.arena_battles_per_minute) == (1234, 3)
    assert (s.arena_min_vote_s, s.arena_read_chars_per_s) == (2.5, 40.0)


def test_without_a_data_dir_votes_live_in_the_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("LORA_LAND_DATA_DIR", raising=False)
    monkeypatch.setenv("LORA_LAND_CACHE", str(tmp_path))
    assert Settings.from_env().arena_db == tmp_path / "arena.sqlite"


def test_a_bad_arena_number_names_the_variable(monkeypatch):
    monkeypatch.setenv("LORA_LAND_ARENA_MIN_VOTE_S", "soon")
    with pytest.raises(ConfigError, match="LORA_LAND_ARENA_MIN_VOTE_S must be a number"):
        Settings.from_env()
