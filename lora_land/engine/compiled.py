"""The lean decode step compiled with Inductor: one graph per step instead of ~1,000 eager ops.

A batch-1 decode step of the embedded model on a 2-core CPU spends about a third of its time
outside the linear layers, in ~1,000 small eager ops (norms, rotary, residual adds, the LoRA
deltas, attention), each paying PyTorch's dispatch. `torch.compile` makes the whole step one
graph: Inductor fuses the element-wise work into a few C++ loops and calls the matrix
products directly. Same-run measurements on a 2-core Xeon: 1.11-1.27x batch-1 decode over the
eager lean step (`bench/batching.py`: `compiled_over_eager_decode`).

What it costs and how that is contained:
- Compile time. Tracing 30 layers one by one took 2-4 minutes on 2 cores; each layer is
  instead a `nested_compile_region` (compiled once, stamped out per layer), keyed by which of
  its projections carry a LoRA delta and of what kind (`_lora_code`): ~25 s cold, ~12 s with
  Inductor's on-disk cache. It happens once, after load (`warm_up`), never in a request;
  each graph holds the engine's model lock while it compiles (tracing patches
  `nn.Module.__call__` process-wide).
- Guards and recompiles. The graph takes tensors only: every projection's weight and its
  LoRA spec (`_spec`, from the batch's `LoraPlan`, computed outside the graph and kept per
  plan), so a new adapter, a new batch composition or a newly wrapped module is new inputs,
  not new code. The KV slab's `update` runs inside (its column counters become symbolic after
  the warm-up's second prompt length). After the warm-up the compiler's stance is
  `eager_on_recompile`: a step whose shapes no compiled graph covers (a batch size or LoRA
  layout the warm-up did not see, a slab growing) runs eagerly, at the eager lean step's speed,
  and nothing ever compiles while a request waits.
- What it serves: whatever `LeanDecoder` serves (Llama/Mistral, float32 on a CPU), with plain
  `nn.Linear` projections under the LoRA wrappers (PyTorch's BLAS: `cpu_linear` chose them),
  no biases and a SiLU-gated MLP. oneDNN-packed projections keep the eager step.

`compiled_decoder(model, lean)` makes it (None where it does not serve); the engine warms it
at load (`Engine.warm_up_compiled`) and `batch.RunningBatch` calls it like the eager step.
Tests (`tests/engine/test_compiled.py`): the same logits as the eager step (1e-4) for one row
and for left-padded rows over mixed adapters, and no recompile after the warm-up for a new
prompt length, adapter or batch composition it covers.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from lora_land.engine.decoder import LeanDecoder, _rotate
from lora_land.engine.kv_slab import SlabLayer
from lora_land.engine.lora import GATHERED_MIN_ADAPTERS, DeviceAdapter, LoraPlan, MultiLoraLinear

log = logging.getLogger(__name__)

_PLAN_SPECS = "_lora_land_compiled_specs"  # per plan: every projection's LoRA spec
# a spec: None (no delta), ("s", A_cat^T [R, in], B_cat [R, out], row mask [B, 1, R] | None)
# or ("g", A_rows [B, in, r], B_rows [B, r, out]) (see lora.py's stacked / gathered paths)
_KINDS = {None: 0, "s": 1, "sm": 2, "g": 3}


def _kind(spec) -> int:
    if spec is None:
        return 0
    if spec[0] == "s":
        return _KINDS["s"] if spec[3] is None else _KINDS["sm"]
    return _KINDS["g"]


def _lora_code(specs) -> int:
    code = 0
    for spec in specs:
        code = code * 4 + _kind(spec)
    return code


def _project(h: torch.Tensor, weight: torch.Tensor, spec) -> torch.Tensor:
    """`h @ weight^T` plus the rows' LoRA deltas (the math of `MultiLoraLinear`)."""
    out = F.linear(h, weight)
    if spec is None:
        return out
    if spec[0] == "s":
        _, a_rows, b_cat, mask = spec
        t = F.linear(h, a_rows)
        if mask is not None:
            t = t * mask
        return out + t @ b_cat
    _, a_rows, b_rows = spec
    rows = h.shape[0]
    t = torch.bmm(torch.bmm(h.reshape(rows, -1, h.shape[-1]), a_rows), b_rows)
    return out + t.view(out.shape)


def _attention_in(x, norm, eps: float, wq, wk, wv, sq, sk, sv, cos, sin, shape: tuple):
    """A layer up to attention: its norm, q/k/v (+ LoRA), rotary. `shape`: (query heads,
    key/value heads, head dim)."""
    heads, kv_heads, dim = shape
    rows = x.shape[0]
    h = F.rms_norm(x, (x.shape[-1],), norm, eps)
    q = _project(h, wq, sq).view(rows, 1, heads, dim).transpose(1, 2)
    k = _project(h, wk, sk).view(rows, 1, kv_heads, dim).transpose(1, 2)
    v = _project(h, wv, sv).view(rows, 1, kv_heads, dim).transpose(1, 2)
    return _rotate(q, cos, sin), _rotate(k, cos, sin), v


def _attention_out(x, attended, wo, so, norm, eps: float, wg, wu, wd, sg, su, sd):
    """A layer after attention: o_proj and the residual, its norm, the MLP and the residual."""
    x = x + _project(attended, wo, so)
    h = F.rms_norm(x, (x.shape[-1],), norm, eps)
    return x + _project(F.silu(_project(h, wg, sg)) * _project(h, wu, su), wd, sd)


def _in_key(x, norm, eps, wq, wk, wv, sq, sk, sv, *rest) -> int:
    return _lora_code((sq, sk, sv))


def _out_key(x, attended, wo, so, norm, eps, wg, wu, wd, sg, su, sd) -> int:
    return _lora_code((so, sg, su, sd))


_attention_in_region = torch.compiler.nested_compile_region(_attention_in, reuse_hash_fn=_in_key)
_attention_out_region = torch.compiler.nested_compile_region(_attention_out, reuse_hash_fn=_out_key)

_ATTENTION = ("q_proj", "k_proj", "v_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


class CompiledDecoder:
    """`LeanDecoder`'s step as one compiled graph (see the module docstring)."""

    def __init__(self, lean: LeanDecoder) -> None:
        self.lean = lean
        self.shape = (lean.heads, lean.kv_heads, lean.head_dim)
        self.compile_s = 0.0  # seconds spent compiling in `warm_up`
        # automatic dynamic shapes: the slab's column counters become symbolic when the
        # warm-up's second step changes them (dynamic=True from the start fails in Dynamo's
        # nested regions in torch 2.13)
        self._step = torch.compile(self._graph)

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past_key_values,
    ) -> torch.Tensor:
        """As `LeanDecoder.__call__`: logits [B, V] (float32), the cache gains a column."""
        weights, specs = self._inputs()
        mask = self.lean._mask(attention_mask)
        _static(input_ids), _static(position_ids), _static(mask, dims=3)  # its width varies
        with torch.inference_mode():
            return self._step(input_ids, mask, position_ids, past_key_values, weights, specs)

    def _graph(self, input_ids, mask, position_ids, cache, weights, specs):
        lean = self.lean
        x, cos, sin = lean.embed(input_ids, position_ids)
        for i, layer in enumerate(lean.layers):
            w, s = weights[i], specs[i]
            ln1, ln2 = layer.input_layernorm, layer.post_attention_layernorm
            q, k, v = _attention_in_region(
                x, ln1.weight, ln1.variance_epsilon, w[0], w[1], w[2], s[0], s[1], s[2],
                cos, sin, self.shape,
            )  # fmt: skip
            keys, values = cache.update(k, v, i)
            x = _attention_out_region(
                x, lean.attend(q, keys, values, mask), w[3], s[3], ln2.weight,
                ln2.variance_epsilon, w[4], w[5], w[6], s[4], s[5], s[6],
            )  # fmt: skip
        return lean.logits(x)

    # -- inputs, computed outside the graph ------------------------------------------------
    def _inputs(self) -> tuple[list, list]:
        """Every projection's weight and LoRA spec, by layer (re-read at each step: the engine
        wraps modules when an adapter first loads; specs are kept per plan)."""
        projections = [_layer_projections(layer) for layer in self.lean.layers]
        plan = _plan(projections)
        weights = [[_base(m).weight for m in layer] for layer in projections]
        if not plan:
            return weights, [[None] * 7 for _ in projections]
        specs = plan.__dict__.get(_PLAN_SPECS)
        if specs is None:
            specs = plan.__dict__[_PLAN_SPECS] = _specs(plan, projections)
        return weights, specs

    # -- warm-up -----------------------------------------------------------------------------
    def warm_up(
        self,
        adapter: DeviceAdapter | None,
        before_each: Callable[[], None] | None = None,
        exclusive: AbstractContextManager | None = None,
    ) -> None:
        """Compile the graphs of the layouts users make most: one row bare, one row with
        `adapter`, and two left-padded rows mixing both (a side-by-side comparison), on
        synthetic caches and the model's real weights and LoRA specs. Each layout runs at
        two cache widths and offsets, so the cache's column counters become symbolic and
        later prompt lengths reuse the graph. It writes only its own caches, but each step
        must hold `exclusive` (the engine's model lock) while it compiles: tracing patches
        `nn.Module.__call__` process-wide (torch.fx), so an eager forward in another thread
        meanwhile failed with "NameError: module is not installed as a submodule" (a
        request in the app's first minute). The engine serves the eager step between steps;
        `before_each` runs before each (the engine waits there until it is idle)."""
        started = time.perf_counter()
        layouts = [[None], [adapter], [adapter, None]] if adapter is not None else [[None]]
        with torch.compiler.set_stance("default"), torch.inference_mode():
            for layout in layouts:
                for width, cut in ((9, 0), (14, 3)):
                    if before_each is not None:
                        before_each()
                    with exclusive if exclusive is not None else nullcontext():
                        self._warm_step(layout, width, cut)
        self.compile_s += time.perf_counter() - started

    def _warm_step(self, layout: list[DeviceAdapter | None], width: int, cut: int) -> None:
        lean = self.lean
        device = lean.model.lm_head.weight.device
        rows = len(layout)
        projections = [_layer_projections(layer) for layer in lean.layers]
        weights = [[_base(m).weight for m in layer] for layer in projections]
        plan = LoraPlan(layout, device)
        specs = _specs(plan, projections) if plan else [[None] * 7 for _ in projections]
        cache = DynamicCache()
        shape = (rows, lean.kv_heads, width, lean.head_dim)
        cache.layers = [SlabLayer(torch.zeros(shape), torch.zeros(shape)) for _ in lean.layers]
        for layer in cache.layers:
            layer.cut_left(cut)
        kept = width - cut
        mask = None
        if rows > 1:  # the second row is shorter: left padding
            mask = torch.ones((rows, 1, 1, kept + 1), dtype=torch.bool, device=device)
            mask[1:, :, :, : kept // 2] = False
        input_ids = torch.full((rows, 1), 17, dtype=torch.long, device=device)
        position_ids = torch.full((rows, 1), kept, dtype=torch.long, device=device)
        _static(input_ids), _static(position_ids), _static(mask, dims=3)
        self._step(input_ids, mask, position_ids, cache, weights, specs)

    def compiles(self) -> int:
        """Graphs compiled so far in this process (Dynamo's count)."""
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])


def _static(tensor: torch.Tensor | None, dims: int | None = None) -> None:
    """Keep the tensor's sizes out of automatic dynamic shapes: a size that differs between
    warm-up batches (rows, the plan's total rank; the first `dims` dimensions, default all)
    would become symbolic, and stamping a
    nested region out with symbolic inputs fails in torch 2.13 (KeyError in Dynamo's
    `stamp_out_subgraph`). Such steps recompile instead (or, after the warm-up, run eagerly);
    the cache's column counters, which change every step, stay symbolic."""
    if tensor is not None:
        for dim in range(tensor.dim() if dims is None else dims):
            torch._dynamo.mark_static(tensor, dim)


def _layer_projections(layer: nn.Module) -> list[nn.Module]:
    attn, mlp = layer.self_attn, layer.mlp
    return [getattr(attn, n) for n in (*_ATTENTION, "o_proj")] + [getattr(mlp, n) for n in _MLP]


def _base(module: nn.Module) -> nn.Module:
    return module.base if isinstance(module, MultiLoraLinear) else module


def _plan(projections: list[list[nn.Module]]) -> LoraPlan | None:
    for layer in projections:
        for module in layer:
            if isinstance(module, MultiLoraLinear):
                return module.context.plan
    return None


def _specs(plan: LoraPlan, projections: list[list[nn.Module]]) -> list[list]:
    """Every projection's LoRA spec for `plan`, by layer, with static sizes (`_static`)."""
    specs = [[_spec(m, plan) for m in layer] for layer in projections]
    for spec in (spec for layer in specs for spec in layer if spec is not None):
        for tensor in spec[1:]:
            _static(tensor)
    return specs


def _spec(module: nn.Module, plan: LoraPlan):
    """The module's LoRA spec for a decode step of `plan` (None: no delta), choosing the
    path `MultiLoraLinear.forward` takes for one token per row."""
    if not isinstance(module, MultiLoraLinear):
        return None
    if len(plan.distinct) >= GATHERED_MIN_ADAPTERS:
        gathered = plan.gathered(module.name)
        return None if gathered is None else ("g", gathered.a_rows, gathered.b_rows)
    stacked = plan.stacked(module.name)
    if stacked is None:
        return None
    # a copy per module: modules share the plan's masks, and a compiled region's inputs
    # must not alias one another
    mask = None if stacked.mask is None else stacked.mask.view(plan.rows, 1, -1).clone()
    return ("s", stacked.a_rows, stacked.b_cat, mask)


def supported(lean: LeanDecoder | None) -> bool:
    """Whether the lean step of this model can be compiled (see the module docstring)."""
    if lean is None or getattr(lean.model.config, "hidden_act", None) != "silu":
        return False  # the compiled MLP is SwiGLU (the lean step calls the model's act_fn)
    for layer in lean.layers:
        for module in _layer_projections(layer):
            base = _base(module)
            if type(base) is not nn.Linear or base.bias is not None:
                return False
    head = lean.model.lm_head
    return isinstance(head, nn.Linear) and not isinstance(head, MultiLoraLinear)


def cxx_available() -> bool:
    """Whether Inductor can compile its C++ kernels here (a C++ compiler on PATH: `CXX`,
    g++, c++ or clang++); slim containers have none."""
    names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    return any(name and shutil.which(name) for name in names)


def settle() -> None:
    """After the warm-up: compile nothing more in this process (`eager_on_recompile`)."""
    torch.compiler.set_stance("eager_on_recompile")
