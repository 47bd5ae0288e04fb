"""Fixtures for training tests: a tiny random Llama with the real tokenizer, real sst2 rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, embedded_model_dir: Path) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(embedded_model_dir)
    config.update(
        {
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
        }
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    out = tmp_path_factory.mktemp("tiny_base")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(embedded_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def sst2_rows(tmp_path_factory, samples_dir: Path) -> Path:
    lines = (samples_dir / "train" / "glue_sst2.jsonl").read_text().splitlines()[:32]
    path = tmp_path_factory.mktemp("data") / "sst2.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
