"""The committed mini zoo: small fp16 adapters (rank <= 16) with model cards, served by `embedded`.

v2 adapters (shipped by `lora_land.training.ship`) must also record which split chose them and
which measured them, with a lift whose interval lies above zero. Variant directories
(`<task>@<variant>`) belong to another tool and are left to its tests."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lora_land.config import Settings
from lora_land.deployment import load_deployment
from lora_land.training.model_card import read_summary
from lora_land.training.recipes import QUEUE_ORDER
from lora_land.training.zoo import ZOO_DIR

TRAINED = sorted(
    p.name for p in ZOO_DIR.iterdir() if (p / "adapter_config.json").is_file() and "@" not in p.name
)
V2 = [t for t in TRAINED if "zoo" in read_summary(ZOO_DIR / t)]


def test_zoo_adapters_are_of_tasks_with_training_rows() -> None:
    assert TRAINED
    assert set(TRAINED) <= set(QUEUE_ORDER)


@pytest.mark.parametrize("task", TRAINED)
def test_zoo_adapter_is_small_fp16_rank16_at_most_with_a_card(task: str) -> None:
    directory = ZOO_DIR / task
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["r"] <= 16 and {"q_proj", "v_proj"} <= set(config["target_modules"])
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    weights_file = directory / "adapter_model.safetensors"
    assert weights_file.stat().st_size < 4_200_000
    assert all(t.dtype == torch.float16 for t in load_file(weights_file).values())
    assert not (directory / "checkpoint").exists()
    card = (directory / "README.md").read_text()
    assert f"`{task}`" in card and "final" in card and "base_model:" in card


def test_embedded_deployment_serves_the_zoo() -> None:
    deployment = load_deployment(Settings.from_env(deployment="embedded"))
    served = {a.task for a in deployment.adapters.values()}
    assert set(TRAINED) <= served


@pytest.mark.parametrize("task", V2)
def test_v2_adapter_was_chosen_on_dev_and_measured_once_with_a_lift_above_zero(task: str) -> None:
    z = read_summary(ZOO_DIR / task)["zoo"]
    assert z["chosen_on"]["part"] == "dev" and z["measured_on"]["part"] == "eval"
    assert z["chosen_on"]["data"] != z["measured_on"]["data"]
    assert z["eval"]["lift"]["low"] > 0
    if "second" in z["eval"] and task in ("conllpp", "bc5cdr", "e2e_nlg", "viggo", "webnlg"):
        assert z["eval"]["second"]["lift"]["low"] > 0
    assert "Chosen on the **dev** split" in (ZOO_DIR / task / "README.md").read_text()


@pytest.mark.parametrize("task", V2)
def test_v2_evaluation_intervals_resample_inputs_where_rows_share_them(task, samples_dir) -> None:
    # e2e_nlg's 50 evaluation rows are 14 meaning representations with several references
    from lora_land.evaluation.tasks import load_task, read_rows

    rows = read_rows(samples_dir / f"{task}.jsonl")
    distinct = len({load_task(task).render_eval(r) for r in rows})
    ev = read_summary(ZOO_DIR / task)["zoo"]["eval"]
    for ci in (ev["base"], ev["adapter"], ev["lift"], *(ev.get("second") or {}).values()):
        if isinstance(ci, dict):
            assert ci.get("inputs") == (distinct if distinct < len(rows) else None)
    if distinct < len(rows):
        card = (ZOO_DIR / task / "README.md").read_text()
        assert f"| {len(rows)} ({distinct} inputs) |" in card
