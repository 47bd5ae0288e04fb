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


def write_zoo_readme(out_dir: Path = ZOO_DIR, runs: Path | None = None) -> Path:
    """assets/adapters/README.md: every zoo v2 task, shipped or not and why, with intervals."""
    from lora_land.training.queue import RUNS_DIR, next_stage, read_json, task_dir
    from lora_land.training.recipes import QUEUE_ORDER
    from lora_land.training.ship import zoo_version

    runs = runs or RUNS_DIR
    lines = [
        "# The mini zoo: LoRA adapters for SmolLM2-135M-Instruct",
        "",
        "Zoo v2 (`lora-land zoo --resume`, then `lora-land zoo --ship`): each task's training",
        "rows are split into train and a seeded dev part (at least 100 rows); adapters are",
        "trained on train, the recipe and whether to ship are chosen on dev, and the chosen",
        "adapter and the bare base are then measured ONCE on the task's 50 evaluation rows",
        "(`shared/data/samples/<task>.jsonl`), greedy, at most 256 new tokens, the report's",
        "metric. An adapter ships only if its paired lift's 95% bootstrap interval on those",
        "rows lies above zero; a structured one (NER, data-to-text) also needs its second",
        "measure (entity F1, slot coverage) to rise. Each adapter directory holds its model card.",
        "",
        "| task | status | metric | n | base [95% CI] | adapter [95% CI] | lift [95% CI] "
        "| second measure lift [95% CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lifts, v1 = [], []
    for task in QUEUE_ORDER:
        result = read_json(task_dir(task, runs) / "result.json")
        version = zoo_version(out_dir / task)
        if version == 1:
            v1.append(task)
        if result is None:
            status = "v1 (chosen on the eval rows), v2 pending" if version == 1 else "pending"
            stage = next_stage(task, runs)
            lines.append(f"| {task} | {status} (next: {stage}) | | | | | | |")
            continue
        c = result.get("eval") or result["dev"]
        where = "eval" if result.get("eval") else "dev only"
        status = "**shipped**" if result["ships"] else f"not shipped: {result['reason']}"
        second = c.get("second")
        second_text = f"{second['measure']} {_ci(second['lift'], True)}" if second else ""
        if result["ships"]:
            lifts.append(c["lift"]["mean"])
        lines.append(
            f"| {task} | {status} | {c['metric']} ({where}) | {c['adapter']['n']} | "
            f"{_ci(c['base'])} | {_ci(c['adapter'])} | {_ci(c['lift'], True)} | {second_text} |"
        )
    if lifts:
        lines += [
            "",
            f"Mean lift of the {len(lifts)} shipped v2 adapters on the evaluation "
            f"rows: {sum(lifts) / len(lifts):+.3f}.",
        ]
    if v1:
        lines += [
            "",
            "Still v1 (trained on all training rows, chosen on the evaluation rows "
            "that also measured them, no intervals): " + ", ".join(v1) + ".",
        ]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _ci(d: dict, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(d['mean'])} [{f.format(d['low'])}, {f.format(d['high'])}]"


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train_zoo((argv if argv is not None else sys.argv[1:]) or list(ZOO_TASKS))


if __name__ == "__main__":
    main()
