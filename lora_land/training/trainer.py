"""LoRA training loop: the report's recipe (r=8 on q_proj and v_proj) scaled to a laptop CPU.

`train(config)` loads the base, wraps it with PEFT, trains on the task's completion-style
examples with the loss on the target (+EOS) only, checkpoints every few steps (safetensors +
JSON, so a killed run resumes where it stopped) and writes a standard PEFT adapter (fp16
safetensors) plus a model card. It does not evaluate; see `lora_land.evaluation.runner`.

Why this loop and not TRL's `SFTTrainer` (trl 1.16, installed for the DPO work): SFTTrainer's
completion-only loss is the same objective (prompt positions masked), but its forward computes
the LM head over every position (and token entropy for its metrics); `target_loss` here runs
the 49k-vocabulary head on the target positions alone, a large share of a step on this 135M
model on CPU. The length-bucketed, seeded batch schedule and the safetensors checkpoints that
resume mid-run are ours too, and tested. TRL stays the stack for preference training (DPO),
which this loop does not do.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from lora_land.errors import UserError
from lora_land.evaluation.bases import resolve_base
from lora_land.evaluation.tasks import load_task, read_rows
from lora_land.training.examples import batch_schedule, build_examples, iter_batches
from lora_land.training.model_card import SUMMARY_FILE, display_path, write_model_card
from lora_land.training.split import split_indices

log = logging.getLogger(__name__)
CHECKPOINT_DIR = "checkpoint"


@dataclass(frozen=True)
class TrainConfig:
    task: str  # catalog task name
    base: str  # "smollm2-135m-instruct", a local model dir or a Hub id
    data: Path  # JSONL with the template's fields and `target`
    out: Path  # adapter directory to write
    steps: int = 120  # optimizer steps
    lr: float = 1.5e-3  # peak learning rate (cosine decay, 3% warmup)
    batch_size: int = 8
    max_seq_len: int = 256  # longer prompts are cut from the left
    rank: int = 8  # LoRA rank (the report's r=8)
    alpha: int = 16
    dropout: float = 0.05
    warmup_frac: float = 0.03
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    seed: int = 0
    checkpoint_every: int = 20  # steps between resumable checkpoints
    split: str = "all"  # "train": only the train part of the seeded split (training.split)
    bf16: bool = False  # bf16 autocast for the forward (about 1.8x faster on AVX512-BF16 CPUs)

    def fingerprint(self) -> dict:
        """What must match for a checkpoint to be resumed."""
        d = asdict(self)
        d.pop("checkpoint_every")
        d.pop("out")
        d["data"] = display_path(self.data)  # "shared/data/...": no machine's own paths
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass
class TrainResult:
    out: Path
    steps: int
    final_loss: float  # mean loss over the last 10% of steps
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0


def training_rows(config: TrainConfig) -> list[dict]:
    """The rows to train on: all of `config.data`, or the train part of its seeded split."""
    rows = read_rows(config.data)
    if config.split == "all":
        return rows
    if config.split != "train":
        raise UserError(f"split {config.split!r} is not 'all' or 'train'")
    train_index, _ = split_indices(rows, config.task)
    return [rows[i] for i in train_index]


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup then cosine decay to zero."""
    warmup = max(1, round(config.warmup_frac * config.steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _load_model(source: str, config: TrainConfig):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.eos_token_id is None:
        raise UserError(f"base {source!r} has no EOS token; cannot mark where targets end")
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
        bias="none",
    )
    return tokenizer, get_peft_model(model, lora)


def target_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy on target positions only; the LM head runs on those positions alone."""
    lm = model.get_base_model()
    hidden = lm.get_decoder()(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    mask = batch["loss_mask"]
    labels = torch.roll(batch["input_ids"], shifts=-1, dims=1)[mask]
    logits = lm.get_output_embeddings()(hidden[mask]).float()
    return torch.nn.functional.cross_entropy(logits, labels)


def _trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(out: Path, model, opt, step: int, losses: list[float], cfg: TrainConfig):
    ckpt = out / CHECKPOINT_DIR
    tmp = out / (CHECKPOINT_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    params = _trainable(model)
    save_file({n: p.detach().contiguous() for n, p in params.items()}, tmp / "weights.safetensors")
    opt_tensors, opt_steps = {}, {}
    for n, p in params.items():
        state = opt.state.get(p, {})
        if state:
            opt_tensors[f"exp_avg.{n}"] = state["exp_avg"].contiguous()
            opt_tensors[f"exp_avg_sq.{n}"] = state["exp_avg_sq"].contiguous()
            opt_steps[n] = float(state["step"])
    save_file(opt_tensors or {"empty": torch.zeros(1)}, tmp / "optimizer.safetensors")
    meta = {"step": step, "losses": losses, "opt_steps": opt_steps, "config": cfg.fingerprint()}
    (tmp / "state.json").write_text(json.dumps(meta))
    shutil.rmtree(ckpt, ignore_errors=True)
    tmp.rename(ckpt)


def _load_checkpoint(out: Path, model, opt, cfg: TrainConfig) -> tuple[int, list[float]]:
    """Restore weights and optimizer state; (0, []) when there is nothing to resume."""
    ckpt = out / CHECKPOINT_DIR
    if not (ckpt / "state.json").is_file():
        return 0, []
    meta = json.loads((ckpt / "state.json").read_text())
    if meta["config"] != cfg.fingerprint():
        log.warning("checkpoint in %s was made with other settings; starting over", ckpt)
        return 0, []
    params = _trainable(model)
    weights = load_file(ckpt / "weights.safetensors")
    opt_tensors = load_file(ckpt / "optimizer.safetensors")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])
            if n in meta["opt_steps"]:
                opt.state[p] = {
                    "step": torch.tensor(meta["opt_steps"][n]),
                    "exp_avg": opt_tensors[f"exp_avg.{n}"].clone(),
                    "exp_avg_sq": opt_tensors[f"exp_avg_sq.{n}"].clone(),
                }
    return meta["step"], list(meta["losses"])


def save_fp16_adapter(model, out: Path, hub_id: str) -> None:
    """PEFT files with fp16 safetensors weights and the base's Hub id in the config (the zoo's
    adapters and the RLHF loop's DPO adapters are written by this one function)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True, save_embedding_layers=False)
    weights_path = out / "adapter_model.safetensors"
    weights = load_file(weights_path)
    save_file(
        {k: v.to(torch.float16).contiguous() for k, v in weights.items()},
        weights_path,
        metadata={"format": "pt"},
    )
    config_path = out / "adapter_config.json"
    # safetensors 0.8 writes through a private temp file (mode 0600): an adapter trained by one
    # user and served by another (a container, a service account) would be unreadable there.
    # The weights take the mode the config was created with (the process's umask decides)
    weights_path.chmod(config_path.stat().st_mode & 0o777)
    adapter_config = json.loads(config_path.read_text())
    adapter_config["base_model_name_or_path"] = hub_id
    config_path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")


def train(config: TrainConfig, on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train one adapter. Steps: 1. task + rows, 2. model, 3. examples and batch schedule,
    4. resume, 5. loop with checkpoints, 6. save adapter, model card, and drop the checkpoint.
    """
    task = load_task(config.task)
    rows = training_rows(config)
    base = resolve_base(config.base)
    tokenizer, model = _load_model(base.source, config)
    examples, truncated = build_examples(task, rows, tokenizer, config.max_seq_len)
    if truncated:
        log.warning("%d of %d prompts cut to %d tokens", truncated, len(rows), config.max_seq_len)
    schedule = batch_schedule(
        len(examples), [len(e.ids) for e in examples], config.batch_size, config.steps, config.seed
    )
    params = list(_trainable(model).values())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    start, losses = _load_checkpoint(out, model, opt, config)
    if start:
        log.info("resuming %s from step %d", out, start)
    torch.manual_seed(config.seed + start)
    model.train()
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    bar = tqdm(total=config.steps, initial=start, desc=f"train {config.task}", unit="step")
    t0 = time.monotonic()
    for step, batch in iter_batches(examples, schedule, pad_id, start):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            loss = target_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(round(loss.item(), 5))
        bar.update(1)
        bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.4f}")
        if on_step:
            on_step(step, losses[-1])
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            _save_checkpoint(out, model, opt, step + 1, losses, config)
    bar.close()
    tail = losses[-max(1, len(losses) // 10) :] if losses else [float("nan")]
    result = TrainResult(out, config.steps, sum(tail) / len(tail), losses, start)
    save_fp16_adapter(model, out, base.hub_id)
    summary = {
        **config.fingerprint(),
        "base_name": base.name,
        "base_hub_id": base.hub_id,
        "n_rows": len(rows),
        "final_loss": round(result.final_loss, 4),
        "first_loss": losses[0] if losses else None,
        "losses": losses,
        "train_seconds_this_run": round(time.monotonic() - t0, 1),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    write_model_card(out)
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    return result
