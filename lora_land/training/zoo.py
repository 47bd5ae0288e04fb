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

# task -> (steps, max_seq_len): classification and short structured outputs a 135M model can
# learn, shortest prompts first so the cheapest adapters land first.
ZOO_TASKS: dict[str, tuple[int, int]] = {
    "glue_sst2": (100, 256),
    "glue_cola": (80, 256),
    "glue_qnli": (80, 256),
    "glue_mrpc": (80, 256),
    "glue_stsb": (80, 256),
    "winogrande": (80, 256),
    "arc_combined": (80, 256),
    "covid": (80, 256),
    "boolq": (80, 256),
    "glue_wnli": (80, 256),
}


def zoo_config(task: str, base: str = EMBEDDED_BASE, out_dir: Path = ZOO_DIR):
    from lora_land.training.trainer import TrainConfig

    steps, max_seq_len = ZOO_TASKS[task]
    return TrainConfig(
        task=task,
        base=base,
        data=TRAIN_DIR / f"{task}.jsonl",
        out=out_dir / task,
        steps=steps,
        max_seq_len=max_seq_len,
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


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train_zoo((argv if argv is not None else sys.argv[1:]) or list(ZOO_TASKS))


if __name__ == "__main__":
    main()
