"""The engine's multi-LoRA layers compute what PEFT computes, row by row, in one batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lora_land.engine.engine import Engine
from lora_land.engine.types import GenerationRequest
from tests.engine.engine_helpers import deployment_for, engine_settings

PROMPTS = [
    "Classify the sentiment: the film was a delight.",
    "Translate to French: good morning",
    "Q: What is 12 plus 30?\nA:",
]


def _peft_model(base_dir: Path, adapters: dict[str, Path]):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    names = list(adapters)
    model = PeftModel.from_pretrained(base, adapters[names[0]], adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(adapters[name], adapter_name=name)
    return model.eval()


def _last_logits(model, tokenizer, prompt: str) -> torch.Tensor:
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return model(input_ids=ids).logits[0, -1].float()


def _greedy(model, tokenizer, prompt: str, n: int) -> list[int]:
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=2
        )
    return out[0, ids.shape[1] :].tolist()


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_base_dir, tiny_adapters):
    settings = engine_settings(tmp_path_factory.mktemp("cache"))
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    yield engine
    engine.close()


def test_mixed_batch_logits_match_peft_per_row(engine, tiny_base_dir, tiny_adapters):
    peft = _peft_model(tiny_base_dir, tiny_adapters)
    rows = [
        ("tiny/a", PROMPTS[0]),
        ("tiny/b", PROMPTS[1]),
        (None, PROMPTS[2]),
        ("tiny/c", PROMPTS[2]),
        ("tiny/a", PROMPTS[1]),
    ]
    got = engine.logits([p for _, p in rows], [a for a, _ in rows])
    for i, (adapter, prompt) in enumerate(rows):
        if adapter is None:
            with peft.disable_adapter():
                want = _last_logits(peft, engine.tokenizer, prompt)
        else:
            peft.set_adapter(adapter)
            want = _last_logits(peft, engine.tokenizer, prompt)
        torch.testing.assert_close(got[i], want, atol=1e-4, rtol=1e-4)


def test_adapters_change_the_logits(engine):
    got = engine.logits([PROMPTS[0]] * 2, ["tiny/a", None])
    assert (got[0] - got[1]).abs().max() > 1e-2


def test_greedy_tokens_match_peft_in_a_mixed_batch(engine, tiny_base_dir, tiny_adapters):
    peft = _peft_model(tiny_base_dir, tiny_adapters)
    rows = [("tiny/a", PROMPTS[0]), ("tiny/b", PROMPTS[1]), (None, PROMPTS[2])]
    requests = [GenerationRequest(p, a, max_new_tokens=12) for a, p in rows]
    results = engine.generate(requests)
    for (adapter, prompt), result in zip(rows, results, strict=True):
        if adapter is None:
            with peft.disable_adapter():
                want = _greedy(peft, engine.tokenizer, prompt, 12)
        else:
            peft.set_adapter(adapter)
            want = _greedy(peft, engine.tokenizer, prompt, 12)
        eos = want.index(2) if 2 in want else len(want)
        assert engine.tokenizer.decode(want[:eos]) == result.text
        assert result.completion_tokens == eos


def test_no_adapter_matches_plain_transformers(engine, tiny_base_dir):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_base_dir, dtype=torch.float32).eval()
    got = engine.logits(PROMPTS, [None, None, None])
    for i, prompt in enumerate(PROMPTS):
        torch.testing.assert_close(
            got[i], _last_logits(plain, engine.tokenizer, prompt), atol=1e-4, rtol=1e-4
        )
    result = engine.generate([GenerationRequest(PROMPTS[0], max_new_tokens=10)])[0]
    want = _greedy(plain, engine.tokenizer, PROMPTS[0], 10)
    eos = want.index(2) if 2 in want else len(want)
    assert result.text == engine.tokenizer.decode(want[:eos])
