"""The real embedded SmolLM2-135M-Instruct: the engine agrees with PEFT and transformers."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lora_land.deployment import AdapterSource, BaseSource, Deployment, load_deployment
from lora_land.engine.engine import Engine
from lora_land.engine.types import GenerationRequest
from tests.engine.engine_helpers import make_peft_adapter

pytestmark = pytest.mark.slow

PROMPTS = [
    "Is this review positive or negative? 'A joyless, plodding film.'\nAnswer:",
    "The capital of France is",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory, settings, embedded_model_dir):
    adapter_dir = make_peft_adapter(
        embedded_model_dir, tmp_path_factory.mktemp("real") / "a", r=8, seed=11, alpha=16
    )
    deployment = Deployment(
        name="t",
        base=BaseSource(name="smollm2-135m-instruct", source="embedded"),
        adapters={
            "smollm2-135m-instruct/a": AdapterSource(
                id="smollm2-135m-instruct/a", task="a", path=adapter_dir
            )
        },
    )
    engine = Engine.from_settings(replace(settings, device="cpu", dtype="float32"), deployment)
    yield engine, adapter_dir
    engine.close()


def test_embedded_engine_matches_peft_and_plain_transformers(served, embedded_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    engine, adapter_dir = served
    assert engine.context_length == 8192 and engine.eos_ids == frozenset({2})
    got = engine.logits([PROMPTS[0], PROMPTS[1]], ["smollm2-135m-instruct/a", None])
    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32).eval()
    peft = PeftModel.from_pretrained(base, adapter_dir).eval()

    def last(prompt):
        ids = engine.tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            return peft(input_ids=ids).logits[0, -1]

    torch.testing.assert_close(got[0], last(PROMPTS[0]), atol=2e-4, rtol=1e-4)
    with peft.disable_adapter():
        torch.testing.assert_close(got[1], last(PROMPTS[1]), atol=2e-4, rtol=1e-4)
        ids = engine.tokenizer(PROMPTS[1], return_tensors="pt")["input_ids"]
        want = peft.generate(input_ids=ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1] :]
    result = engine.generate([GenerationRequest(PROMPTS[1], max_new_tokens=8)])[0]
    assert result.text == engine.tokenizer.decode(want.tolist(), skip_special_tokens=True)
    ids = engine.tokenizer(PROMPTS[0], return_tensors="pt")["input_ids"]
    want = peft.generate(input_ids=ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1] :]
    result = engine.generate(
        [GenerationRequest(PROMPTS[0], "smollm2-135m-instruct/a", max_new_tokens=8)]
    )[0]
    assert result.text == engine.tokenizer.decode(want.tolist(), skip_special_tokens=True)


def test_the_embedded_deployment_starts_with_no_adapters(settings, tmp_path):
    empty = replace(settings, adapters_dir_override=tmp_path, device="cpu")
    deployment = load_deployment(empty)
    assert deployment.adapters == {}
    engine = Engine.from_settings(empty, deployment)
    try:
        assert engine.served_adapters() == [] and engine.stats().resident == []
        result = engine.generate([GenerationRequest("Hello", max_new_tokens=3)])[0]
        assert result.adapter_state == "base" and result.completion_tokens >= 1
    finally:
        engine.close()
