"""The committed mini zoo: small rank-8 fp16 adapters with model cards, served by `embedded`."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lora_land.config import Settings
from lora_land.deployment import load_deployment
from lora_land.training.zoo import ZOO_DIR, ZOO_TASKS

TRAINED = sorted(p.name for p in ZOO_DIR.iterdir() if (p / "adapter_config.json").is_file())


def test_zoo_has_at_least_eight_adapters_of_zoo_tasks() -> None:
    assert len(TRAINED) >= 8
    assert set(TRAINED) <= set(ZOO_TASKS)


@pytest.mark.parametrize("task", TRAINED)
def test_zoo_adapter_is_small_fp16_rank8_with_a_card(task: str) -> None:
    directory = ZOO_DIR / task
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["r"] == 8 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    weights_file = directory / "adapter_model.safetensors"
    assert weights_file.stat().st_size < 2_000_000
    assert all(t.dtype == torch.float16 for t in load_file(weights_file).values())
    assert not (directory / "checkpoint").exists()
    card = (directory / "README.md").read_text()
    assert f"`{task}`" in card and "final" in card and "base_model:" in card


def test_embedded_deployment_serves_the_zoo() -> None:
    deployment = load_deployment(Settings.from_env(deployment="embedded"))
    served = {a.task for a in deployment.adapters.values()}
    assert set(TRAINED) <= served
