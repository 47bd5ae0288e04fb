"""Continuous batching on a sliding-window base (a tiny, randomly initialised Mistral whose
window is shorter than its prompts): rows joining mid-batch get exactly the tokens
transformers' own `generate` (with its sliding-window cache) gives each prompt alone."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import torch

from lora_land.engine.batch import can_merge_rows
from lora_land.engine.engine import Engine
from lora_land.engine.types import GenerationRequest
from tests.engine.engine_helpers import TOKENIZER_FILES, deployment_for, engine_settings

WINDOW = 4
PROMPTS = [
    "Write a short story about a lighthouse keeper and the sea:",
    "List three colours of the rainbow, then explain why the sky is blue:",
    "Q: What is 12 plus 30? Think step by step before answering.\nA:",
]


@pytest.fixture(scope="module")
def mistral_dir(tmp_path_factory, embedded_model_dir: Path) -> Path:
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        sliding_window=WINDOW,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    target = tmp_path_factory.mktemp("tiny_mistral")
    MistralForCausalLM(config).save_pretrained(target, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (embedded_model_dir / name).is_file():
            shutil.copy(embedded_model_dir / name, target / name)
    return target


@pytest.fixture(scope="module")
def engine(tmp_path_factory, mistral_dir):
    settings = engine_settings(tmp_path_factory.mktemp("sw"), max_batch_size=4)
    engine = Engine.from_settings(settings, deployment_for(mistral_dir, {}))
    engine.eos_ids = frozenset()
    yield engine
    engine.close()


def _hf_greedy(model_dir: Path, tokenizer, prompt: str, n: int) -> str:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    assert ids.shape[1] > 2 * WINDOW  # the window really cuts the context
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=2
        )
    return tokenizer.decode(out[0, ids.shape[1] :])


def test_a_sliding_window_base_takes_rows_mid_batch(engine):
    assert can_merge_rows(engine.model)
    assert engine.continuous


def test_rows_joining_mid_batch_match_generate_alone(engine, mistral_dir):
    n = 16
    chunks: dict[int, list] = {i: [] for i in range(len(PROMPTS))}
    first = [threading.Event() for _ in PROMPTS]

    def read(i: int, stream) -> None:
        for chunk in stream:
            chunks[i].append(chunk)
            first[i].set()

    threads = []
    for i, prompt in enumerate(PROMPTS):  # each joins once the previous one streams
        stream = engine.stream(GenerationRequest(prompt, max_new_tokens=n + 4 * i))
        thread = threading.Thread(target=read, args=(i, stream), daemon=True)
        thread.start()
        threads.append(thread)
        assert first[i].wait(30)
    for thread in threads:
        thread.join(60)
    assert engine.runner.joins >= 1
    for i, prompt in enumerate(PROMPTS):
        got = chunks[i][-1].result.text
        assert got == _hf_greedy(mistral_dir, engine.tokenizer, prompt, n + 4 * i)
