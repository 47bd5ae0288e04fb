"""Multi-LoRA linear layers: one base model, many adapters, one batch.

`attach_lora` replaces the targeted linear layers of a loaded model (q_proj, v_proj, ...) by
`MultiLoraLinear` wrappers. A wrapper holds no adapter weights: before each forward the engine
sets `LoraContext.groups`, a list of (adapter, rows) pairs, and every wrapper adds
`x[rows] @ A^T @ (scale * B^T)` for its own module name. Rows of one batch may therefore use
different adapters (grouped by adapter, like PEFT's mixed-batch `adapter_names` but without
a weight copy), and switching adapters is a pointer change, never a write into the base.
With no adapter in the batch the wrapper returns the base output untouched, and modules that
no adapter targets are never wrapped at all.

This module knows nothing about files, caches or tokenizers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class DeviceAdapter:
    """An adapter laid out for compute: per module, A^T [in, r] and scale * B^T [r, out]."""

    id: str
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]]
    nbytes: int
    rank: int


@dataclass
class LoraContext:
    """What the next forward applies: (adapter, row indices or None for every row)."""

    groups: list[tuple[DeviceAdapter, torch.Tensor | None]] = field(default_factory=list)

    def set_rows(self, adapters: list[DeviceAdapter | None], device: torch.device) -> None:
        """Group batch rows by adapter; `None` rows use the bare base."""
        by_id: dict[str, tuple[DeviceAdapter, list[int]]] = {}
        for row, adapter in enumerate(adapters):
            if adapter is not None:
                by_id.setdefault(adapter.id, (adapter, []))[1].append(row)
        groups: list[tuple[DeviceAdapter, torch.Tensor | None]] = []
        for adapter, rows in by_id.values():
            if len(rows) == len(adapters):
                groups.append((adapter, None))  # whole batch: no gather, no scatter
            else:
                groups.append((adapter, torch.tensor(rows, dtype=torch.long, device=device)))
        self.groups = groups

    def clear(self) -> None:
        self.groups = []


class MultiLoraLinear(nn.Module):
    """A linear layer (plain or bitsandbytes) plus whatever adapters the context names."""

    def __init__(self, base: nn.Module, name: str, context: LoraContext) -> None:
        super().__init__()
        self.base = base
        self.name = name
        self.context = context
        self.in_features = base.in_features
        self.out_features = base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        for adapter, rows in self.context.groups:
            pair = adapter.weights.get(self.name)
            if pair is None:
                continue
            a_t, b_t = pair
            if rows is None:
                out = out + (x.to(a_t.dtype) @ a_t @ b_t).to(out.dtype)
            else:
                delta = x.index_select(0, rows).to(a_t.dtype) @ a_t @ b_t
                out = out.index_add(0, rows, delta.to(out.dtype))
        return out


def linear_shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of every linear-like module, by qualified name."""
    shapes: dict[str, tuple[int, int]] = {}
    for name, module in model.named_modules():
        wrapped = isinstance(module, MultiLoraLinear)
        if wrapped or (_is_linear(module) and not name.endswith(".base")):
            shapes[name] = (module.in_features, module.out_features)
    return shapes


def _is_linear(module: nn.Module) -> bool:
    # nn.Linear and bitsandbytes' Linear4bit / Linear8bitLt (subclasses of nn.Linear)
    return isinstance(module, nn.Linear)


def attach_lora(model: nn.Module, names: Iterable[str], context: LoraContext) -> list[str]:
    """Wrap the named linear modules (idempotent); returns the names newly wrapped."""
    wrapped: list[str] = []
    for name in names:
        module = model.get_submodule(name)
        if isinstance(module, MultiLoraLinear):
            continue
        if not _is_linear(module):
            raise TypeError(f"module {name!r} is {type(module).__name__}, not a linear layer")
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, MultiLoraLinear(module, name, context))
        wrapped.append(name)
    return wrapped


def to_device_adapter(
    adapter_id: str,
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]],
    scalings: dict[str, float],
    device: torch.device,
    dtype: torch.dtype,
) -> DeviceAdapter:
    """Lay out host tensors (A [r, in], B [out, r]) for compute on `device` in `dtype`."""
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    nbytes = 0
    rank = 0
    for name, (a, b) in tensors.items():
        a_t = a.to(device=device, dtype=dtype).t().contiguous()
        b_t = (b.to(device=device, dtype=torch.float32) * scalings[name]).to(dtype).t()
        b_t = b_t.contiguous()
        weights[name] = (a_t, b_t)
        nbytes += a_t.numel() * a_t.element_size() + b_t.numel() * b_t.element_size()
        rank = max(rank, a.shape[0])
    return DeviceAdapter(id=adapter_id, weights=weights, nbytes=nbytes, rank=rank)
