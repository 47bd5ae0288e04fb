"""Samples, preference pairs and the `max_min` pairing rule of the RLHF Workflow recipe.

Each prompt's K scored answers become at most one pair: the best answer as `chosen`, the
worst as `rejected` (RLHFlow's `max_min`), optionally after a length penalty
(reward - lambda * characters). Prompts whose answers all score the same teach nothing and
are skipped. Pairs are read and written as JSONL `{prompt, chosen, rejected}` (the Arena's
export format), so the reward-model trainer and the DPO step share one file format.
This module is plain Python: it samples and trains nothing and imports no torch.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lora_land.errors import UserError

log = logging.getLogger(__name__)
PAIR_KEYS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class Sample:
    """One sampled answer to one prompt, with how it was drawn and (once scored) its reward."""

    prompt_index: int  # position of the prompt in the iteration's slice
    prompt: str
    text: str
    temperature: float
    seed: int
    finish_reason: str
    completion_tokens: int
    reward: float | None = None


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str
    reward_chosen: float | None = None  # the rewards before any length penalty
    reward_rejected: float | None = None


@dataclass(frozen=True)
class Pairing:
    pairs: list[Pair]
    prompts: int  # prompts that had samples
    skipped_ties: int  # prompts whose answers all scored the same
    dropped_to_balance: int = 0  # pairs left out so every chosen answer is equally common
    skipped_length: int = 0  # prompts with no worse answer of a length like the best one's


def max_min_pairs(
    samples: Sequence[Sample], length_penalty: float = 0.0, max_length_ratio: float = 0.0
) -> Pairing:
    """Best vs worst answer per prompt; ties (all answers scored alike) are dropped.

    The ranking score is `reward - length_penalty * len(text)`; among equal scores the
    earliest sample wins, so the result is deterministic for a given sample order.

    With `max_length_ratio` R (>= 1; 0: off) the rejected answer is the worst among those
    whose length is within a factor R of the best one's; a prompt with no lower-scored answer
    of such a length is skipped (`skipped_length`). Length-matched pairs keep length from
    being what separates chosen from rejected: on webnlg and viggo the best of 8 samples
    were 20-25% shorter than the worst and the evaluation answers shortened under DPO. On
    viggo, 1.2x pairs kept the answers' length (96 -> 95 characters) but not the score
    (ROUGE 0.492 -> 0.468): length was not the whole story there."""
    if length_penalty < 0:
        raise UserError(f"length penalty must be >= 0 (got {length_penalty})")
    if max_length_ratio and max_length_ratio < 1:
        raise UserError(f"max length ratio must be >= 1 or 0 for none (got {max_length_ratio})")
    groups: dict[int, list[Sample]] = {}
    for s in samples:
        if s.reward is None:
            raise UserError(f"sample {s.seed} of prompt {s.prompt_index} has no reward yet")
        groups.setdefault(s.prompt_index, []).append(s)
    pairs, skipped, unmatched = [], 0, 0
    for index in sorted(groups):
        group = groups[index]
        ranked = [s.reward - length_penalty * len(s.text) for s in group]
        hi = max(range(len(group)), key=lambda i: (ranked[i], -i))
        lo = min(range(len(group)), key=lambda i: (ranked[i], i))
        if ranked[hi] == ranked[lo]:
            skipped += 1
            continue
        if max_length_ratio:
            near = [i for i in range(len(group)) if _within(group[i], group[hi], max_length_ratio)]
            lo = min(near, key=lambda i: (ranked[i], i))
            if ranked[lo] == ranked[hi]:
                unmatched += 1
                continue
        best, worst = group[hi], group[lo]
        pairs.append(Pair(best.prompt, best.text, worst.text, best.reward, worst.reward))
    return Pairing(pairs, len(groups), skipped, skipped_length=unmatched)


def _within(sample: Sample, best: Sample, ratio: float) -> bool:
    a, b = max(len(sample.text), 1), max(len(best.text), 1)
    return max(a, b) <= ratio * min(a, b)


def balance_chosen(pairing: Pairing, seed: int = 0) -> Pairing:
    """Keep as many pairs for each distinct chosen answer as the rarest one has (a seeded
    choice within each answer, original order kept).

    For label answers (classification), DPO on pairs whose chosen label is mostly one class
    moves the policy's label prior toward it: on glue_qnli 70 of 120 chosen answers were "1"
    in one iteration and the evaluation rows the policy then got wrong were the gold "0"
    ones; the next iterations' pairs leaned "0" and it lost "1" rows. Balanced pairs teach
    which label fits which prompt, not which label to say more often."""
    by_answer: dict[str, list[int]] = {}
    for i, pair in enumerate(pairing.pairs):
        by_answer.setdefault(pair.chosen.strip(), []).append(i)
    if len(by_answer) < 2:
        return pairing
    keep_n = min(len(v) for v in by_answer.values())
    rng = random.Random(seed)
    keep = sorted(i for v in by_answer.values() for i in rng.sample(v, keep_n))
    return Pairing(
        [pairing.pairs[i] for i in keep],
        pairing.prompts,
        pairing.skipped_ties,
        pairing.dropped_to_balance + len(pairing.pairs) - len(keep),
        pairing.skipped_length,
    )


def write_jsonl(path: Path, items: Iterable[object]) -> Path:
    """Dataclasses (or dicts) as JSONL, written to a temporary file then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        for item in items:
            f.write(json.dumps(item if isinstance(item, dict) else asdict(item)) + "\n")
    tmp.replace(path)
    return path


def read_samples(path: Path) -> list[Sample]:
    return [Sample(**json.loads(line)) for line in Path(path).read_text().splitlines() if line]


def read_pairs(path: Path) -> list[Pair]:
    """`{prompt, chosen, rejected}` JSONL (extra keys such as the Arena's metadata ignored);
    names the line of a bad row; pairs whose two texts are equal are skipped (and counted)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pairs file {path} not found")
    pairs, same = [], 0
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{i} is not valid JSON: {e}") from e
        if not isinstance(row, dict):
            raise UserError(f"{path}:{i}: expected an object with {list(PAIR_KEYS)}")
        bad = [k for k in PAIR_KEYS if not isinstance(row.get(k), str)]
        if bad:
            raise UserError(
                f"{path}:{i}: needs text in {list(PAIR_KEYS)}; missing or not text: {bad}"
            )
        if row["chosen"] == row["rejected"]:
            same += 1  # nothing to learn from; an Arena vote between identical answers
            continue
        pairs.append(Pair(row["prompt"], row["chosen"], row["rejected"]))
    if same:
        log.warning(
            "%s: skipped %d pair(s) whose chosen and rejected are the same text", path, same
        )
    if not pairs:
        raise UserError(f"pairs file {path} holds no usable pairs ({same} with identical texts)")
    return pairs
