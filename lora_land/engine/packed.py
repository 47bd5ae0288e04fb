"""Sibling projections read as one matrix: q/k/v, and gate/up (CPU inference).

A decoder block multiplies the same hidden state by q_proj, k_proj and v_proj, and the same
normalised state by gate_proj and up_proj. At batch-1 decode each of those is a small
matrix-vector product that pays a fixed cost per call (dispatch, oneDNN's thread fork and
join, an activation cast for bf16 weights) besides its bytes; vLLM packs them into one
`QKVParallelLinear` and one `MergedColumnParallelLinear`. Here the model's modules stay as
they are (their names, parameters, state dict, LoRA wrappers and HF's attention code all
unchanged): `pack_siblings(model)` re-classes each group's members as `PackedLinear`, which
share one `Pack`. The first member called with an input computes the whole group's output
from the packed weight and keeps it; its siblings, called with the same tensor object (as
HF's attention and MLP do), return their column slices of it. A member called with another
input (or with gradients wanted, or off the CPU) computes on its own, as an `nn.Linear`.

Packing is all or nothing per group: every member a plain float32 linear through oneDNN
(`OneDnnLinear`), or every one reading bf16 weights (`OneDnnBf16Linear`), with the same
input width and all or none with a bias. For bf16 weights the group's bf16 copy replaces the
members' own (no extra memory); for float32 the members' weights become row views of the
packed matrix (no extra memory either). PyTorch's own float32 linears (BLAS: where
`cpu_linear` measured them faster than oneDNN) are left alone: MKL's matrix-vector product
reads q/k/v one by one at the same rate as packed (21 GB/s on a 2-core Xeon), and a packed
group's strided output slices made the whole decode 5-8% slower there. On the embedded model
a 30-block batch-1 pass over the linears drops from 211 calls to 121 (`bench/batching.py`).

This module touches weights' layout only; it knows nothing about adapters or caches.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from lora_land.engine.cpu_linear import OneDnnBf16Linear, OneDnnLinear, pack_bf16

log = logging.getLogger(__name__)

SIBLINGS: tuple[tuple[str, ...], ...] = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class Pack:
    """One group's packed weight, and the last output until every member has read it."""

    def __init__(self, members: list[nn.Linear], bf16: bool) -> None:
        self.bf16 = bf16
        self.in_features = members[0].in_features
        self.out_features = sum(m.out_features for m in members)
        self.size = len(members)
        weight = torch.cat([m.weight.detach() for m in members], dim=0)
        biases = [m.bias for m in members]
        self.bias = None if biases[0] is None else torch.cat([b.detach() for b in biases])
        if bf16:
            self.weight = pack_bf16(weight)
        else:
            self.weight = weight
            start = 0
            for m in members:  # the members' float32 weights become views: no second copy
                m.weight.data = weight[start : start + m.out_features]
                start += m.out_features
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None
        self._read: set[int] = set()  # members (by start column) that took the kept output

    def output(self, x: torch.Tensor, member: int) -> torch.Tensor:
        """The whole group's output for `x`: computed on the first read, kept for the other
        members. A member reading `x` again gets a fresh output (a LoRA wrapper may have added
        its delta into its slice of the kept one, in place)."""
        if x is self._input and member not in self._read:
            out = self._output
            self._read.add(member)
            if len(self._read) == self.size:
                self.forget()
            return out
        if self.bf16:
            out = torch.ops.mkldnn._linear_pointwise(
                x.to(torch.bfloat16), self.weight, None, "none", [], ""
            ).to(torch.float32)
            if self.bias is not None:
                out = out + self.bias
        else:
            out = torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        self._input, self._output, self._read = x, out, {member}
        return out

    def forget(self) -> None:
        self._input = self._output = None
        self._read = set()


class PackedLinear(nn.Linear):
    """A member of a `Pack`: its output is a column slice of the group's (same parameters)."""

    _pack: Pack
    _start: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
        ):
            out = self._pack.output(x, self._start)
            return out[..., self._start : self._start + self.out_features]
        return F.linear(x, self.weight, self.bias)


def _kind(module: nn.Module) -> str | None:
    if type(module) is OneDnnBf16Linear:
        return "bf16"
    if type(module) is OneDnnLinear and module.weight.dtype == torch.float32:
        return "fp32"
    return None


def pack_siblings(model: nn.Module) -> int:
    """Pack every sibling group of `model` that qualifies; returns how many groups."""
    packed = 0
    for parent in model.modules():
        for names in SIBLINGS:
            members = [getattr(parent, n, None) for n in names]
            if not _packable(members):
                continue
            pack = Pack(members, bf16=_kind(members[0]) == "bf16")
            start = 0
            for m in members:
                m.__dict__.pop("_packed", None)  # the pack's bf16 copy replaces the member's
                m._pack, m._start = pack, start
                m.__class__ = PackedLinear
                start += m.out_features
            packed += 1
    if packed:
        log.info("%d groups of sibling projections packed", packed)
    return packed


def _packable(members: list) -> bool:
    if any(m is None for m in members):
        return False
    kinds = {_kind(m) for m in members}
    if len(kinds) != 1 or None in kinds:
        return False
    if len({m.in_features for m in members}) != 1:
        return False
    if len({m.weight.device for m in members}) != 1:
        return False
    return len({m.bias is None for m in members}) == 1


def packs(model: nn.Module) -> list[Pack]:
    """The model's packs, each once, in model order."""
    seen: dict[int, Pack] = {}
    for m in model.modules():
        if isinstance(m, PackedLinear):
            seen.setdefault(id(m._pack), m._pack)
    return list(seen.values())


@contextmanager
def unpacked(model: nn.Module):
    """Within the block every packed member computes on its own again (bf16 members with a
    fresh bf16 copy of their own): a same-run baseline for benchmarks; restored on exit."""
    members = [m for m in model.modules() if isinstance(m, PackedLinear)]
    for m in members:
        if m._pack.bf16:
            m._packed = pack_bf16(m.weight)
            m.__class__ = OneDnnBf16Linear
        else:
            m.__class__ = OneDnnLinear
    try:
        yield len(members)
    finally:
        for m in members:
            m.__dict__.pop("_packed", None)
            m.__class__ = PackedLinear
            m._pack.forget()
