"""Training examples: a task's rows turned into token ids with a loss mask, and length buckets.

Completion style, as in the report: the exact filled template, then the target, then EOS;
no chat wrapper. Only the target and EOS positions count in the loss. This module builds
tensors for the trainer; it does not train.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from lora_land.catalog import Task


@dataclass(frozen=True)
class Example:
    """One tokenized training row: `n_prompt` leading ids are the prompt (no loss)."""

    ids: tuple[int, ...]
    n_prompt: int


def build_examples(
    task: Task, rows: Sequence[dict], tokenizer, max_seq_len: int
) -> tuple[list[Example], int]:
    """Tokenize rows; prompts too long are cut from the left. Returns (examples, n_truncated)."""
    eos = tokenizer.eos_token_id
    examples, truncated = [], 0
    for row in rows:
        prompt = task.render(row, allow_blank=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(str(row["target"]), add_special_tokens=False)["input_ids"] + [eos]
        target_ids = target_ids[: max_seq_len // 2]
        room = max_seq_len - len(target_ids)
        if len(prompt_ids) > room:
            prompt_ids = prompt_ids[len(prompt_ids) - room :]
            truncated += 1
        examples.append(Example(tuple(prompt_ids + target_ids), len(prompt_ids)))
    return examples, truncated


def batch_schedule(
    n_examples: int, lengths: Sequence[int], batch_size: int, steps: int, seed: int
) -> list[list[int]]:
    """`steps` batches of example indices, bucketed by length to avoid padding waste.

    Deterministic for a seed, so a resumed run sees the same batches. Each epoch: shuffle,
    cut into chunks of 16 batches, sort each chunk by length, cut into batches, shuffle them.
    """
    rng = random.Random(seed)
    batches: list[list[int]] = []
    while len(batches) < steps:
        order = list(range(n_examples))
        rng.shuffle(order)
        chunk = batch_size * 16
        epoch = []
        for start in range(0, n_examples, chunk):
            part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
            epoch += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
        rng.shuffle(epoch)
        batches += [b for b in epoch if len(b) == batch_size or n_examples < batch_size]
    return batches[:steps]


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and a boolean `loss_mask`.

    `loss_mask[b, t]` is true where position t predicts a target token (t + 1 is a target).
    """
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    loss_mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for b, e in enumerate(examples):
        ids[b, : len(e.ids)] = torch.tensor(e.ids)
        attn[b, : len(e.ids)] = 1
        loss_mask[b, e.n_prompt - 1 : len(e.ids) - 1] = True
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss_mask}


def iter_batches(
    examples: Sequence[Example], schedule: Sequence[list[int]], pad_id: int, start: int = 0
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """(step, batch) pairs from step `start` on."""
    for step in range(start, len(schedule)):
        yield step, collate([examples[i] for i in schedule[step]], pad_id)
