"""Training on a tiny random Llama with the real SmolLM2 tokenizer and real sst2 rows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lora_land.evaluation.tasks import load_task
from lora_land.training.examples import batch_schedule, build_examples, collate
from lora_land.training.trainer import TrainConfig, lr_at, train


def _config(base: Path, data: Path, out: Path, **kw) -> TrainConfig:
    defaults = dict(steps=8, lr=1e-2, batch_size=4, max_seq_len=96, checkpoint_every=2)
    return TrainConfig(task="glue_sst2", base=str(base), data=data, out=out, **{**defaults, **kw})


def test_loss_only_counts_target_and_eos(tiny_base: Path, sst2_rows: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    rows = [json.loads(x) for x in sst2_rows.read_text().splitlines()[:2]]
    examples, _ = build_examples(load_task("glue_sst2"), rows, tok, max_seq_len=96)
    batch = collate(examples, pad_id=tok.eos_token_id)
    for b, (e, row) in enumerate(zip(examples, rows, strict=True)):
        predicted = batch["input_ids"][b].roll(-1)[batch["loss_mask"][b]].tolist()
        assert tok.decode(predicted) == row["target"] + tok.eos_token
        assert (
            list(e.ids[: e.n_prompt])
            == tok(load_task("glue_sst2").render(row, allow_blank=True))["input_ids"]
        )


def test_batches_are_deterministic_and_bucketed() -> None:
    lengths = list(range(100))
    a = batch_schedule(100, lengths, 8, 30, seed=1)
    assert a == batch_schedule(100, lengths, 8, 30, seed=1)
    assert all(len(b) == 8 for b in a)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    assert spread < 40  # random batches of 8 from 0..99 would spread about 78


def test_lr_warms_up_then_decays_to_zero() -> None:
    cfg = TrainConfig(task="t", base="b", data=Path("d"), out=Path("o"), steps=100, lr=1.0)
    assert lr_at(0, cfg) < lr_at(2, cfg) == pytest.approx(1.0)
    assert lr_at(50, cfg) == pytest.approx(0.5, abs=0.03)
    assert lr_at(99, cfg) < 0.01


@pytest.mark.slow
def test_training_the_real_model_lowers_loss_and_writes_a_loadable_fp16_adapter(
    embedded_model_dir: Path, sst2_rows: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "adapter"
    result = train(_config(embedded_model_dir, sst2_rows, out, steps=6, lr=1.5e-3))
    assert sum(result.losses[-2:]) / 2 < result.losses[0] - 2.0
    weights = load_file(out / "adapter_model.safetensors")
    assert weights and all(t.dtype == torch.float16 for t in weights.values())
    assert {k.split(".lora_")[0].rsplit(".", 1)[1] for k in weights} == {"q_proj", "v_proj"}
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    card = (out / "README.md").read_text()
    assert "glue_sst2" in card and f"{result.final_loss:.4f}" in card
    assert not (out / "checkpoint").exists()
    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir)
    model = PeftModel.from_pretrained(base, out)
    assert model.peft_config["default"].r == 8


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_adapter(
    tiny_base: Path, sst2_rows: Path, tmp_path: Path
) -> None:
    straight = train(_config(tiny_base, sst2_rows, tmp_path / "a", dropout=0.0))

    def crash_at_step_5(step: int, loss: float) -> None:
        if step == 5:
            raise KeyboardInterrupt

    cfg = _config(tiny_base, sst2_rows, tmp_path / "b", dropout=0.0)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_step=crash_at_step_5)
    assert (tmp_path / "b" / "checkpoint" / "state.json").is_file()
    resumed = train(cfg)
    assert resumed.resumed_from == 4  # last checkpoint before the crash
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-4)
    a = load_file(tmp_path / "a" / "adapter_model.safetensors")
    b = load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-3) for k in a)
    with pytest.raises(KeyboardInterrupt):  # other settings: the checkpoint is not reused
        train(replace(cfg, out=tmp_path / "c"), on_step=crash_at_step_5)
    assert train(replace(cfg, out=tmp_path / "c", lr=5e-3)).resumed_from == 0
