"""Fixtures shared by the whole suite.

Real rows come from `../shared/data/samples` (never copied into the repo); the real embedded
model is prepared once into the user cache by `make test` before pytest starts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lora_land.config import PROJECT_ROOT, Settings

# engines the tests start (in process or as the app) serve the eager decode step; the tests
# of the compiled step (tests/engine/test_compiled.py) ask for it
os.environ.setdefault("LORA_LAND_COMPILE", "off")

SHARED = PROJECT_ROOT.parent / "shared"
SAMPLES = SHARED / "data" / "samples"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples not found at {SAMPLES}")
    return SAMPLES


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings as the app builds them (user cache: the embedded model is prepared there)."""
    return Settings.from_env()


@pytest.fixture(scope="session")
def embedded_model_dir(settings: Settings) -> Path:
    """The real SmolLM2-135M-Instruct as safetensors (prepared once, then reused)."""
    from lora_land.engine.prepare import prepare_embedded_model

    return prepare_embedded_model(settings.models_dir)
