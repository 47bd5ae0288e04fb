"""Fixtures for the engine tests: a tiny base on disk and a few PEFT adapters for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.engine_helpers import make_peft_adapter, save_tiny_base


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    return save_tiny_base(tmp_path_factory.mktemp("tiny_base"), embedded_model_dir)


@pytest.fixture(scope="session")
def tiny_adapters(tmp_path_factory: pytest.TempPathFactory, tiny_base_dir: Path) -> dict:
    """Three adapters: rank 8 on q/v, rank 4 on q/k/v/o (rsLoRA), rank 16 on the MLP."""
    root = tmp_path_factory.mktemp("tiny_adapters")
    return {
        "tiny/a": make_peft_adapter(tiny_base_dir, root / "a", r=8, seed=1),
        "tiny/b": make_peft_adapter(
            tiny_base_dir,
            root / "b",
            r=4,
            modules=("q_proj", "k_proj", "v_proj", "o_proj"),
            seed=2,
            use_rslora=True,
        ),
        "tiny/c": make_peft_adapter(
            tiny_base_dir,
            root / "c",
            r=16,
            modules=("gate_proj", "up_proj", "down_proj"),
            seed=3,
            alpha=8,
        ),
    }
