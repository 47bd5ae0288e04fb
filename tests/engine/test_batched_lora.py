"""The batched LoRA path: every row gets exactly its own adapter's delta, whatever else shares
the batch (mixed ranks, adapters targeting different modules, rows with no adapter), in the
stacked (masked) path used for decode steps and the grouped path used for long prefills."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lora_land.engine import lora
from lora_land.engine.lora import LoraContext, attach_lora, to_device_adapter

IN, HIDDEN, OUT = 12, 10, 7


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(IN, HIDDEN)
        self.down = nn.Linear(HIDDEN, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.tanh(self.up(x)))


def _adapter(adapter_id: str, rank: int, modules: dict[str, tuple[int, int]], seed: int):
    generator = torch.Generator().manual_seed(seed)
    tensors = {
        name: (
            torch.randn(rank, fan_in, generator=generator),
            torch.randn(fan_out, rank, generator=generator),
        )
        for name, (fan_in, fan_out) in modules.items()
    }
    scalings = {name: 0.5 + seed / 10 for name in modules}
    device_adapter = to_device_adapter(
        adapter_id, tensors, scalings, torch.device("cpu"), torch.float32
    )
    return device_adapter, tensors, scalings


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = TwoLayers().eval()
    reference = TwoLayers().eval()
    reference.load_state_dict(model.state_dict())
    context = LoraContext()
    attach_lora(model, ["up", "down"], context)
    shapes = {"up": (IN, HIDDEN), "down": (HIDDEN, OUT)}
    adapters = {
        "both_r2": _adapter("both_r2", 2, shapes, seed=1),
        "up_r8": _adapter("up_r8", 8, {"up": shapes["up"]}, seed=2),
        "down_r4": _adapter("down_r4", 4, {"down": shapes["down"]}, seed=3),
    }
    return model, reference, context, adapters


def _expected(reference: TwoLayers, x: torch.Tensor, adapter) -> torch.Tensor:
    """One row through the plain layers with the adapter's delta added by hand."""

    def layer(name: str, module: nn.Linear, h: torch.Tensor) -> torch.Tensor:
        out = module(h)
        if adapter is not None and name in adapter[1]:
            a, b = adapter[1][name]
            out = out + adapter[2][name] * (h @ a.t() @ b.t())
        return out

    return layer("down", reference.down, torch.tanh(layer("up", reference.up, x)))


ROWS = ["both_r2", None, "up_r8", "down_r4", "both_r2", None, "down_r4"]


def _force(monkeypatch, path: str) -> None:
    monkeypatch.setattr(lora, "STACKED_MAX_TOKENS", 10_000 if path == "stacked" else 0)
    monkeypatch.setattr(lora, "GATHERED_MIN_ADAPTERS", 1 if path == "gathered" else 10_000)
    monkeypatch.setattr(lora, "GATHERED_MAX_ROW_TOKENS", 10_000)


@pytest.mark.parametrize("path", ["stacked", "gathered", "grouped"])
@pytest.mark.parametrize("tokens", [1, 5])
def test_every_row_gets_its_own_adapter_in_a_mixed_batch(setup, monkeypatch, path, tokens):
    model, reference, context, adapters = setup
    _force(monkeypatch, path)
    x = torch.randn(len(ROWS), tokens, IN)
    context.set_rows([adapters[a][0] if a else None for a in ROWS], torch.device("cpu"))
    with torch.inference_mode():
        got = model(x)
        for i, name in enumerate(ROWS):
            want = _expected(reference, x[i : i + 1], adapters[name] if name else None)
            torch.testing.assert_close(got[i : i + 1], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("path", ["stacked", "gathered"])
def test_rows_without_an_adapter_get_exactly_the_base_output(setup, monkeypatch, path):
    model, reference, context, adapters = setup
    _force(monkeypatch, path)
    x = torch.randn(3, 1, IN)
    context.set_rows([adapters["both_r2"][0], None, adapters["up_r8"][0]], torch.device("cpu"))
    with torch.inference_mode():
        got = model(x)
        assert torch.equal(got[1], reference(x)[1])  # the same batch through the plain layers
        assert not torch.allclose(got[0], reference(x[0]))


def test_one_adapter_for_every_row_needs_no_mask(setup):
    model, reference, context, adapters = setup
    both = adapters["both_r2"]
    context.set_rows([both[0]] * 4, torch.device("cpu"))
    with torch.inference_mode():
        got = model(torch.ones(4, 1, IN))
    assert context.plan.stacked("up").mask is None
    torch.testing.assert_close(got[0], _expected(reference, torch.ones(1, IN), both))


def test_modules_no_batch_adapter_targets_are_left_alone(setup):
    _, _, context, adapters = setup
    context.set_rows([adapters["up_r8"][0], None], torch.device("cpu"))
    assert context.plan.stacked("down") is None
    assert context.plan.stacked("up").a_cat.shape == (IN, 8)


def test_mixed_ranks_are_stacked_without_padding(setup):
    _, _, context, adapters = setup
    context.set_rows([adapters["both_r2"][0], adapters["up_r8"][0], None], torch.device("cpu"))
    stacked = context.plan.stacked("up")
    assert stacked.a_cat.shape == (IN, 2 + 8)
    assert stacked.b_cat.shape == (2 + 8, HIDDEN)
    assert stacked.mask.tolist() == [[1.0] * 2 + [0.0] * 8, [0.0] * 2 + [1.0] * 8, [0.0] * 10]


def test_an_empty_plan_returns_the_base_output(setup):
    model, reference, context, _ = setup
    x = torch.randn(2, 3, IN)
    context.set_rows([None, None], torch.device("cpu"))
    with torch.inference_mode():
        assert torch.equal(model(x), reference(x))
    context.groups = []  # what batch code assigns when no row runs
    assert context.plan is None


def test_gathered_weights_pad_mixed_ranks_with_zeros_per_row(setup):
    _, _, context, adapters = setup
    rows = [adapters["both_r2"][0], adapters["up_r8"][0], None, adapters["down_r4"][0]]
    context.set_rows(rows, torch.device("cpu"))
    up = context.plan.gathered("up")
    assert up.a_rows.shape == (4, IN, 8) and up.b_rows.shape == (4, 8, HIDDEN)
    a_both, b_both = adapters["both_r2"][0].weights["up"]
    assert torch.equal(up.a_rows[0, :, :2], a_both) and not up.a_rows[0, :, 2:].any()
    assert torch.equal(up.b_rows[0, :2], b_both) and not up.b_rows[0, 2:].any()
    assert torch.equal(up.a_rows[1], adapters["up_r8"][0].weights["up"][0])
    assert not up.a_rows[2].any() and not up.a_rows[3].any()  # no adapter; one not on "up"
    assert context.plan.gathered("up") is up  # made once per batch composition
    context.set_rows([adapters["up_r8"][0]], torch.device("cpu"))
    assert context.plan.gathered("down") is None


def test_a_decode_step_over_many_adapters_takes_the_gathered_path(setup, monkeypatch):
    model, _, context, _ = setup
    calls = []
    for name in ("_add_gathered", "_add_stacked", "_add_grouped"):
        original = getattr(lora.MultiLoraLinear, name)

        def spy(self, x, out, plan, _name=name, _original=original):
            calls.append(_name)
            return _original(self, x, out, plan)

        monkeypatch.setattr(lora.MultiLoraLinear, name, spy)
    many = [_adapter(f"a{i}", 2 + i % 3, {"up": (IN, HIDDEN)}, seed=i)[0] for i in range(6)]
    context.set_rows(many, torch.device("cpu"))
    with torch.inference_mode():
        model(torch.randn(6, 1, IN))  # a decode step: one token per row
    assert calls == ["_add_gathered"] * 2
    calls.clear()
    context.set_rows(many[:2], torch.device("cpu"))
    with torch.inference_mode():
        model(torch.randn(2, 1, IN))
    assert calls == ["_add_stacked"] * 2
    calls.clear()
    context.set_rows(many, torch.device("cpu"))
    with torch.inference_mode():
        model(torch.randn(6, 40, IN))  # a long mixed prefill
    assert calls == ["_add_grouped"] * 2
