"""One DPO step of the loop with TRL's `DPOTrainer`: LoRA weights only, reference fixed at pi_0.

The policy is pi_{t-1}'s adapter loaded trainable on the base (warm start); the reference is
pi_0 merged into a second copy of the base and passed explicitly as `ref_model` (TRL's default
reference for a PEFT model would be the current adapter, which drifts every iteration).
Sigmoid loss, beta 0.1 by default. The DPO loss is TRL's; nothing here re-implements it.
The DPO loss on the iteration's pairs is measured before and after training, and the KL proxy
(mean log-ratio policy/pi_0 on the chosen answers) after. The adapter is saved in the zoo's
format: PEFT config + fp16 safetensors, which the engine's validation accepts.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lora_land.errors import UserError
from lora_land.rlhf.pairing import Pair
from lora_land.training.trainer import save_fp16_adapter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DpoSettings:
    beta: float = 0.1  # the recipe's beta
    lr: float = 5e-5  # LoRA weights take a larger step than the recipe's full-model 5e-7
    epochs: float = 2.0  # passes over the iteration's pairs
    batch_size: int = 8  # pairs per optimizer step
    # pairs per forward: the step's batch is accumulated over batch_size / micro_batch forwards
    # (the same optimizer steps; activations, the bulk of a step's memory, shrink in proportion:
    # glue_qnli's ~250-token pairs peaked at ~9 GB resident with 8 pairs per forward)
    micro_batch: int = 2
    max_length: int = 512  # prompt + answer tokens (long prompts are cut from the start)
    max_steps: int = -1  # caps the steps (tests); -1: epochs decide
    seed: int = 0
    # Weight of an SFT (negative log-likelihood) term on the chosen answer beside the DPO loss
    # (TRL loss_type ["sigmoid", "sft"], the RPO recipe of Pang et al. 2024 for verifiable
    # rewards). 0: plain DPO. With one-token answers plain DPO lowers the likelihood of the
    # chosen answer too (likelihood displacement); the SFT term keeps it up.
    sft_weight: float = 0.0
    measure_before: bool = True  # also measure the DPO loss before training
    # bf16 autocast (fp32 LoRA weights and optimizer state): None = where the hardware computes
    # bf16 natively (CUDA with bf16, AVX512-BF16/AMX CPUs), as the zoo's trainer does. On this
    # machine's CPU a DPO step on 200-token prompts costs ~60 s of one core in fp32.
    bf16: bool | None = None

    def use_bf16(self) -> bool:
        if self.bf16 is not None:
            return self.bf16
        if torch.cuda.is_available():
            return torch.cuda.is_bf16_supported()
        from lora_land.engine.dtype_choice import cpu_supports_bf16

        return cpu_supports_bf16()


@dataclass
class DpoOutcome:
    steps: int
    loss_before: float | None  # DPO loss on the pairs, policy before this step
    loss_after: float  # ... and after
    kl_chosen: float  # mean log pi_t(chosen) - log pi_0(chosen)
    margin_after: float  # mean beta-scaled reward margin chosen - rejected after training
    train_losses: list[float] = field(default_factory=list)
    bf16: bool = False  # trained with bf16 autocast
    accumulation: int = 1  # forwards per optimizer step (micro-batches)

    def as_dict(self) -> dict:
        return asdict(self)


def _load_policy_and_reference(base_source: str, policy_dir: Path, ref_dir: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_source)
    base = AutoModelForCausalLM.from_pretrained(base_source, dtype=torch.float32)
    policy = PeftModel.from_pretrained(base, str(policy_dir), is_trainable=True)
    ref_base = AutoModelForCausalLM.from_pretrained(base_source, dtype=torch.float32)
    reference = PeftModel.from_pretrained(ref_base, str(ref_dir)).merge_and_unload()
    reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    return tokenizer, policy, reference


def _loss(settings: DpoSettings) -> dict:
    if settings.sft_weight < 0:
        raise UserError(f"the SFT weight must be >= 0 (got {settings.sft_weight})")
    if not settings.sft_weight:
        return {"loss_type": ["sigmoid"]}
    return {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, settings.sft_weight]}


def _dataset(pairs: Sequence[Pair]):
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    )


def train_dpo(
    base_source: str,
    policy_dir: Path,
    ref_dir: Path,
    pairs: Sequence[Pair],
    out: Path,
    hub_id: str,
    settings: DpoSettings = DpoSettings(),
) -> DpoOutcome:
    """Train pi_t from pi_{t-1} (`policy_dir`) on `pairs` against pi_0 (`ref_dir`) into `out`."""
    from trl import DPOConfig, DPOTrainer

    if not pairs:
        raise UserError("no preference pairs to train on (every prompt's answers tied)")
    micro = settings.micro_batch
    if micro < 1 or settings.batch_size % micro:
        raise UserError(
            f"the DPO batch ({settings.batch_size} pairs) must be a multiple of the micro-batch "
            f"({micro})"
        )
    tokenizer, policy, reference = _load_policy_and_reference(base_source, policy_dir, ref_dir)
    dataset = _dataset(pairs)
    with tempfile.TemporaryDirectory(prefix="lora_land_dpo_") as work:
        args = DPOConfig(
            output_dir=work,
            beta=settings.beta,
            **_loss(settings),
            learning_rate=settings.lr,
            num_train_epochs=settings.epochs,
            max_steps=settings.max_steps,
            per_device_train_batch_size=micro,
            gradient_accumulation_steps=settings.batch_size // micro,
            per_device_eval_batch_size=micro,
            max_length=settings.max_length,
            lr_scheduler_type="constant",
            seed=settings.seed,
            bf16=settings.use_bf16(),
            gradient_checkpointing=False,
            use_cpu=not torch.cuda.is_available(),
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            dataloader_num_workers=0,
        )
        trainer = DPOTrainer(
            model=policy,
            ref_model=reference,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        before = trainer.evaluate(dataset) if settings.measure_before else None
        trainer.train()
        after = trainer.evaluate(dataset)
        losses = [round(h["loss"], 5) for h in trainer.state.log_history if "loss" in h]
        save_fp16_adapter(trainer.model, Path(out), hub_id)
    return DpoOutcome(
        steps=trainer.state.global_step,
        loss_before=round(before["eval_loss"], 5) if before else None,
        loss_after=round(after["eval_loss"], 5),
        kl_chosen=round(after["eval_rewards/chosen"] / settings.beta, 5),
        margin_after=round(after["eval_rewards/margins"], 5),
        train_losses=losses,
        bf16=bool(args.bf16),
        accumulation=trainer.args.gradient_accumulation_steps,
    )
