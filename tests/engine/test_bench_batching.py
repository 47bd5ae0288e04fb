"""Smoke test of the batching benchmark: `--quick` runs every case end to end on the embedded
model and writes every figure (the values themselves are never asserted: speed lives in bench/)."""

from __future__ import annotations

import json
import math

import pytest

import bench.common
from bench import batching

FIGURES = (
    "decode_tok_s_batch1",
    "roofline_tok_s_batch1",
    "decode_over_roofline",
    "linears_only_tok_s_batch1",
    "linears_only_over_roofline",
    "decode_over_linears_only",
    "hf_generate_tok_s_batch1",
    "mixed32_over_same32_throughput",
    "mixed8_over_same8_throughput",
    "concurrent_over_sequential_throughput",
    "ttft_ms_p50",
    "ttft_ms_p95",
    "flood_ttft_over_idle",
    "long_join_max_step_ms_over_median",
)


@pytest.mark.slow
def test_quick_bench_writes_every_figure_with_the_load_it_ran_under(
    tmp_path, monkeypatch, embedded_model_dir
):
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    batching.main(["--quick", "--name", "smoke"])
    results = json.loads((tmp_path / "smoke.json").read_text())
    for key in FIGURES:
        assert math.isfinite(results[key]) and results[key] > 0, key
    assert results["quick"] is True
    # the other float32 linear ran in the same run, whichever the engine serves
    if results["cpu_linear"] in ("onednn", "onednn-bf16"):
        assert results["onednn_over_aten_decode"] > 0
        assert results["decode_tok_s_batch1_aten_linear"] > 0
    elif results["dtype"] == "float32":
        assert results["onednn_over_aten_decode"] > 0
        assert results["decode_tok_s_batch1_onednn_linear"] > 0
    assert results["lean_over_full_forward_decode"] > 0  # the embedded Llama: lean steps
    assert results["decode_tok_s_batch1_full_forward"] > 0
    assert len(results["load_before"]) == 3 and results["torch_threads"] >= 1
    assert results["long_prompt_tokens"] >= batching.Sizes.pick(True).long_prompt_tokens * 0.9


def test_linears_only_reads_each_linear_weight_once_per_token():
    import torch

    from lora_land.engine.lora import LoraContext, attach_lora

    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16, bias=False), torch.nn.Linear(16, 8, bias=False)
    )
    attach_lora(model, ["0"], LoraContext())  # a wrapped layer counts once, as its base
    tok_s, gb_s = batching.linears_only_tok_s(model, reps=3)
    weight_bytes = (8 * 16 + 16 * 8) * 4
    assert tok_s > 0
    assert gb_s == pytest.approx(tok_s * weight_bytes / 1e9)


def test_bytes_read_per_token_count_the_bf16_copies_when_linears_read_them():
    import torch
    from torch import nn

    from lora_land.engine.cpu_linear import onednn_available, use_onednn_bf16_linears
    from lora_land.engine.dtype_choice import cpu_supports_bf16

    if not onednn_available() or not cpu_supports_bf16():
        pytest.skip("no oneDNN bf16 linears here")
    embed, proj, head = nn.Embedding(50, 16), nn.Linear(16, 24), nn.Linear(16, 50, bias=False)
    head.weight = embed.weight  # tied, as in SmolLM2
    model = nn.ModuleDict({"embed": embed, "proj": proj, "head": head})
    assert batching.weight_bytes(model) == (50 * 16 + 24 * 16 + 24) * 4
    assert use_onednn_bf16_linears(model) == 2
    # the linears read bf16 copies (the tied head too); the embedding reads one row a token
    assert batching.weight_bytes(model) == (50 * 16 + 24 * 16) * 2 + 24 * 4
    rates = batching.gemv_read_gb_s(model, budget_bytes=100_000)
    assert set(rates) == {"16x24", "16x50"} and all(r > 0 for r in rates.values())
    x = torch.randn(1, 1, 16)
    assert batching.linears_only_tok_s(model, reps=2)[0] > 0 and model["proj"](x).shape[-1] == 24
