"""Linear layers on a CPU: float32 through whichever of oneDNN and PyTorch's BLAS is faster
here, and bf16 weights through oneDNN.

PyTorch computes a float32 `nn.Linear` on a CPU with its BLAS (MKL in the official wheels),
and oneDNN's matmul primitive (`torch.ops.mkldnn._linear_pointwise`, the op Inductor's CPU
backend emits) computes the same product by another route. Which is faster depends on the
machine: on one 2-core AMD EPYC VM oneDNN read a batch-1 decode's weights 2-3x faster than
MKL's generic path; on a later AMD VM and on a 2-core Xeon with AMX, MKL read them at ~21
GB/s (the bandwidth of summing a large buffer) and oneDNN at ~14 (batch-1 decode 25.6 vs
18.7 tokens/s, `bench/batching.py`). So `LORA_LAND_CPU_LINEAR=auto` measures:
`keep_faster_float32(model)` times one pass of the loaded model's own linears on one token
and on a 16-row chunk both ways (alternating, a fraction of a second) and keeps the faster;
`onednn` and `aten` force one.

`use_onednn_linears(model)` re-classes the model's plain `nn.Linear` modules (lm_head
included; weights stay shared, so tied embeddings stay tied) as `OneDnnLinear`, whose
forward calls oneDNN's op whenever no gradient is needed, and `F.linear` otherwise. Results
match `F.linear` to float rounding (another summation order), checked at load by `_agrees`.

`use_onednn_bf16_linears(model)` serves the precision `bf16-weights` (`LORA_LAND_DTYPE`):
the model stays float32, and each linear reads a bfloat16 copy of its weight, reordered once
into oneDNN's blocked layout for this CPU's native bf16 kernels; activations are cast to bf16
for the product and back to float32 after it. Batch-1 decode is bound by the bytes of weight
read, and norms, attention and sampling in bf16 are slow on a CPU (a bfloat16 model decoded
slower than float32 here); this halves the bytes and keeps the rest in float32 (measured on a
2-core EPYC: 42 -> 65 tokens/s for the bare model, and 2x at prefill sizes). The float32
weights stay (tied embeddings, LoRA wrappers and training read them); the bf16 copies are
extra memory, half the linears' size.
"""

from __future__ import annotations

import logging
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from lora_land.errors import ConfigError

log = logging.getLogger(__name__)
CHOICES = ("auto", "onednn", "aten")


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class OneDnnLinear(nn.Linear):
    """An `nn.Linear` whose inference forward is oneDNN's matmul (same parameters, same keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dtype == self.weight.dtype
            and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
        ):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


class OneDnnBf16Linear(nn.Linear):
    """An `nn.Linear` whose float32 inference forward reads a prepacked bfloat16 weight."""

    _packed: torch.Tensor  # the weight in bf16, in oneDNN's layout (not a parameter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
        ):
            out = torch.ops.mkldnn._linear_pointwise(
                x.to(torch.bfloat16), self._packed, None, "none", [], ""
            ).to(torch.float32)
            return out if self.bias is None else out + self.bias
        return F.linear(x, self.weight, self.bias)


def pack_bf16(weight: torch.Tensor) -> torch.Tensor:
    """`weight` in bf16, reordered for oneDNN's batch-1 kernels where the build can."""
    w = weight.detach().to(torch.bfloat16)
    reorder = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None)
    return reorder(w, 1) if reorder is not None else w


def use_onednn_bf16_linears(model: nn.Module) -> int:
    """Re-class every plain (or oneDNN float32) linear of a float32 `model` as
    `OneDnnBf16Linear` with its packed bf16 weight; returns how many (0: left as they were)."""
    linears = [m for m in model.modules() if type(m) in (nn.Linear, OneDnnLinear)]
    if not linears or not onednn_available():
        return 0
    first, cls = linears[0], type(linears[0])
    try:
        first._packed = pack_bf16(first.weight)
        first.__class__ = OneDnnBf16Linear
        agrees = _agrees_bf16(first)
    except RuntimeError as e:  # a build or CPU without oneDNN bf16 matmul
        log.warning("oneDNN bf16 linears are not available here (%s)", e)
        agrees = False
    if not agrees:
        first.__class__ = cls
        first.__dict__.pop("_packed", None)
        log.warning("keeping float32 weights: oneDNN's bf16 linear is missing or disagrees")
        return 0
    for module in linears[1:]:
        module._packed = pack_bf16(module.weight)
        module.__class__ = OneDnnBf16Linear
    return len(linears)


def _agrees_bf16(module: OneDnnBf16Linear) -> bool:
    """Within bf16 rounding of F.linear (weights and inputs keep 8 bits of mantissa)."""
    x = torch.randn(2, module.in_features)
    with torch.no_grad():
        expected = F.linear(x, module.weight, module.bias)
        got = module(x)
    scale = expected.abs().max().clamp_min(1e-6)
    return bool(((got - expected).abs().max() / scale) < 3e-2)


def linear_kind(model: nn.Module) -> str:
    """How `model`'s linears compute on a CPU: "onednn-bf16", "onednn" or "aten"."""
    kinds = {type(m) for m in model.modules()}
    packs = [m._pack for m in model.modules() if hasattr(m, "_pack")]  # engine/packed.py
    if OneDnnBf16Linear in kinds or any(p.bf16 for p in packs):
        return "onednn-bf16"
    return "onednn" if OneDnnLinear in kinds or packs else "aten"  # packs: oneDNN only


def wanted(choice: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the engine should serve through oneDNN linears (`choice` from settings)."""
    if choice not in CHOICES:
        raise ConfigError(f"LORA_LAND_CPU_LINEAR must be one of {list(CHOICES)}, got {choice!r}")
    if choice == "aten" or device.type != "cpu":
        return False
    if not onednn_available():
        if choice == "onednn":
            log.warning("oneDNN's linear op is not in this PyTorch build; using aten linears")
        return False
    return choice == "onednn" or dtype == torch.float32


def _agrees(module: nn.Linear) -> bool:
    x = torch.randn(2, module.in_features, dtype=module.weight.dtype)
    with torch.no_grad():
        expected = F.linear(x, module.weight, module.bias)
        got = torch.ops.mkldnn._linear_pointwise(x, module.weight, module.bias, "none", [], "")
    scale = expected.abs().max().clamp_min(1e-6)
    return bool(((got - expected).abs().max() / scale) < 1e-3)


def use_onednn_linears(model: nn.Module) -> int:
    """Re-class every plain `nn.Linear` of `model` as `OneDnnLinear`; returns how many.

    Subclasses of `nn.Linear` (bitsandbytes' quantized layers, LoRA wrappers) are left alone.
    """
    linears = [m for m in model.modules() if type(m) is nn.Linear]
    if not linears:
        return 0
    if not _agrees(linears[0]):  # a broken build: stay on the reference path
        log.warning("oneDNN linear disagrees with F.linear on this machine; using aten linears")
        return 0
    for module in linears:
        module.__class__ = OneDnnLinear
    return len(linears)


TIMING_ROWS = (1, 16)  # a batch-1 decode step, and a prefill chunk or a busy batch
TIMING_ROUNDS = 5


def keep_faster_float32(model: nn.Module) -> str:
    """Keep `model`'s `OneDnnLinear`s on oneDNN, or turn them back into `nn.Linear`, whichever
    computes this model's own linears faster on this machine; returns "onednn" or "aten".

    Each way is timed on one pass over every linear in model order, at each of
    `TIMING_ROWS` rows, alternating for `TIMING_ROUNDS` rounds; each way's fastest pass
    counts (other work on a busy machine only ever adds time: one load beside a training
    job timed a median oneDNN pass 23x BLAS's at one row and 0.7x at 16). oneDNN is kept
    when the geometric mean of its time over BLAS's is below 1."""
    linears = [m for m in model.modules() if type(m) is OneDnnLinear]
    if not linears:
        return linear_kind(model)
    ratios = []
    for rows in TIMING_ROWS:
        times: dict[str, list[float]] = {"onednn": [], "aten": []}
        for _ in range(TIMING_ROUNDS):
            for kind in times:
                times[kind].append(pass_seconds(linears, rows, kind))
        ratios.append(min(times["onednn"]) / min(times["aten"]))
    gmean = statistics.geometric_mean(ratios)
    keep = gmean < 1.0
    if not keep:
        for module in linears:
            module.__class__ = nn.Linear
    log.info(
        "float32 linears through %s: oneDNN takes %s of BLAS's time at %s rows",
        "oneDNN" if keep else "PyTorch's BLAS",
        " / ".join(f"{r:.2f}" for r in ratios),
        " / ".join(map(str, TIMING_ROWS)),
    )
    return "onednn" if keep else "aten"


def pass_seconds(linears: list[nn.Linear], rows: int, kind: str) -> float:
    """Seconds of one pass over `linears` on `rows` rows, computed `kind`'s way (first call of
    a shape warms it: oneDNN makes its primitive then)."""
    inputs = {n: torch.randn(1, rows, n) for n in {m.in_features for m in linears}}

    def once() -> None:
        for m in linears:
            x = inputs[m.in_features]
            if kind == "onednn":
                torch.ops.mkldnn._linear_pointwise(x, m.weight, m.bias, "none", [], "")
            else:
                F.linear(x, m.weight, m.bias)

    with torch.inference_mode():
        once()
        start = time.perf_counter()
        once()
        return time.perf_counter() - start


class aten_linears:
    """Within the block, the oneDNN linears of `model` compute with `F.linear` on their float32
    weights (a same-run baseline for benchmarks); restored on exit."""

    def __init__(self, model: nn.Module):
        self.modules = [
            (m, type(m))
            for m in model.modules()
            if type(m) in (OneDnnLinear, OneDnnBf16Linear) or hasattr(m, "_pack")  # packed.py
        ]

    def __enter__(self) -> int:
        for module, _ in self.modules:
            module.__class__ = nn.Linear
        return len(self.modules)

    def __exit__(self, *exc) -> None:
        for module, cls in self.modules:
            module.__class__ = cls
