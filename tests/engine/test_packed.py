"""Sibling projections read as one matrix (engine/packed.py): same outputs, same parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from lora_land.engine.cpu_linear import (
    OneDnnBf16Linear,
    OneDnnLinear,
    aten_linears,
    onednn_available,
    use_onednn_bf16_linears,
    use_onednn_linears,
)
from lora_land.engine.dtype_choice import cpu_supports_bf16
from lora_land.engine.packed import PackedLinear, pack_siblings, packs, unpacked

pytestmark = pytest.mark.skipif(not onednn_available(), reason="PyTorch built without oneDNN")
needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")


def _tiny(tiny_base_dir, swap) -> nn.Module:
    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir, dtype=torch.float32).eval()
    swap(model)
    return model


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids).logits


IDS = [torch.tensor([[5, 17, 42, 8, 99, 3, 64]]), torch.tensor([[7]]), torch.randint(0, 90, (3, 5))]


@pytest.mark.parametrize("ids", IDS, ids=["prefill", "one-token", "batch"])
def test_float32_packing_gives_the_same_logits_and_shares_the_weights(tiny_base_dir, ids):
    model = _tiny(tiny_base_dir, use_onednn_linears)
    keys = list(model.state_dict())
    expected = _logits(model, ids)
    layers = len(model.model.layers)
    assert pack_siblings(model) == 2 * layers  # q/k/v and gate/up in every block
    attn = model.model.layers[0].self_attn
    assert type(attn.k_proj) is PackedLinear and type(attn.o_proj) is OneDnnLinear
    pack = attn.q_proj._pack
    assert pack.out_features == sum(m.out_features for m in (attn.q_proj, attn.k_proj, attn.v_proj))
    # the members' weights are row views of the packed matrix: no second float32 copy
    assert attn.k_proj.weight.data_ptr() == pack.weight[attn.q_proj.out_features :].data_ptr()
    assert list(model.state_dict()) == keys
    torch.testing.assert_close(_logits(model, ids), expected, rtol=1e-5, atol=1e-5)
    assert all(p._input is None for p in packs(model))  # every kept output was read and let go


@needs_bf16
def test_bf16_packing_matches_the_members_own_bf16_products(tiny_base_dir):
    model = _tiny(tiny_base_dir, use_onednn_bf16_linears)
    ids = IDS[0]
    expected = _logits(model, ids)
    pack_siblings(model)
    mlp = model.model.layers[0].mlp
    assert type(mlp.gate_proj) is PackedLinear and mlp.gate_proj._pack.bf16
    assert "_packed" not in mlp.gate_proj.__dict__  # the group's bf16 copy replaced its own
    assert type(mlp.down_proj) is OneDnnBf16Linear
    torch.testing.assert_close(_logits(model, ids), expected, rtol=1e-4, atol=1e-4)
    with unpacked(model) as n:  # the benchmark's baseline: each member on its own again
        assert n == 5 * len(model.model.layers) and type(mlp.gate_proj) is OneDnnBf16Linear
        torch.testing.assert_close(_logits(model, ids), expected, rtol=1e-4, atol=1e-4)
    assert type(mlp.gate_proj) is PackedLinear


def test_a_member_called_with_another_input_computes_for_that_input(tiny_base_dir):
    model = _tiny(tiny_base_dir, use_onednn_linears)
    attn = model.model.layers[0].self_attn
    width = attn.q_proj.in_features
    x1, x2 = torch.randn(1, 2, width), torch.randn(1, 2, width)
    with torch.inference_mode():
        want_q, want_k = attn.q_proj(x1), attn.k_proj(x2)
        pack_siblings(model)
        got_q = attn.q_proj(x1).clone()
        got_k = attn.k_proj(x2)  # not the output kept for x1
        again_q = attn.q_proj(x1)  # a second call for the same input is computed again
    torch.testing.assert_close(got_q, want_q, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_k, want_k, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again_q, want_q, rtol=1e-5, atol=1e-5)


def test_a_member_reading_the_same_input_twice_is_not_handed_its_own_changed_slice(
    tiny_base_dir,
):
    """A LoRA wrapper adds its delta into its slice in place: a second read of the same input
    by the same member must not see (and add to) the first read's result."""
    model = _tiny(tiny_base_dir, use_onednn_linears)
    attn = model.model.layers[0].self_attn
    x = torch.randn(1, 2, attn.q_proj.in_features)
    with torch.inference_mode():
        want_q, want_k = attn.q_proj(x), attn.k_proj(x)
        pack_siblings(model)
        attn.q_proj(x).add_(1.0)  # what a wrapper's in-place delta does to the kept output
        second = attn.q_proj(x)
        k = attn.k_proj(x)  # a sibling's slice of the kept output is untouched
    torch.testing.assert_close(second, want_q, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k, want_k, rtol=1e-5, atol=1e-5)


def test_gradients_and_the_stock_baseline_use_each_members_own_weight(tiny_base_dir):
    model = _tiny(tiny_base_dir, use_onednn_linears)
    pack_siblings(model)
    v_proj = model.model.layers[0].self_attn.v_proj
    x = torch.randn(1, 3, v_proj.in_features, requires_grad=True)
    v_proj(x).sum().backward()
    assert x.grad is not None and v_proj.weight.grad is not None
    ids = IDS[0]
    expected = _logits(model, ids)
    with aten_linears(model):
        assert type(v_proj) is nn.Linear
        torch.testing.assert_close(_logits(model, ids), expected, rtol=1e-4, atol=1e-5)


def test_groups_of_mixed_kinds_and_plain_linears_stay_as_they_are(tiny_base_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir, dtype=torch.float32).eval()
    assert pack_siblings(model) == 0  # stock nn.Linear (LORA_LAND_CPU_LINEAR=aten): untouched
    use_onednn_linears(model)
    attn = model.model.layers[0].self_attn
    attn.k_proj.__class__ = nn.Linear  # one member not through oneDNN: its group is skipped
    assert pack_siblings(model) == 2 * len(model.model.layers) - 1
    assert type(attn.q_proj) is OneDnnLinear and type(attn.k_proj) is nn.Linear


def test_a_model_whose_every_linear_is_packed_still_says_onednn():
    from lora_land.engine.cpu_linear import linear_kind

    block = nn.Module()
    block.q_proj, block.k_proj, block.v_proj = (nn.Linear(8, n, bias=False) for n in (8, 4, 4))
    use_onednn_linears(block)
    assert pack_siblings(block) == 1 and linear_kind(block) == "onednn"
