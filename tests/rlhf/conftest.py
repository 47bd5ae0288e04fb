"""Fixtures for the loop's tests: the tiny random Llama of the training tests and a pi_0 on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.training.conftest import tiny_base  # noqa: F401  (a fixture)


@pytest.fixture(scope="session")
def tiny_pi0(tmp_path_factory, tiny_base: Path) -> Path:  # noqa: F811
    """A rank-8 LoRA on q_proj/v_proj of the tiny base, saved in the zoo's format."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from lora_land.training.trainer import save_fp16_adapter

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, lora)
    with torch.no_grad():  # a non-trivial pi_0: B is zero after PEFT's default init
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    out = tmp_path_factory.mktemp("pi0") / "glue_sst2"
    save_fp16_adapter(model, out, "tiny/base")
    return out
