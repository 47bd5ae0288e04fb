"""Bradley-Terry reward models: TRL's `RewardTrainer` on `{prompt, chosen, rejected}` pairs.

A one-label sequence classifier (the embedded base with LoRA on q_proj/v_proj and a trained
scalar `score` head) learns r(prompt + answer) with loss -logsigmoid(r_chosen - r_rejected)
(TRL's). A seeded share of the pairs is held out; the model's pairwise accuracy on them is
reported with n and a 95% bootstrap interval. Pairs come from the Arena's export or from the
loop's metric-scored samples (`runs/rlhf/<task>/iter<t>/pairs.jsonl`). `RewardModelScorer`
loads such a directory (safetensors only, no remote code) so `rlhf --reward DIR` can use it.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lora_land.errors import UserError
from lora_land.evaluation.stats import bootstrap_mean
from lora_land.rlhf.pairing import Pair, read_pairs

SUMMARY_FILE = "reward_model.json"


@dataclass(frozen=True)
class RewardModelSettings:
    epochs: float = 2.0
    lr: float = 2e-4
    batch_size: int = 8
    held_out: float = 0.2  # share of pairs kept for the accuracy figure
    max_length: int = 512
    rank: int = 8
    alpha: int = 16
    seed: int = 0
    max_steps: int = -1  # caps the steps (tests); -1: epochs decide


def split_pairs(pairs: Sequence[Pair], held_out: float, seed: int) -> tuple[list, list]:
    """(train, held-out): a seeded shuffle, at least one pair on each side."""
    if not 0 < held_out < 1:
        raise UserError(f"--held-out must be between 0 and 1 (got {held_out})")
    if len(pairs) < 2:
        raise UserError(f"a reward model needs at least 2 pairs (got {len(pairs)})")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_test = min(len(pairs) - 1, max(1, round(held_out * len(pairs))))
    test = [pairs[i] for i in order[:n_test]]
    train = [pairs[i] for i in order[n_test:]]
    return train, test


class RewardModelScorer:
    """Scores answers with a reward model trained by `train_reward_model` (implements Reward)."""

    def __init__(self, directory: Path, base_source: str | None = None, batch_size: int = 8):
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        directory = Path(directory)
        summary_path = directory / SUMMARY_FILE
        if not summary_path.is_file() or not (directory / "adapter_model.safetensors").is_file():
            raise UserError(
                f"{directory} is not a reward model made by `lora-land reward-model` "
                f"(needs {SUMMARY_FILE} and adapter_model.safetensors)"
            )
        self.summary = json.loads(summary_path.read_text())
        if base_source is None:
            from lora_land.evaluation.bases import resolve_base

            base_source = resolve_base(self.summary["base"]).source
        self.name = f"reward-model:{directory.name}"
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(base_source)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForSequenceClassification.from_pretrained(
            base_source, num_labels=1, dtype=torch.float32
        )
        model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = PeftModel.from_pretrained(model, str(directory)).eval()
        self.max_length = int(self.summary["settings"]["max_length"])

    @torch.no_grad()
    def rewards(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        eos = self.tokenizer.eos_token
        texts = [
            p + a + ("" if a.endswith(eos) else eos) for p, a in zip(prompts, answers, strict=True)
        ]
        values: list[float] = []
        self.tokenizer.padding_side = "right"
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
                add_special_tokens=False,
            )
            values += self.model(**batch).logits[:, 0].float().tolist()
        return values

    def score(
        self, prompts: Sequence[str], texts: Sequence[str], rows: Sequence[Mapping]
    ) -> list[float]:
        return self.rewards(prompts, texts)


def pairwise_accuracy(scorer: RewardModelScorer, pairs: Sequence[Pair]) -> list[float]:
    """Per pair: 1 when r(chosen) > r(rejected), 0.5 on a tie, else 0."""
    chosen = scorer.rewards([p.prompt for p in pairs], [p.chosen for p in pairs])
    rejected = scorer.rewards([p.prompt for p in pairs], [p.rejected for p in pairs])
    return [1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True)]


def train_reward_model(
    pairs_path: Path,
    out: Path,
    base: str = "smollm2-135m-instruct",
    settings: RewardModelSettings = RewardModelSettings(),
) -> dict:
    """Train on a pairs file, measure held-out pairwise accuracy, save to `out`; the summary."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from lora_land.evaluation.bases import resolve_base
    from lora_land.training.model_card import display_path

    pairs = read_pairs(pairs_path)
    train, test = split_pairs(pairs, settings.held_out, settings.seed)
    resolved = resolve_base(base)
    tokenizer = AutoTokenizer.from_pretrained(resolved.source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(settings.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolved.source, num_labels=1, dtype=torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    lora = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj"],
        task_type="SEQ_CLS",
    )
    data = Dataset.from_list(
        [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in train]
    )
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="lora_land_rm_") as work:
        args = RewardConfig(
            output_dir=work,
            learning_rate=settings.lr,
            num_train_epochs=settings.epochs,
            max_steps=settings.max_steps,
            per_device_train_batch_size=settings.batch_size,
            max_length=settings.max_length,
            seed=settings.seed,
            bf16=False,
            gradient_checkpointing=False,
            use_cpu=not torch.cuda.is_available(),
            logging_steps=1,
            save_strategy="no",
            report_to=[],
        )
        trainer = RewardTrainer(
            model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora
        )
        trainer.train()
        losses = [round(h["loss"], 5) for h in trainer.state.log_history if "loss" in h]
        out.mkdir(parents=True, exist_ok=True)
        trainer.model.save_pretrained(out, safe_serialization=True, save_embedding_layers=False)
    summary = {
        "base": base,  # as given: the embedded name, a local dir or a Hub id
        "base_name": resolved.name,
        "base_hub_id": resolved.hub_id,
        "pairs": display_path(pairs_path),
        "train_pairs": len(train),
        "settings": asdict(settings),
        "losses": losses,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    scorer = RewardModelScorer(out, resolved.source)
    accuracy = bootstrap_mean(pairwise_accuracy(scorer, test), seed=settings.seed)
    summary["held_out_accuracy"] = accuracy.as_dict()
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
