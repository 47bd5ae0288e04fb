"""The lean decode step (engine/decoder.py): the same logits as transformers' full forward at
every step, for a lone row and for left-padded rows over mixed adapters joining mid-batch,
with packed and stock projections, on a Llama and on a sliding-window Mistral; and the full
forward wherever it does not serve."""

from __future__ import annotations

import pytest
import torch

from lora_land.engine import decoder as decoder_module
from lora_land.engine.batch import Row, RunningBatch
from lora_land.engine.decoder import full_forward, lean_decoder, supported
from lora_land.engine.engine import Engine
from lora_land.engine.packed import packs
from tests.engine.engine_helpers import deployment_for, engine_settings, make_row
from tests.engine.test_sliding_window import WINDOW, mistral_dir  # noqa: F401  (fixture)

PROMPTS = [
    ("Once upon a time, in a village by the sea, there lived", "tiny/a"),
    ("Say hi", "tiny/b"),
    ("List three colours of the rainbow:", None),
    ("Q: What is 12 plus 30?\nA:", "tiny/c"),
]


def _engine(tmp_path, base_dir, adapters, cpu_linear: str = "auto") -> Engine:
    settings = engine_settings(tmp_path, cpu_linear=cpu_linear)
    engine = Engine.from_settings(settings, deployment_for(base_dir, adapters))
    engine.eos_ids = frozenset()
    return engine


def _row(engine: Engine, prompt: str, adapter_id: str | None, n: int, seen: list) -> Row:
    def record(logits: torch.Tensor, row: Row) -> torch.Tensor:
        seen.append(logits.clone())
        return logits

    return make_row(engine, prompt, adapter_id, n, adjust=record)


def _decode(engine: Engine, prompts: list, steps: int) -> tuple[list, list]:
    """Rows join one after another (the later ones left-padded against the earlier ones);
    returns every row's tokens and the logits each row was sampled from, in order."""
    batch = RunningBatch(engine.model, engine.lora_context, engine.pad_id, engine.device)
    logits: list[list] = [[] for _ in prompts]
    rows = [_row(engine, p, a, steps + 2 * i, logits[i]) for i, (p, a) in enumerate(prompts)]
    for row in rows:
        batch.add([row])
        batch.step()
    while batch.rows:
        batch.step()
    return [r.ids for r in rows], logits


def same_decode(engine: Engine, prompts: list, baseline, steps: int, tol: float) -> int:
    """Decode `prompts` as served, then again within the `baseline` context; the same tokens
    and every step's logits within `tol`. Returns how many logits rows were compared."""
    ours_ids, ours_logits = _decode(engine, prompts, steps)
    with baseline:
        base_ids, base_logits = _decode(engine, prompts, steps)
    assert ours_ids == base_ids
    compared = 0
    for ours, theirs in zip(ours_logits, base_logits, strict=True):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)
            compared += 1
    return compared


def _same_as_full_forward(engine: Engine, prompts: list, steps: int = 6) -> int:
    assert lean_decoder(engine.model) is not None
    with full_forward(engine.model):
        assert lean_decoder(engine.model) is None  # the baseline runs the full forward
    return same_decode(engine, prompts, full_forward(engine.model), steps, tol=1e-5)


@pytest.mark.parametrize("cpu_linear", ["onednn", "aten"])
def test_lean_steps_match_the_full_forward_over_mixed_adapters_and_padding(
    tmp_path, tiny_base_dir, tiny_adapters, cpu_linear
):
    engine = _engine(tmp_path, tiny_base_dir, tiny_adapters, cpu_linear)
    try:
        assert isinstance(lean_decoder(engine.model), decoder_module.LeanDecoder)
        assert bool(packs(engine.model)) == (cpu_linear == "onednn")  # both projection paths
        assert _same_as_full_forward(engine, PROMPTS[:1]) >= 6  # one row: no mask at all
        assert _same_as_full_forward(engine, PROMPTS) >= 4 * 6  # padded, 3 adapters + base
    finally:
        engine.close()


def test_lean_steps_keep_a_sliding_window(tmp_path, mistral_dir):  # noqa: F811
    engine = _engine(tmp_path, mistral_dir, {})
    try:
        decoder = lean_decoder(engine.model)
        assert decoder is not None and decoder.window == WINDOW
        prompts = [(PROMPTS[0][0], None), (PROMPTS[2][0], None)]
        assert _same_as_full_forward(engine, prompts, steps=2 * WINDOW) >= 2 * 2 * WINDOW
        # a step whose rows span more than the window does mask the older columns
        mask = decoder._mask(torch.ones(2, 3 * WINDOW, dtype=torch.long))
        assert mask is not None and mask.shape == (2, 1, 1, 3 * WINDOW)
        assert mask[..., -WINDOW:].all() and not mask[..., : 2 * WINDOW].any()
    finally:
        engine.close()


def test_the_mask_is_dropped_only_when_no_row_is_padded(tmp_path, tiny_base_dir):
    engine = _engine(tmp_path, tiny_base_dir, {})
    try:
        decoder = lean_decoder(engine.model)
        assert decoder._mask(torch.ones(3, 5, dtype=torch.long)) is None
        padded = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
        mask = decoder._mask(padded)
        assert mask.dtype == torch.bool and mask.shape == (2, 1, 1, 5)
        assert mask[0, 0, 0].tolist() == [False, False, True, True, True] and mask[1].all()
    finally:
        engine.close()


def test_models_it_is_not_checked_against_keep_the_full_forward(tiny_base_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir, dtype=torch.float32).eval()
    assert supported(model)
    assert not supported(model.to(torch.bfloat16))  # a bfloat16 model: HF's norm upcasts
    model = model.to(torch.float32)
    model.config.model_type = "qwen2"
    assert not supported(model)
    model.config.model_type = "llama"
    model.train()
    assert not supported(model)
