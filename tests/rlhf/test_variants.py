"""Committed DPO variants (`assets/adapters/<task>@dpo/`): small fp16 adapters with an
iteration table, served by the embedded deployment beside their supervised adapter."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from lora_land.config import Settings
from lora_land.deployment import load_deployment, split_variant
from lora_land.rlhf.card import SUMMARY_FILE
from lora_land.training.zoo import ZOO_DIR

VARIANTS = sorted(
    p.name for p in ZOO_DIR.glob("*@*") if (p / "adapter_config.json").is_file()
)  # empty until the loop's adapters are committed


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_is_a_small_fp16_adapter_with_its_iteration_table(name: str) -> None:
    directory = ZOO_DIR / name
    task, _ = split_variant(name)
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    weights = directory / "adapter_model.safetensors"
    assert weights.stat().st_size < 4_000_000  # "small": rank <= 16, fp16, about 1-4 MB
    assert all(t.dtype == torch.float16 for t in load_file(weights).values())
    summary = json.loads((directory / SUMMARY_FILE).read_text())
    assert summary["task"] == task and len(summary["curve"]) == summary["iterations"] + 1
    card = (directory / "README.md").read_text()
    assert "| 0 (pi_0) |" in card and f"`{task}`" in card
    diff = summary["curve"][-1]["eval"]["vs_pi0"]
    verdict = "better" if diff["low"] > 0 else "worse" if diff["high"] < 0 else "no difference"
    assert f"Result: pi_{summary['iterations']} vs pi_0: {diff['mean']:+.3f}" in card
    assert verdict in card.split("Result:")[1].splitlines()[0]
    if summary["config"].get("max_length_ratio"):
        assert f"within {summary['config']['max_length_ratio']}x the best one's length" in card
    if summary.get("chosen_on_dev"):  # `--eval-on choose` runs (earlier cards say it by hand)
        assert f"pi_{summary['chosen_on_dev']['chosen']} was best there" in card


@pytest.mark.parametrize("name", VARIANTS)
def test_embedded_deployment_serves_the_variant_with_its_task(name: str) -> None:
    deployment = load_deployment(Settings.from_env(deployment="embedded"))
    source = deployment.resolve(f"smollm2-135m-instruct/{name}")
    assert (source.task, source.variant) == split_variant(name)


def test_written_adapters_are_readable_by_the_user_that_serves_them(tiny_pi0) -> None:
    # safetensors 0.8 writes 0600 files; a server running as another user must read them, as
    # far as the umask the adapter was written under allows (the same as its config's)
    umask = os.umask(0)
    os.umask(umask)
    mode = (tiny_pi0 / "adapter_model.safetensors").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask == (tiny_pi0 / "adapter_config.json").stat().st_mode & 0o777


@pytest.mark.parametrize("name", VARIANTS)
def test_a_variants_intervals_resample_inputs_where_rows_share_them(name, samples_dir) -> None:
    # e2e_nlg's and viggo's evaluation rows repeat a meaning representation with several
    # references: a greedy policy answers it once, so its rows are one unit, not several
    from lora_land.evaluation.tasks import load_task, read_rows

    task_name, _ = split_variant(name)
    task = load_task(task_name)
    rows = read_rows(samples_dir / f"{task_name}.jsonl")
    distinct = len({task.render_eval(r) for r in rows})
    summary = json.loads((ZOO_DIR / name / SUMMARY_FILE).read_text())
    last = summary["curve"][-1]["eval"]
    if distinct == len(rows):
        assert "inputs" not in last["score"]
        return
    assert last["score"]["inputs"] == last["vs_pi0"]["inputs"] == distinct
    assert summary["curve"][0]["eval"]["score"]["inputs"] == distinct
    card = (ZOO_DIR / name / "README.md").read_text()
    assert f"n={len(rows)} rows, {distinct} distinct inputs" in card
