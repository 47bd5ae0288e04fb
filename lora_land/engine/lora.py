"""Multi-LoRA linear layers: one base model, many adapters, one batch.

`attach_lora` replaces the targeted linear layers of a loaded model (q_proj, v_proj, ...) by
`MultiLoraLinear` wrappers. A wrapper holds no adapter weights: before each forward the engine
sets the context's `LoraPlan` (which adapter each batch row uses, or None for the bare base),
and every wrapper adds that row's `x @ A^T @ (scale * B^T)` for its own module name. Switching
adapters is a pointer change, never a write into the base; modules no adapter targets are
never wrapped, and with no adapter in the batch the wrapper returns the base output untouched.

How the deltas are computed (the BGMV / SGMV idea, with dense kernels):
- few tokens (decode steps, short prefills): the batch's distinct adapters are stacked once
  per batch composition (`LoraPlan`, rebuilt only when rows join or leave) into one
  `A_cat [in, R]` and one `B_cat [R, out]` per module (R = the sum of their ranks, so mixed
  ranks need no padding), and a row mask [B, R] keeps each row's own adapter's columns (all
  zero for rows without one, or whose adapter does not target this module). Two matmuls and
  one multiply per module whatever the number of adapters, adding into the base output in
  place;
- decode steps with many distinct adapters (at least `GATHERED_MIN_ADAPTERS`): the masked
  product above would spend rows x R x (in + out) multiply-adds, R growing with the number
  of adapters, almost all of them on other rows' columns (with 32 adapters of rank 16 on a
  576-wide model, more than the base layer itself). Instead each row's own A and B are
  gathered once per batch composition into `A_rows [B, in, r]` and `B_rows [B, r, out]`
  (ranks zero-padded to the largest, zeros for rows without one) and two batched matmuls
  (`bmm`, then `baddbmm_` into the output: the BGMV kernel's shape, with dense ops) cost
  rows x r x (in + out) whatever the number of adapters;
- many tokens with several adapters (long mixed prefills): per adapter group, gather its rows,
  two matmuls, scatter-add (the masked product would waste work on the other adapters'
  columns in proportion to the tokens).

This module knows nothing about files, caches or tokenizers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

STACKED_MAX_TOKENS = 64  # batches of at most this many tokens use the stacked (masked) path
GATHERED_MIN_ADAPTERS = 4  # this many distinct adapters in a batch: per-row gathered weights
GATHERED_MAX_ROW_TOKENS = 8  # ... for forwards of at most this many tokens per row (decode)


@dataclass
class DeviceAdapter:
    """An adapter laid out for compute: per module, A^T [in, r] and scale * B^T [r, out]."""

    id: str
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]]
    nbytes: int
    rank: int


@dataclass
class _Stacked:
    """One module's deltas for the plan: A_cat [in, R], B_cat [R, out], the row mask [B, R]
    (None when every row uses the single adapter present), and A_cat^T [R, in] contiguous:
    `F.linear(x, A_cat^T)` is one call of a few microseconds where `x @ A_cat` at decode
    sizes costs several times that (BLAS reads the narrow matrix across its rows)."""

    a_cat: torch.Tensor
    b_cat: torch.Tensor
    mask: torch.Tensor | None
    a_rows: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.a_rows = self.a_cat.t().contiguous()


@dataclass
class _Gathered:
    """One module's per-row weights for the plan: A_rows [B, in, r], B_rows [B, r, out]."""

    a_rows: torch.Tensor
    b_rows: torch.Tensor


class LoraPlan:
    """The adapters of one batch composition: per row an adapter or None, in row order.

    Built when rows join or leave, reused by every forward until then. Per module, the stacked
    weights and row masks are made on first use and kept (masks are shared by modules whose
    targeting adapters are the same)."""

    def __init__(self, adapters: list[DeviceAdapter | None], device: torch.device) -> None:
        self.rows = len(adapters)
        self.device = device
        self.row_slots: list[int | None] = []  # per row: index into `distinct`, or None
        self.distinct: list[DeviceAdapter] = []
        index: dict[str, int] = {}
        for adapter in adapters:
            if adapter is None:
                self.row_slots.append(None)
                continue
            if adapter.id not in index:
                index[adapter.id] = len(self.distinct)
                self.distinct.append(adapter)
            self.row_slots.append(index[adapter.id])
        self._stacked: dict[str, _Stacked | None] = {}
        self._gathered: dict[str, _Gathered | None] = {}
        self._masks: dict[tuple, torch.Tensor | None] = {}
        self._groups: list[tuple[DeviceAdapter, torch.Tensor | None]] | None = None

    def __bool__(self) -> bool:
        return bool(self.distinct)

    @property
    def groups(self) -> list[tuple[DeviceAdapter, torch.Tensor | None]]:
        """(adapter, row indices or None for every row), one entry per distinct adapter."""
        if self._groups is None:
            groups: list[tuple[DeviceAdapter, torch.Tensor | None]] = []
            for slot, adapter in enumerate(self.distinct):
                rows = [r for r, s in enumerate(self.row_slots) if s == slot]
                if len(rows) == self.rows:
                    groups.append((adapter, None))  # whole batch: no gather, no scatter
                else:
                    index = torch.tensor(rows, dtype=torch.long, device=self.device)
                    groups.append((adapter, index))
            self._groups = groups
        return self._groups

    def stacked(self, name: str) -> _Stacked | None:
        """The module's stacked deltas, or None when no adapter of the batch targets it."""
        if name not in self._stacked:
            self._stacked[name] = self._stack(name)
        return self._stacked[name]

    def _stack(self, name: str) -> _Stacked | None:
        slots = [s for s, a in enumerate(self.distinct) if name in a.weights]
        if not slots:
            return None
        pairs = [self.distinct[s].weights[name] for s in slots]
        ranks = tuple(a_t.shape[1] for a_t, _ in pairs)
        if len(pairs) == 1:
            a_cat, b_cat = pairs[0]
        else:
            a_cat = torch.cat([a_t for a_t, _ in pairs], dim=1)
            b_cat = torch.cat([b_t for _, b_t in pairs], dim=0)
        return _Stacked(a_cat, b_cat, self._mask(tuple(slots), ranks, a_cat.dtype))

    def gathered(self, name: str) -> _Gathered | None:
        """The module's per-row weights, or None when no adapter of the batch targets it."""
        if name not in self._gathered:
            self._gathered[name] = self._gather(name)
        return self._gathered[name]

    def _gather(self, name: str) -> _Gathered | None:
        pairs = {s: a.weights[name] for s, a in enumerate(self.distinct) if name in a.weights}
        if not pairs:
            return None
        a0, b0 = next(iter(pairs.values()))
        rank = max(a_t.shape[1] for a_t, _ in pairs.values())
        none = len(self.distinct)  # the all-zero slot: no adapter, or one not targeting `name`
        a_slots = a0.new_zeros((none + 1, a0.shape[0], rank))
        b_slots = b0.new_zeros((none + 1, rank, b0.shape[1]))
        for slot, (a_t, b_t) in pairs.items():
            a_slots[slot, :, : a_t.shape[1]] = a_t
            b_slots[slot, : b_t.shape[0], :] = b_t
        slots = [s if s in pairs else none for s in self.row_slots]
        index = torch.tensor(slots, dtype=torch.long, device=self.device)
        return _Gathered(a_slots.index_select(0, index), b_slots.index_select(0, index))

    def _mask(self, slots: tuple[int, ...], ranks: tuple[int, ...], dtype) -> torch.Tensor | None:
        key = (slots, ranks, dtype)
        if key not in self._masks:
            if len(slots) == 1 and all(s == slots[0] for s in self.row_slots):
                self._masks[key] = None  # every row uses the one adapter: nothing to mask
            else:
                starts, offset = {}, 0
                for slot, rank in zip(slots, ranks, strict=True):
                    starts[slot] = (offset, offset + rank)
                    offset += rank
                mask = torch.zeros((self.rows, offset), dtype=dtype)
                for row, slot in enumerate(self.row_slots):
                    if slot in starts:
                        lo, hi = starts[slot]
                        mask[row, lo:hi] = 1
                self._masks[key] = mask.to(self.device)
        return self._masks[key]


@dataclass
class LoraContext:
    """What the next forward applies: a `LoraPlan` (or nothing: the bare base for every row)."""

    plan: LoraPlan | None = field(default=None)

    @property
    def groups(self) -> LoraPlan | None:
        """The current plan (the name batch code uses to save and restore it)."""
        return self.plan

    @groups.setter
    def groups(self, value: LoraPlan | list | None) -> None:
        self.plan = value if isinstance(value, LoraPlan) else None

    def set_rows(self, adapters: list[DeviceAdapter | None], device: torch.device) -> None:
        """Plan a batch whose row i uses `adapters[i]` (`None` rows use the bare base)."""
        self.plan = LoraPlan(adapters, device)

    def clear(self) -> None:
        self.plan = None


class MultiLoraLinear(nn.Module):
    """A linear layer (plain or bitsandbytes) plus whatever adapters the context's plan names."""

    def __init__(self, base: nn.Module, name: str, context: LoraContext) -> None:
        super().__init__()
        self.base = base
        self.name = name
        self.context = context
        self.in_features = base.in_features
        self.out_features = base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        plan = self.context.plan
        if not plan:
            return out
        tokens = x.numel() // x.shape[-1]
        if len(plan.distinct) >= GATHERED_MIN_ADAPTERS and tokens <= (
            GATHERED_MAX_ROW_TOKENS * plan.rows
        ):
            return self._add_gathered(x, out, plan)
        if len(plan.distinct) == 1 or tokens <= STACKED_MAX_TOKENS:
            return self._add_stacked(x, out, plan)
        return self._add_grouped(x, out, plan)

    def _add_gathered(self, x: torch.Tensor, out: torch.Tensor, plan: LoraPlan) -> torch.Tensor:
        gathered = plan.gathered(self.name)
        if gathered is None:
            return out
        rows = plan.rows
        h = torch.bmm(x.reshape(rows, -1, x.shape[-1]).to(gathered.a_rows.dtype), gathered.a_rows)
        view = _view_or_none(out, (rows, -1, out.shape[-1]))
        if out.dtype == gathered.b_rows.dtype and view is not None:
            view.baddbmm_(h, gathered.b_rows)  # in place
            return out
        delta = torch.bmm(h, gathered.b_rows).to(out.dtype)
        return out + delta.view(out.shape)

    def _add_stacked(self, x: torch.Tensor, out: torch.Tensor, plan: LoraPlan) -> torch.Tensor:
        stacked = plan.stacked(self.name)
        if stacked is None:
            return out
        h = F.linear(x.to(stacked.a_cat.dtype), stacked.a_rows)  # [B, ..., R]
        if stacked.mask is not None:
            h = h * stacked.mask.view(plan.rows, *([1] * (h.dim() - 2)), -1)
        flat = _view_or_none(out, (-1, out.shape[-1]))
        if out.dtype == stacked.b_cat.dtype and flat is not None:
            flat.addmm_(h.reshape(-1, h.shape[-1]), stacked.b_cat)  # in place: no new output
            return out
        return out + (h @ stacked.b_cat).to(out.dtype)

    def _add_grouped(self, x: torch.Tensor, out: torch.Tensor, plan: LoraPlan) -> torch.Tensor:
        for adapter, rows in plan.groups:
            pair = adapter.weights.get(self.name)
            if pair is None:
                continue
            a_t, b_t = pair
            if rows is None:
                out = out + (x.to(a_t.dtype) @ a_t @ b_t).to(out.dtype)
            else:
                delta = x.index_select(0, rows).to(a_t.dtype) @ a_t @ b_t
                out.index_add_(0, rows, delta.to(out.dtype))  # `out` is this layer's own
        return out


def _view_or_none(out: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor | None:
    """`out` seen as `shape` without a copy (a packed member's column slice of its group's
    output too, see `packed.py`), or None when its strides allow no such view."""
    if out.stride(-1) != 1:
        return None
    try:
        return out.view(shape)
    except RuntimeError:
        return None


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
