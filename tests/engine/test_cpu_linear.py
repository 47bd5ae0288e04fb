"""oneDNN linears on a CPU: the same function as nn.Linear, swapped in place, and a way back."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lora_land.engine.cpu_linear import (
    OneDnnLinear,
    aten_linears,
    onednn_available,
    use_onednn_linears,
    wanted,
)
from lora_land.engine.dtype_choice import cpu_supports_bf16
from lora_land.errors import ConfigError

pytestmark = pytest.mark.skipif(not onednn_available(), reason="PyTorch built without oneDNN")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(50, 16)
        self.proj = nn.Linear(16, 24)
        self.out = nn.Linear(24, 16, bias=False)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight  # tied, as in SmolLM2

    def forward(self, x):
        return self.head(self.out(F.silu(self.proj(x))))


class Subclass(nn.Linear):
    pass


SHAPES = [(1, 16), (1, 1, 16), (3, 7, 16), (2, 40, 16)]  # decode and prefill inputs


def _before_and_after(swap, shape):
    """(model, input, its output before `swap(model)`, after it) for an input of `shape`."""
    model = Tiny()
    x = torch.randn(*shape)
    with torch.inference_mode():
        expected = model(x)
        assert swap(model) == 3
        return model, x, expected, model(x)


@pytest.mark.parametrize("shape", SHAPES)
def test_same_outputs_as_nn_linear_for_decode_and_prefill_shapes(shape):
    _, _, expected, got = _before_and_after(use_onednn_linears, shape)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_swap_keeps_parameters_keys_and_tied_weights_and_skips_subclasses():
    model = Tiny()
    model.extra = Subclass(16, 16)
    keys = list(model.state_dict())
    use_onednn_linears(model)
    assert type(model.proj) is OneDnnLinear and type(model.head) is OneDnnLinear
    assert type(model.extra) is Subclass  # quantized layers and wrappers are left alone
    assert list(model.state_dict()) == keys
    assert model.head.weight is model.embed.weight


def test_gradients_still_flow_through_the_reference_path():
    model = Tiny()
    use_onednn_linears(model)
    x = torch.randn(2, 16, requires_grad=True)
    model(x).sum().backward()
    assert model.proj.weight.grad is not None and x.grad is not None


def test_aten_baseline_block_swaps_back_and_restores():
    model = Tiny()
    use_onednn_linears(model)
    with aten_linears(model) as n:
        assert n == 3 and type(model.proj) is nn.Linear
    assert type(model.proj) is OneDnnLinear


def test_setting_picks_onednn_for_float32_cpu_only_and_names_bad_values():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert wanted("auto", cpu, torch.float32)
    assert not wanted("auto", cpu, torch.bfloat16)  # bf16 linears go through oneDNN already
    assert wanted("onednn", cpu, torch.bfloat16)
    assert not wanted("aten", cpu, torch.float32)
    assert not wanted("auto", cuda, torch.float32)
    with pytest.raises(ConfigError, match=r"LORA_LAND_CPU_LINEAR must be one of .*'fast'"):
        wanted("fast", cpu, torch.float32)


@pytest.mark.parametrize(
    ("choice", "onednn_seconds", "expected"),
    [
        ("auto", 1.0, OneDnnLinear),  # measured faster than BLAS at load: kept
        ("auto", 3.0, nn.Linear),  # measured slower: back to PyTorch's own linears
        ("onednn", 3.0, OneDnnLinear),  # forced: not measured
        ("aten", 1.0, nn.Linear),
    ],
)
def test_the_engine_serves_float32_through_the_linear_measured_faster_unless_told(
    tiny_base_dir, tmp_path, monkeypatch, choice, onednn_seconds, expected
):
    from lora_land.engine import cpu_linear

    timed = []

    def fake_pass_seconds(linears, rows, kind):  # oneDNN vs BLAS on this "machine"
        timed.append((rows, kind))
        return onednn_seconds if kind == "onednn" else 2.0

    monkeypatch.setattr(cpu_linear, "pass_seconds", fake_pass_seconds)
    from lora_land.engine.engine import Engine
    from lora_land.engine.types import GenerationRequest

    from .engine_helpers import deployment_for, engine_settings

    settings = engine_settings(tmp_path, dtype="float32", device="cpu", cpu_linear=choice)
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, {}))
    try:
        from lora_land.engine.packed import PackedLinear

        mlp = engine.model.model.layers[0].mlp
        assert type(engine.model.lm_head) is expected
        assert type(mlp.down_proj) is expected
        # siblings read as one matrix with oneDNN linears only (engine/packed.py)
        assert type(mlp.up_proj) is (PackedLinear if expected is OneDnnLinear else nn.Linear)
        reply = engine.generate([GenerationRequest("hello", None, max_new_tokens=3)])[0]
        assert reply.completion_tokens == 3 or reply.finish_reason == "stop"
    finally:
        engine.close()
    # only auto measures: each way, at each size, alternating
    rounds = cpu_linear.TIMING_ROUNDS
    sizes = cpu_linear.TIMING_ROWS
    want = [(r, k) for r in sizes for _ in range(rounds) for k in ("onednn", "aten")]
    assert timed == (want if choice == "auto" else [])


def test_timing_a_pass_runs_every_linear_on_the_given_rows():
    from lora_land.engine import cpu_linear

    seen = []
    linears = [nn.Linear(8, 16), nn.Linear(16, 8, bias=False)]
    for m in linears:
        m.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    assert cpu_linear.pass_seconds(linears, rows=4, kind="aten") > 0
    assert seen == []  # F.linear on the weights, not the modules' forward (no hooks, no LoRA)
    assert cpu_linear.pass_seconds(linears, rows=4, kind="onednn") > 0


needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")


@needs_bf16
@pytest.mark.parametrize("shape", SHAPES)
def test_bf16_weights_stay_within_bf16_rounding_of_nn_linear_in_float32(shape):
    from lora_land.engine.cpu_linear import OneDnnBf16Linear, linear_kind, use_onednn_bf16_linears

    model, x, expected, got = _before_and_after(use_onednn_bf16_linears, shape)
    assert type(model.proj) is OneDnnBf16Linear and linear_kind(model) == "onednn-bf16"
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert model.head.weight is model.embed.weight and model.proj.weight.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: close, and not bit-equal (it did compute in bf16)
    torch.testing.assert_close(got, expected, rtol=3e-2, atol=3e-2)
    assert not torch.equal(got, expected)
    with aten_linears(model):
        torch.testing.assert_close(model(x), expected)  # the float32 baseline is still there
    assert type(model.proj) is OneDnnBf16Linear


@needs_bf16
def test_bf16_weights_leave_training_on_the_float32_path():
    from lora_land.engine.cpu_linear import use_onednn_bf16_linears

    model, reference = Tiny(), Tiny()
    use_onednn_bf16_linears(model)
    x = torch.randn(2, 16, requires_grad=True)
    model(x).sum().backward()
    torch.testing.assert_close(model(x.detach()), reference(x.detach()))  # grad on: float32
    assert model.proj.weight.grad is not None and x.grad is not None


@needs_bf16
@pytest.mark.parametrize(
    ("dtype", "expected"),
    [("bf16-weights", {"onednn-bf16"}), ("float32", {"onednn", "aten"})],  # float32: measured
)
def test_the_engine_serves_bf16_weights_when_asked(tiny_base_dir, tmp_path, dtype, expected):
    from lora_land.engine.cpu_linear import linear_kind
    from lora_land.engine.engine import Engine
    from lora_land.engine.types import GenerationRequest

    from .engine_helpers import deployment_for, engine_settings

    settings = engine_settings(tmp_path, dtype=dtype, device="cpu")
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, {}))
    try:
        assert linear_kind(engine.model) in expected
        assert next(engine.model.parameters()).dtype == torch.float32
        reply = engine.generate([GenerationRequest("hello", None, max_new_tokens=3)])[0]
        assert reply.completion_tokens == 3 or reply.finish_reason == "stop"
    finally:
        engine.close()


def test_without_bf16_linears_the_model_keeps_its_float32_ones(monkeypatch):
    from lora_land.engine import cpu_linear

    def unsupported(weight):
        raise RuntimeError("mkldnn bf16 path needs the cpu support avx512bw, avx512vl and avx512dq")

    monkeypatch.setattr(cpu_linear, "pack_bf16", unsupported)
    model = Tiny()
    assert cpu_linear.use_onednn_bf16_linears(model) == 0
    assert cpu_linear.linear_kind(model) == "aten" and not hasattr(model.proj, "_packed")


def test_the_choice_counts_each_ways_fastest_pass_not_a_busy_moment(monkeypatch):
    from lora_land.engine import cpu_linear

    rounds = cpu_linear.TIMING_ROUNDS
    busy = iter([1.0] + [9.0] * (rounds - 2) + [1.0])  # oneDNN's passes, mostly interrupted

    def fake_pass_seconds(linears, rows, kind):
        if kind == "aten":
            return 2.0
        return next(busy) if rows == cpu_linear.TIMING_ROWS[0] else 1.0

    monkeypatch.setattr(cpu_linear, "pass_seconds", fake_pass_seconds)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    cpu_linear.use_onednn_linears(model)
    assert cpu_linear.keep_faster_float32(model) == "onednn"  # 1.0 beats 2.0 at both sizes
    assert all(type(m) is OneDnnLinear for m in model)
