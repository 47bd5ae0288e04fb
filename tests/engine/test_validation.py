"""Each way an adapter can be unservable gives an `AdapterValidationError` naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lora_land.engine.lora import linear_shapes
from lora_land.engine.validation import read_adapter
from lora_land.errors import AdapterValidationError

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


@pytest.fixture(scope="module")
def base_shapes(tiny_base_dir: Path) -> dict:
    from transformers import AutoModelForCausalLM

    return linear_shapes(AutoModelForCausalLM.from_pretrained(tiny_base_dir))


@pytest.fixture
def adapter(tmp_path: Path, tiny_adapters: dict) -> Path:
    target = tmp_path / "adapter"
    shutil.copytree(tiny_adapters["tiny/a"], target)
    return target


def _edit_config(directory: Path, **changes: object) -> None:
    config = json.loads((directory / CONFIG).read_text())
    config.update(changes)
    (directory / CONFIG).write_text(json.dumps(config))


def _edit_weights(directory: Path, edit) -> None:
    tensors = load_file(str(directory / WEIGHTS))
    save_file(edit(tensors), str(directory / WEIGHTS))


def _read(directory: Path, shapes: dict, **kwargs):
    return read_adapter(directory, "tiny/x", shapes, kwargs.pop("max_rank", 64), **kwargs)


def test_a_good_adapter_reads_with_its_scaling(adapter, base_shapes):
    host = _read(adapter, base_shapes)
    assert host.rank == 8 and len(host.tensors) == 4  # q and v in 2 layers
    assert set(host.scalings.values()) == {16 / 8}
    assert host.nbytes == sum(a.nbytes + b.nbytes for a, b in host.tensors.values())


def test_missing_config(adapter, base_shapes):
    (adapter / CONFIG).unlink()
    with pytest.raises(AdapterValidationError, match=r"'tiny/x'.*adapter_config.json not found"):
        _read(adapter, base_shapes)


def test_unreadable_config(adapter, base_shapes):
    (adapter / CONFIG).write_text("{not json")
    with pytest.raises(AdapterValidationError, match="not readable JSON"):
        _read(adapter, base_shapes)


def test_not_a_lora(adapter, base_shapes):
    _edit_config(adapter, peft_type="IA3")
    with pytest.raises(AdapterValidationError, match="peft_type is 'IA3', expected 'LORA'"):
        _read(adapter, base_shapes)


def test_wrong_task_type(adapter, base_shapes):
    _edit_config(adapter, task_type="SEQ_CLS")
    with pytest.raises(AdapterValidationError, match="task_type is 'SEQ_CLS'"):
        _read(adapter, base_shapes)


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("use_dora", True, "DoRA"),
        ("modules_to_save", ["lm_head"], "modules_to_save"),
        ("bias", "all", "bias='all'"),
    ],
)
def test_unsupported_lora_features(adapter, base_shapes, field, value, label):
    _edit_config(adapter, **{field: value})
    with pytest.raises(AdapterValidationError, match=label):
        _read(adapter, base_shapes)


def test_rank_above_the_configured_maximum(adapter, base_shapes):
    with pytest.raises(AdapterValidationError, match="rank 8 exceeds the maximum LoRA rank 4"):
        _read(adapter, base_shapes, max_rank=4)


def test_pickle_weights_are_refused_unless_allowed(adapter, base_shapes):
    tensors = load_file(str(adapter / WEIGHTS))
    torch.save(tensors, adapter / "adapter_model.bin")
    (adapter / WEIGHTS).unlink()
    with pytest.raises(AdapterValidationError, match=r"pickle.*LORA_LAND_ALLOW_PICKLE_ADAPTERS"):
        _read(adapter, base_shapes)
    assert _read(adapter, base_shapes, allow_pickle=True).rank == 8


def test_no_weights_at_all(adapter, base_shapes):
    (adapter / WEIGHTS).unlink()
    with pytest.raises(AdapterValidationError, match=r"no adapter_model\.safetensors"):
        _read(adapter, base_shapes)


def test_corrupt_safetensors(adapter, base_shapes):
    (adapter / WEIGHTS).write_bytes(b"\x00\x01garbage")
    with pytest.raises(AdapterValidationError, match="unreadable"):
        _read(adapter, base_shapes)


def test_target_module_missing_from_the_base(adapter, base_shapes):
    def rename(tensors):
        return {k.replace("q_proj", "qkv_proj"): v for k, v in tensors.items()}

    _edit_weights(adapter, rename)
    with pytest.raises(AdapterValidationError, match=r"layers\.0\.self_attn\.qkv_proj' is not"):
        _read(adapter, base_shapes)


def test_shapes_for_another_base(adapter, base_shapes):
    def widen(tensors):
        return {
            k: torch.zeros(v.shape[0], 576) if "q_proj.lora_A" in k else v
            for k, v in tensors.items()
        }

    _edit_weights(adapter, widen)
    with pytest.raises(AdapterValidationError, match=r"shapes of .*q_proj.*in=64"):
        _read(adapter, base_shapes)


def test_a_without_b(adapter, base_shapes):
    _edit_weights(
        adapter, lambda t: {k: v for k, v in t.items() if "0.self_attn.v_proj.lora_B" not in k}
    )
    with pytest.raises(AdapterValidationError, match="lacks lora_A or lora_B"):
        _read(adapter, base_shapes)


def test_unexpected_tensors(adapter, base_shapes):
    _edit_weights(adapter, lambda t: {**t, "base_model.model.lm_head.weight": torch.zeros(2, 2)})
    with pytest.raises(AdapterValidationError, match="unexpected tensor"):
        _read(adapter, base_shapes)
