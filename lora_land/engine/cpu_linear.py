"""Linear layers through oneDNN on a CPU: the same weights, about twice the speed here.

PyTorch computes a float32 `nn.Linear` on a CPU with its BLAS (MKL in the official wheels).
MKL takes its generic code path on non-Intel CPUs: on this project's AMD EPYC machines a
batch-1 decode's matrix-vector products read weights at ~11 GB/s, a third of the read
bandwidth the same run measures (`bench/batching.py`), while oneDNN's matmul primitive,
chosen by CPU feature rather than by vendor, reads them at ~27-33 GB/s and is about 2x faster
at prefill sizes too. bf16 linears already go through oneDNN, so only float32 gains.

`use_onednn_linears(model)` re-classes the model's plain `nn.Linear` modules (lm_head
included; weights stay shared, so tied embeddings stay tied) as `OneDnnLinear`, whose
forward calls `torch.ops.mkldnn._linear_pointwise` (the op Inductor's CPU backend emits)
whenever no gradient is needed, and `F.linear` otherwise. Results match `F.linear` to float
rounding (another summation order), checked at load by `_agrees`. `LORA_LAND_CPU_LINEAR`
(`auto`/`onednn`/`aten`) picks; `auto` is oneDNN for float32 on a CPU where the op exists.
"""

from __future__ import annotations

import logging

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


class aten_linears:
    """Within the block, `OneDnnLinear` modules of `model` compute with `F.linear` (a same-run
    baseline for benchmarks); restored on exit."""

    def __init__(self, model: nn.Module):
        self.modules = [m for m in model.modules() if type(m) is OneDnnLinear]

    def __enter__(self) -> int:
        for module in self.modules:
            module.__class__ = nn.Linear
        return len(self.modules)

    def __exit__(self, *exc) -> None:
        for module in self.modules:
            module.__class__ = OneDnnLinear
