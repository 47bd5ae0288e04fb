"""Choosing the next token of each row: greedy, or temperature + top-p with the row's generator.

Each row owns a `torch.Generator` seeded from its request, so a seeded request gives the same
text whatever else shares its batch. `sample_rows` picks one token for every row of a batch
with batched kernels (one argmax, one softmax, one sort for the sampled rows) and a single
device-to-host transfer per step, not one per row; only the draw itself runs per row, because
each row draws from its own generator. `next_token` is the one-row form.

This module only turns logits into token ids.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else random.randrange(2**63))
    return generator


def top_p_filter(probs: torch.Tensor, top_p: float | torch.Tensor) -> torch.Tensor:
    """Zero the tail of `probs` [..., V] outside the smallest set with mass >= top_p (a float,
    or a tensor [..., 1] of per-row thresholds; inf keeps every token)."""
    if isinstance(top_p, float) and top_p >= 1.0:
        return probs
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    cumulative = torch.cumsum(sorted_probs, dim=-1)
    drop = cumulative - sorted_probs > top_p  # keep the token that crosses the threshold
    sorted_probs = sorted_probs.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


def next_token(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    """One token id from a row's logits [V]."""
    return sample_rows(logits.unsqueeze(0), [temperature], [top_p], [generator])[0]


def sample_rows(
    logits: torch.Tensor,
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    generators: Sequence[torch.Generator | None],
) -> list[int]:
    """One token id per row of `logits` [B, V]; row i uses temperatures[i] (0: greedy),
    top_ps[i] and generators[i]. One host transfer for the whole batch."""
    return sample_tensor(logits, temperatures, top_ps, generators).tolist()


def sample_tensor(
    logits: torch.Tensor,
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """`sample_rows` without the host transfer: token ids [B] on the logits' device."""
    chosen = torch.argmax(logits, dim=-1)  # greedy rows keep this
    sampled = [i for i, t in enumerate(temperatures) if t > 0.0]
    if sampled:
        index = torch.tensor(sampled, dtype=torch.long, device=logits.device)
        temps = torch.tensor(
            [temperatures[i] for i in sampled], dtype=torch.float32, device=logits.device
        )
        probs = torch.softmax(logits.index_select(0, index).float() / temps[:, None], dim=-1)
        if any(top_ps[i] < 1.0 for i in sampled):
            limits = [top_ps[i] if top_ps[i] < 1.0 else float("inf") for i in sampled]
            threshold = torch.tensor(limits, dtype=torch.float32, device=logits.device)
            probs = top_p_filter(probs, threshold[:, None])
        draws = torch.cat(
            [torch.multinomial(probs[k], 1, generator=generators[i]) for k, i in enumerate(sampled)]
        )
        chosen = chosen.index_copy(0, index, draws)
    return chosen
