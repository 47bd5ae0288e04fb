"""A lean decode step for Llama and Mistral models on a CPU: the same modules, less around them.

A batch-1 decode step of the embedded model spends about a third of its time outside the
linear layers on a 2-core CPU (`bench/batching.py`: `decode_over_linears_only`), and part
of that is transformers' machinery around the math rather than the math: per step it builds
a 4-D attention mask, and per layer it goes through the decoder layer's
gradient-checkpointing and output-capturing wrappers, keyword plumbing and the attention
interface's dispatch. Skipping it made batch-1 decode 1.05-1.09x faster on a 2-core Xeon
(`lean_over_full_forward_decode`, same run); the rest is ~1,000 small eager ops a step
(norms, rotary, residual adds, attention: ~10-70 us each in place), which only a compiled
step would fuse. vLLM and LoRAX run their own model code for the same reason.

`LeanDecoder(model)` computes one decode step (one new token per row, after a prefill)
with the model's own modules and weights: its embedding, each layer's norms' weights
(`F.rms_norm`, the same float32 math as `LlamaRMSNorm`), q/k/v/o and MLP projections called
as modules (so LoRA wrappers and packed projections work as in the full forward), its
rotary embedding (`rotary_emb`, every rope-scaling variant the model supports), the cache's
`update` (our KV slab), and `scaled_dot_product_attention` with the key/value heads shared
by their query groups. The mask is the rows' 2-D padding mask as a boolean [B, 1, 1, W]
(None when no row is padded), restricted to the last `sliding_window` columns for Mistral
(the same columns transformers' sliding-window mask keeps: a row's tokens sit contiguously
up to the shared last column, see `batch.new_cache`). Prefill stays on transformers' forward.

It serves only what it is checked against (`tests/engine/test_decoder.py`: the same logits
as the full forward, batch 1 and left-padded batches, with mixed adapters, packed
projections, and a sliding window): model types in `MODEL_TYPES` with float32 parameters on
a CPU, `sdpa` or `eager` attention, no dropout; anything else keeps the full forward
(`lean_decoder` returns None).

This module computes; it knows nothing about rows, adapters' plans or sampling.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

MODEL_TYPES = ("llama", "mistral")
_ATTR = "_lora_land_lean_decoder"  # the model's decoder, made once (None: not served)


class LeanDecoder:
    """One decode step of a Llama-family causal LM (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        config = model.config
        self.model = model
        self.body = model.model
        self.layers = list(self.body.layers)
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = self.layers[0].self_attn.head_dim
        self.scaling = self.layers[0].self_attn.scaling
        window = getattr(config, "sliding_window", None)
        self.window = int(window) if window and config.model_type == "mistral" else None

    @torch.inference_mode()
    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past_key_values,
    ) -> torch.Tensor:
        """Logits [B, V] (float32) for the next token of each row; `input_ids` [B, 1] the
        rows' last tokens, `attention_mask` [B, W] over the cache's columns after this step
        (1 real, 0 left padding), `position_ids` [B, 1]; the cache gains one column."""
        rows = input_ids.shape[0]
        x, cos, sin = self.embed(input_ids, position_ids)
        mask = self._mask(attention_mask)
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            h = _rms_norm(layer.input_layernorm, x)
            q = attn.q_proj(h).view(rows, 1, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(rows, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(rows, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
            keys, values = past_key_values.update(k, v, i)
            x = x + attn.o_proj(self.attend(q, keys, values, mask))
            h = _rms_norm(layer.post_attention_layernorm, x)
            mlp = layer.mlp
            x = x + mlp.down_proj(mlp.act_fn(mlp.gate_proj(h)) * mlp.up_proj(h))
        return self.logits(x)

    # -- the pieces the compiled step (compiled.py) shares -------------------------------
    def embed(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> tuple:
        """The rows' hidden states and rotary cos / signed sin, [B, 1, 1, D] over the heads."""
        x = self.body.embed_tokens(input_ids)
        cos, sin = self.body.rotary_emb(x, position_ids)
        return x, cos.unsqueeze(1), _signed(sin.unsqueeze(1))

    def attend(self, q, keys, values, mask) -> torch.Tensor:
        """One query token per row over the cache: [B, 1, heads x head_dim]. The query heads
        of a key/value head are that head's "rows" (no key/value copies)."""
        rows = q.shape[0]
        out = F.scaled_dot_product_attention(
            q.reshape(rows, self.kv_heads, self.heads // self.kv_heads, self.head_dim),
            keys,
            values,
            attn_mask=mask,
            scale=self.scaling,
        )
        return out.reshape(rows, 1, self.heads * self.head_dim)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The final norm and the LM head: float32 logits [B, V] of each row's last token."""
        return self.model.lm_head(_rms_norm(self.body.norm, x))[:, -1, :].float()

    def _mask(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """[B, 1, 1, W] boolean (True: attend), or None when every column counts."""
        keep = attention_mask.bool()
        if self.window is not None and keep.shape[1] > self.window:
            keep = keep.clone()
            keep[:, : keep.shape[1] - self.window] = False
        if bool(keep.all()):
            return None
        return keep[:, None, None, :]


def _rms_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), norm.weight, norm.variance_epsilon)


def _signed(sin: torch.Tensor) -> torch.Tensor:
    """`sin` with its first half negated: `rotate_half(x) * sin` is then `roll(x) * signed`
    (once per step, for every layer)."""
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding as transformers' `apply_rotary_pos_emb` (rotate_half convention:
    `x * cos + cat(-x2, x1) * sin`), in three ops instead of seven."""
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), signed_sin)


def supported(model: nn.Module) -> bool:
    """Whether `LeanDecoder` serves `model` (see the module docstring)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in MODEL_TYPES:
        return False
    body = getattr(model, "model", None)
    if body is None or not all(hasattr(body, a) for a in ("embed_tokens", "layers", "norm")):
        return False
    if not hasattr(body, "rotary_emb") or not hasattr(model, "lm_head"):
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    if getattr(config, "attention_dropout", 0.0) or getattr(model, "training", False):
        return False
    params = list(model.parameters())
    return bool(params) and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params)


def lean_decoder(model: nn.Module) -> LeanDecoder | None:
    """The model's lean decode step, made on first use; None where it does not serve."""
    if _ATTR not in model.__dict__:
        model.__dict__[_ATTR] = LeanDecoder(model) if supported(model) else None
    return model.__dict__[_ATTR]


def install_step(model: nn.Module, step) -> None:
    """Decode steps of `model` run `step` from now on (a `LeanDecoder`-like callable, e.g.
    the compiled step of `compiled.py`; None: the full forward)."""
    lean_decoder(model)  # made first, so that `step` is not replaced by it
    model.__dict__[_ATTR] = step


@contextmanager
def use_step(model: nn.Module, step):
    """Within the block decode steps run `step` (see `install_step`); restored on exit."""
    had = lean_decoder(model)
    install_step(model, step)
    try:
        yield
    finally:
        model.__dict__[_ATTR] = had


@contextmanager
def full_forward(model: nn.Module):
    """Within the block decode steps run transformers' full forward (a same-run baseline for
    benchmarks and tests); restored on exit."""
    had = lean_decoder(model)
    model.__dict__[_ATTR] = None
    try:
        yield
    finally:
        model.__dict__[_ATTR] = had
