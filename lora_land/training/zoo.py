"""The mini zoo: which tasks get an adapter on the embedded model, and a loop that trains them.

`python -m lora_land.training.zoo [TASK ...]` trains each zoo task into `assets/adapters/<task>/`
one after another, skipping adapters already trained with the same settings and resuming
interrupted ones from their checkpoint. It does not evaluate (see `lora_land.evaluation`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from lora_land.config import EMBEDDED_BASE, PROJECT_ROOT
from lora_land.training.model_card import read_summary

ZOO_DIR = PROJECT_ROOT / "assets" / "adapters"
TRAIN_DIR = PROJECT_ROOT.parent / "shared" / "data" / "samples" / "train"

# task -> (steps, max_seq_len, peak lr): the shipped zoo, in training order. Also tried on this
# base and not shipped for lack of lift (see assets/adapters/README.md): glue_cola, glue_stsb,
# glue_mrpc, glue_wnli. Single-token classifiers first learn the answer format (the label loss
# sits at chance for ~1 epoch) and only learn the task over several epochs: glue_sst2 went
# from 0.56 (100 steps at 1.5e-3) to 0.90 (400 steps at 1e-3), glue_qnli from 0.58 to 0.74.
ZOO_TASKS: dict[str, tuple[int, int] | tuple[int, int, float]] = {
    "glue_sst2": (400, 256, 1e-3),
    "glue_qnli": (300, 256, 1e-3),
    "conllpp": (60, 256),
    "e2e_nlg": (50, 256),
    "arc_combined": (50, 256),
    "covid": (40, 256),
    "winogrande": (50, 256),
    "webnlg": (40, 256),
}


def zoo_config(task: str, base: str = EMBEDDED_BASE, out_dir: Path = ZOO_DIR):
    from lora_land.training.trainer import TrainConfig

    steps, max_seq_len, *lr = ZOO_TASKS[task]
    return TrainConfig(
        task=task,
        base=base,
        data=TRAIN_DIR / f"{task}.jsonl",
        out=out_dir / task,
        steps=steps,
        max_seq_len=max_seq_len,
        **({"lr": lr[0]} if lr else {}),
    )


def is_trained(config) -> bool:
    """True when `config.out` holds an adapter trained with exactly these settings."""
    summary = read_summary(config.out)
    done = (Path(config.out) / "adapter_model.safetensors").is_file()
    return done and all(summary.get(k) == v for k, v in config.fingerprint().items())


def train_zoo(tasks: list[str]) -> None:
    """Train each task's adapter in turn (skip the trained, resume the interrupted)."""
    from lora_land.training.trainer import train

    for task in tasks:
        config = zoo_config(task)
        if is_trained(config):
            logging.info("%s: already trained, skipping", task)
            continue
        result = train(config)
        logging.info("%s: done, final loss %.4f -> %s", task, result.final_loss, result.out)


def write_zoo_readme(tasks: list[str] | None = None, out_dir: Path = ZOO_DIR) -> Path:
    """assets/adapters/README.md: the zoo's adapters with base and adapter scores measured here."""
    from lora_land.catalog.measured import read_measured

    measured = {(r.task, r.adapter): r for r in read_measured()}
    lines = [
        "# The mini zoo: LoRA adapters for SmolLM2-135M-Instruct",
        "",
        "Trained by this project with `lora-land zoo` (rank 8 on q_proj and v_proj, fp16",
        "safetensors, completion-style prompts with the report's exact templates) on the train",
        "rows in `shared/data/samples/train/`, and evaluated on the task's 50 evaluation rows in",
        "`shared/data/samples/` with greedy decoding (at most 256 new tokens) and the report's",
        "metric. Each adapter directory holds its model card (README.md). Given these",
        "completion-style prompts without a chat wrapper, the bare base model either ends its",
        "turn at once (glue_sst2) or talks around the question instead of answering in the",
        "task's format; the report's metrics score what it says, as the report did.",
        "",
        "| task | metric | base | adapter | lift | train steps | final loss |",
        "|---|---|---|---|---|---|---|",
    ]
    lifts = []
    for task in tasks or list(ZOO_TASKS):
        summary = read_summary(out_dir / task)
        base = measured.get((task, ""))
        tuned = measured.get((task, f"{EMBEDDED_BASE}/{task}"))
        if not summary or not base or not tuned:
            continue
        lifts.append(tuned.score - base.score)
        lines.append(
            f"| {task} | {tuned.metric} | {base.score:.3f} | {tuned.score:.3f} | "
            f"{tuned.score - base.score:+.3f} | {summary['steps']} | {summary['final_loss']:.3f} |"
        )
    tried = sorted(
        r.task
        for r in measured.values()
        if r.adapter == f"{EMBEDDED_BASE}/{r.task}" and not read_summary(out_dir / r.task)
    )
    if tried:
        lines += ["", "Trained and measured but not shipped (no clear lift over the base):", ""]
        for task in tried:
            base, tuned = measured.get((task, "")), measured[(task, f"{EMBEDDED_BASE}/{task}")]
            base_text = f"{base.score:.3f}" if base else "not measured"
            lines.append(f"- {task}: base {base_text}, adapter {tuned.score:.3f} ({tuned.metric})")
    if lifts:
        lines += [
            "",
            f"Mean lift over the base across {len(lifts)} adapters: "
            f"{sum(lifts) / len(lifts):+.3f} (n = 50 rows each, so each score has a "
            "standard error of up to about 0.07).",
        ]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train_zoo((argv if argv is not None else sys.argv[1:]) or list(ZOO_TASKS))


if __name__ == "__main__":
    main()
