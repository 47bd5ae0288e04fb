"""Settings come from the environment in one place and never leak the API key."""

from __future__ import annotations

import pytest

from lora_land.config import Settings
from lora_land.errors import ConfigError


def test_from_env_reads_limits_and_cache_budgets_in_bytes(monkeypatch, tmp_path):
    monkeypatch.setenv("LORA_LAND_CACHE", str(tmp_path))
    monkeypatch.setenv("LORA_LAND_DEVICE_CACHE_MB", "3")
    monkeypatch.setenv("LORA_LAND_MAX_QUEUE", "5")
    s = Settings.from_env()
    assert s.cache_dir == tmp_path
    assert s.device_cache_bytes == 3 * 1024 * 1024
    assert s.max_queue == 5
    assert s.reference_db == tmp_path / "reference.sqlite"


def test_bad_integer_names_the_variable(monkeypatch):
    monkeypatch.setenv("LORA_LAND_MAX_QUEUE", "lots")
    with pytest.raises(ConfigError, match=r"LORA_LAND_MAX_QUEUE.*'lots'"):
        Settings.from_env()


def test_bad_quantization_is_refused(monkeypatch):
    monkeypatch.setenv("LORA_LAND_QUANTIZATION", "3bit")
    with pytest.raises(ConfigError, match="4bit or 8bit"):
        Settings.from_env()


def test_api_key_never_appears_in_repr(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    s = Settings.from_env()
    assert s.openai_api_key == "sk-secret-123"
    assert "sk-secret-123" not in repr(s)


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="unknown settings"):
        Settings.from_env(no_such_knob=1)
