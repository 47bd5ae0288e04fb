"""The loop end to end on the tiny random Llama: sample, score, pair, DPO, evaluate, install."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lora_land.config import Settings
from lora_land.engine.types import GenerationRequest
from lora_land.errors import UserError
from lora_land.evaluation.bases import resolve_base
from lora_land.rlhf.dpo import DpoSettings
from lora_land.rlhf.loop import LoopConfig, run_loop
from lora_land.rlhf.pairing import read_samples

pytestmark = pytest.mark.slow


class LengthReward:
    """A reward that varies among random answers (the metric on a random model ties)."""

    name = "test:length"

    def score(self, prompts, texts, rows):
        return [float(len(t)) for t in texts]


@pytest.fixture
def config(tiny_base: Path, tiny_pi0: Path, tmp_path: Path) -> LoopConfig:
    return LoopConfig(
        task="glue_sst2",
        adapter=tiny_pi0,
        adapter_id="tiny/glue_sst2",
        run_dir=tmp_path / "run",
        out=tmp_path / "glue_sst2@dpo",
        base=str(tiny_base),
        iterations=2,
        prompts=3,
        k=4,
        max_new_tokens=6,
        eval_limit=3,
        eval_max_new_tokens=4,
        dpo=DpoSettings(lr=5e-2, batch_size=4, max_steps=1),
    )


def test_two_iterations_lower_the_dpo_loss_against_a_fixed_pi0_and_install_an_adapter(
    config: LoopConfig, tiny_base: Path, tiny_pi0: Path
):
    result = run_loop(config, reward=LengthReward())
    assert [r["iteration"] for r in result.curve] == [0, 1, 2]
    first, second = result.curve[1], result.curve[2]
    for record in (first, second):
        assert record["samples"] == 12 and record["prompts"] == 3
        assert record["pairs"] + record["skipped_ties"] == 3 and record["pairs"] >= 1
        assert record["reward_chosen"] > record["reward_rejected"]
        dpo = record["dpo"]
        assert dpo["steps"] == 1
        assert dpo["loss_after"] < dpo["loss_before"]  # one DPO step lowers the DPO loss
        assert record["eval"]["score"]["n"] == 3 and "vs_pi0" in record["eval"]
    # t=1 starts at pi_0 = the reference: the loss is exactly log 2. At t=2 the policy is pi_1
    # but the reference is still pi_0, so the loss starts elsewhere (TRL's default reference
    # for a PEFT model, the current adapter, would give log 2 again).
    assert first["dpo"]["loss_before"] == pytest.approx(math.log(2), abs=1e-4)
    assert abs(second["dpo"]["loss_before"] - math.log(2)) > 1e-3
    assert second["dpo"]["kl_chosen"] != 0

    samples = read_samples(config.run_dir / "iter1" / "samples.jsonl")
    assert sorted({s.temperature for s in samples}) == [0.7, 1.0]
    assert sum(s.temperature == 0.7 for s in samples if s.prompt_index == 0) == 2
    assert len({s.seed for s in samples}) == 12
    fresh = {s.prompt for s in samples}
    assert fresh.isdisjoint(
        {s.prompt for s in read_samples(config.run_dir / "iter2" / "samples.jsonl")}
    )

    out = result.installed
    assert out == config.out
    new, old = (
        load_file(out / "adapter_model.safetensors"),
        load_file(tiny_pi0 / "adapter_model.safetensors"),
    )
    assert {str(v.dtype) for v in new.values()} == {"torch.float16"}
    assert any((new[k].float() - old[k].float()).abs().max() > 0 for k in new if "lora_B" in k)
    card = (out / "README.md").read_text()
    assert "| 0 (pi_0) |" in card and "| 1 | 3 |" in card and "| 2 | 3 |" in card
    summary = json.loads((out / "rlhf_summary.json").read_text())
    assert "row_scores" not in json.dumps(summary)

    # the engine serves the installed adapter as a variant
    from lora_land.engine.engine import Engine
    from lora_land.rlhf.sampling import policy_deployment

    base = resolve_base(str(tiny_base))
    deployment = policy_deployment(base, "glue_sst2", {"dpo": out})
    engine = Engine.from_settings(Settings(), deployment)
    try:
        adapter_id = f"{base.name}/glue_sst2@dpo"
        reply = engine.generate([GenerationRequest("hello", adapter_id, max_new_tokens=3)])[0]
        assert reply.adapter_id == adapter_id and reply.completion_tokens >= 1
    finally:
        engine.close()

    # resuming a finished run retrains nothing and gives the same curve
    before = (config.run_dir / "iter2" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    again = run_loop(config, reward=LengthReward())
    assert again.curve == result.curve
    after = (config.run_dir / "iter2" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    assert before == after


def test_a_run_directory_is_not_resumed_with_other_settings(config: LoopConfig):
    config.run_dir.mkdir(parents=True)
    (config.run_dir / "config.json").write_text(json.dumps({"k": 99}))
    with pytest.raises(UserError, match="other settings"):
        run_loop(config, reward=LengthReward())


def test_too_few_training_rows_for_fresh_slices_is_refused(config: LoopConfig):
    from dataclasses import replace

    with pytest.raises(UserError, match=r"3 iterations x 400 prompts need 1200 training rows"):
        run_loop(replace(config, iterations=3, prompts=400), reward=LengthReward())


def _settings_only(dpo: DpoSettings, **loop) -> LoopConfig:
    """A loop config for fingerprint checks: fixed paths, the given settings."""
    return LoopConfig(
        task="glue_qnli", adapter=Path("a"), adapter_id="a", run_dir=Path("r"), dpo=dpo, **loop
    )


def test_the_dpo_precision_does_not_change_what_a_run_resumes():
    same = _settings_only(DpoSettings(bf16=True)).fingerprint()
    assert same == _settings_only(DpoSettings(bf16=False)).fingerprint()
    assert DpoSettings(bf16=False).use_bf16() is False


def _review_pairs(chosen: str, rejected: str, grow: bool = False) -> list:
    """Four preference pairs on short review prompts (of growing length with `grow`)."""
    from lora_land.rlhf.pairing import Pair

    words = ["fine " * (i + 1 if grow else 1) for i in range(4)]
    return [
        Pair(prompt=f"Review {i}: {w}film. Label:", chosen=chosen, rejected=rejected)
        for i, w in enumerate(words)
    ]


def test_an_sft_term_keeps_the_chosen_answer_likelier_than_plain_dpo(
    tiny_base: Path, tiny_pi0: Path, tmp_path: Path
):
    from lora_land.rlhf.dpo import train_dpo

    pairs = _review_pairs(" positive", " negative")

    def kl_chosen(sft_weight: float) -> float:
        settings = DpoSettings(
            lr=1e-2, batch_size=4, max_steps=1, sft_weight=sft_weight, bf16=False
        )
        out = tmp_path / f"sft{sft_weight}"
        outcome = train_dpo(str(tiny_base), tiny_pi0, tiny_pi0, pairs, out, "t", settings)
        assert outcome.loss_after < outcome.loss_before  # with the SFT term: the combined loss
        return outcome.kl_chosen

    # log pi_t(chosen) - log pi_0(chosen): the SFT term pulls the chosen answer up
    assert kl_chosen(1.0) > kl_chosen(0.0)


def test_the_sft_weight_and_pair_balancing_are_part_of_a_run_only_when_set():
    plain = _settings_only(DpoSettings()).fingerprint()
    assert "sft_weight" not in plain["dpo"] and "balance_pairs" not in plain
    assert _settings_only(DpoSettings(sft_weight=1.0)).fingerprint()["dpo"]["sft_weight"] == 1.0
    balanced = _settings_only(DpoSettings(), balance_pairs=True).fingerprint()
    assert balanced["balance_pairs"] is True
    assert "max_length_ratio" not in plain
    matched = _settings_only(DpoSettings(), max_length_ratio=1.2).fingerprint()
    assert matched["max_length_ratio"] == 1.2
    with pytest.raises(UserError, match="SFT weight must be >= 0"):
        from lora_land.rlhf.dpo import _loss

        _loss(DpoSettings(sft_weight=-1.0))


def test_a_dev_run_measures_on_the_dev_split_never_on_prompts_it_trains_on():
    from lora_land.rlhf.loop import evaluation_rows, training_rows
    from lora_land.training.split import load_split

    dev_config = _settings_only(DpoSettings(), eval_split="dev")
    dev = evaluation_rows(dev_config, "glue_qnli")
    assert dev == load_split("glue_qnli").dev and len(dev) >= 100
    train, _ = training_rows("glue_qnli")
    assert not {json.dumps(r, sort_keys=True) for r in dev} & {
        json.dumps(r, sort_keys=True) for r in train
    }
    evaluation = evaluation_rows(_settings_only(DpoSettings()), "glue_qnli")
    assert len(evaluation) == 50 and evaluation != dev[:50]
    assert (
        len(
            evaluation_rows(
                _settings_only(DpoSettings(), eval_limit=7, eval_split="dev"), "glue_qnli"
            )
        )
        == 7
    )
    # part of what a run resumes only when set (older runs still resume)
    assert dev_config.fingerprint()["eval_split"] == "dev"
    assert "eval_split" not in _settings_only(DpoSettings()).fingerprint()
    with pytest.raises(UserError, match="eval_split must be 'eval' or 'dev'"):
        evaluation_rows(_settings_only(DpoSettings(), eval_split="test"), "glue_qnli")


def test_a_run_keeps_the_precision_pi0_was_measured_in(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from lora_land.config import Settings
    from lora_land.engine import loading
    from lora_land.rlhf.loop import _fixed_precision

    base = SimpleNamespace(source=str(tmp_path))
    settings = Settings.from_env(dtype="auto", device="cpu", cache_dir=tmp_path)
    monkeypatch.setattr(loading, "pick_precision", lambda name, *a: "bf16-weights")
    assert _fixed_precision(settings, base, None).dtype == "bf16-weights"  # resolved once
    resumed = {"iteration": 0, "eval": {"precision": "float32"}}
    assert _fixed_precision(settings, base, resumed).dtype == "float32"  # as pi_0 was


def test_micro_batches_take_the_same_optimizer_step_as_the_whole_batch(
    tiny_base: Path, tiny_pi0: Path, tmp_path: Path
):
    from lora_land.rlhf.dpo import train_dpo

    pairs = _review_pairs(" yes", " no", grow=True)

    def step(micro: int) -> dict:
        settings = DpoSettings(lr=1e-2, batch_size=4, micro_batch=micro, max_steps=1, bf16=False)
        out = tmp_path / f"micro{micro}"
        outcome = train_dpo(str(tiny_base), tiny_pi0, tiny_pi0, pairs, out, "t", settings)
        assert (outcome.steps, outcome.accumulation) == (1, 4 // micro)
        return load_file(out / "adapter_model.safetensors")

    whole, split = step(4), step(2)
    pi0 = load_file(Path(tiny_pi0) / "adapter_model.safetensors")
    assert any(not torch.equal(whole[k], pi0[k]) for k in whole)  # the step moved the adapter
    for key in whole:  # two accumulated halves moved it the same way (fp16 files)
        torch.testing.assert_close(split[key].float(), whole[key].float(), rtol=2e-3, atol=2e-4)
    assert "micro_batch" not in _settings_only(DpoSettings(micro_batch=4)).fingerprint()["dpo"]
    with pytest.raises(UserError, match=r"multiple of the micro-batch \(3\)"):
        train_dpo(
            str(tiny_base), tiny_pi0, tiny_pi0, pairs, tmp_path / "x", "t",
            DpoSettings(batch_size=4, micro_batch=3),
        )  # fmt: skip


def test_the_loops_engine_serves_the_eager_step_whatever_the_environment(
    tiny_base, tiny_pi0, monkeypatch
):
    from lora_land.rlhf.sampling import open_engine, policy_deployment

    monkeypatch.setenv("LORA_LAND_COMPILE", "auto")  # what the app would do
    settings = Settings.from_env()
    assert settings.compile == "auto"
    deployment = policy_deployment(resolve_base(str(tiny_base)), "glue_sst2", {"pi0": tiny_pi0})
    engine = open_engine(settings, deployment)
    try:  # it samples in batches of 16: a compile for one or two rows would be wasted
        assert engine.settings.compile == "off"
        assert engine.wait_compiled() == "eager"
    finally:
        engine.close()


def test_records_report_intervals_over_inputs_whatever_they_were_measured_with():
    # a record written before rows were grouped: its row scores give the grouped intervals
    from lora_land.evaluation.stats import bootstrap_mean, paired_difference
    from lora_land.rlhf.loop import with_intervals

    pi0 = [0.2, 0.2, 0.2, 0.5, 0.4, 0.6]
    pi1 = [0.6, 0.6, 0.6, 0.5, 0.3, 0.6]
    groups = [0, 0, 0, 3, 4, 5]  # the first three rows share one input
    stale = {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 6}  # rows resampled
    record = {"iteration": 1, "eval": {"row_scores": pi1, "score": stale, "vs_pi0": stale}}
    fresh = with_intervals(record, pi0, groups, seed=0)
    assert fresh["eval"]["score"] == bootstrap_mean(pi1, groups=groups).as_dict()
    diff = paired_difference(pi1, pi0, groups=groups)
    assert fresh["eval"]["vs_pi0"] == diff.as_dict() and diff.inputs == 4
    assert diff.low < paired_difference(pi1, pi0).low  # fewer independent units: wider
    assert record["eval"]["score"] is stale  # the record read is not changed in place
    baseline = with_intervals({"iteration": 0, "eval": {"row_scores": pi0}}, pi0, groups, 0)
    assert "vs_pi0" not in baseline["eval"] and baseline["eval"]["score"]["inputs"] == 4
