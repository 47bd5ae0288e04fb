"""Batched sampling: each row's token depends only on its own logits, settings and generator."""

from __future__ import annotations

import torch

from lora_land.engine.sampling import make_generator, next_token, sample_rows, top_p_filter

CPU = torch.device("cpu")


def _logits(rows: int, vocab: int = 50, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 3


def test_greedy_rows_take_the_argmax():
    logits = _logits(4)
    got = sample_rows(logits, [0.0] * 4, [1.0] * 4, [None] * 4)
    assert got == logits.argmax(dim=-1).tolist()


def test_a_seeded_row_draws_the_same_tokens_alone_or_in_a_mixed_batch():
    logits = _logits(5, seed=1)
    alone_gen = make_generator(7, CPU)
    alone = [sample_rows(logits[2:3], [0.8], [0.9], [alone_gen])[0] for _ in range(30)]
    gens = [None, make_generator(1, CPU), make_generator(7, CPU), None, make_generator(3, CPU)]
    batched = [
        sample_rows(logits, [0.0, 1.3, 0.8, 0.0, 0.5], [1.0, 0.5, 0.9, 1.0, 1.0], gens)[2]
        for _ in range(30)
    ]
    assert batched == alone
    assert len(set(alone)) > 1  # it really samples


def test_batched_rows_match_the_one_row_form():
    logits = _logits(3, seed=2)
    settings = [(0.7, 0.8, 11), (1.0, 1.0, 12), (0.0, 1.0, None)]
    singles = [
        next_token(logits[i], t, p, make_generator(s, CPU) if s else None)
        for i, (t, p, s) in enumerate(settings)
    ]
    batched = sample_rows(
        logits,
        [t for t, _, _ in settings],
        [p for _, p, _ in settings],
        [make_generator(s, CPU) if s else None for _, _, s in settings],
    )
    assert batched == singles


def test_top_p_keeps_only_the_head_of_each_row_with_its_own_threshold():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]])
    kept = top_p_filter(probs, torch.tensor([[0.7], [float("inf")]]))
    assert kept[0].tolist() == [*probs[0].tolist()[:2], 0.0, 0.0]
    assert torch.equal(kept[1], probs[1])


def test_a_low_top_p_makes_sampling_pick_the_most_likely_token():
    logits = _logits(2, seed=3)
    gens = [make_generator(i, CPU) for i in range(2)]
    for _ in range(20):
        assert sample_rows(logits, [1.0, 1.0], [1e-6, 1e-6], gens) == logits.argmax(-1).tolist()
