"""Helpers for the engine tests: a tiny Llama on disk, PEFT adapters made on it, settings.

Tiny models are randomly initialised (2 layers, hidden 64) but use the real SmolLM2
tokenizer, so prompts, EOS and multi-byte text behave as in production.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from lora_land.config import Settings
from lora_land.deployment import AdapterSource, BaseSource, Deployment

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def save_tiny_base(target: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with the SmolLM2 tokenizer, saved as safetensors."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(target, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, target / name)
    return target


def make_peft_adapter(
    base_dir: Path,
    target: Path,
    r: int = 8,
    modules: tuple[str, ...] = ("q_proj", "v_proj"),
    seed: int = 1,
    alpha: int = 16,
    use_rslora: bool = False,
) -> Path:
    """A PEFT LoRA adapter with random non-zero A and B, saved as safetensors."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=list(modules),
        init_lora_weights=False,
        task_type="CAUSAL_LM",
        use_rslora=use_rslora,
    )
    model = get_peft_model(base, config)
    with torch.no_grad():  # keep the deltas moderate so logits stay well-conditioned
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.5)
    model.save_pretrained(target, safe_serialization=True)
    return target


def engine_settings(cache_dir: Path, **overrides: object) -> Settings:
    values = {"cache_dir": cache_dir, "device": "cpu", "dtype": "float32"}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def deployment_for(base_dir: Path, adapters: dict[str, Path], pinned: tuple[str, ...] = ()):
    sources = {
        adapter_id: AdapterSource(
            id=adapter_id, task=adapter_id.split("/")[-1], path=path, pinned=adapter_id in pinned
        )
        for adapter_id, path in adapters.items()
    }
    return Deployment(
        name="test", base=BaseSource(name="tiny", source=str(base_dir)), adapters=sources
    )


def make_row(engine, prompt: str, adapter_id: str | None, n: int, adjust=None):
    """A greedy `Row` for `prompt` on the engine's adapter `adapter_id` (None: the base),
    `n` new tokens, EOS ignored; `adjust` sees each step's logits (see `Row.adjust`)."""
    from lora_land.engine.batch import Row

    adapter = None
    if adapter_id:
        adapter = engine.store.acquire(adapter_id, engine.store.prepare(adapter_id)[1])
    return Row(
        prompt_ids=engine._encode(prompt),
        adapter=adapter,
        max_new_tokens=n,
        temperature=0.0,
        top_p=1.0,
        stop=(),
        eos_ids=frozenset(),
        decode=engine._decode,
        adjust=adjust,
    )
