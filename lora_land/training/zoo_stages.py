"""The stages of one zoo v2 task (see `lora_land.training.queue`): train, score, choose, result.

Each stage reads what the earlier ones wrote under `runs/zoo-v2/<task>/` and writes one more
file. Choosing uses the dev part of the split only; the evaluation rows are scored only for the
candidate chosen on dev, once. This module runs the real trainer and the real engine; it is an
offline tool.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lora_land.config import EMBEDDED_BASE, PROJECT_ROOT, Settings
from lora_land.evaluation.scored import ScoredRun, paired_lift, score_rows
from lora_land.evaluation.tasks import load_task, read_jsonl
from lora_land.training.model_card import display_path
from lora_land.training.queue import read_json, write_json
from lora_land.training.recipes import Recipe
from lora_land.training.shipping import shipping_verdict
from lora_land.training.split import TRAIN_DIR, load_split

EVAL_DIR = PROJECT_ROOT.parent / "shared" / "data" / "samples"
log = logging.getLogger("lora_land.zoo")


def adapter_dir(d: Path, recipe: str) -> Path:
    return Path(d) / recipe / "adapter"


def train_stage(task: str, recipe: Recipe, d: Path) -> None:
    from lora_land.training.trainer import TrainConfig, train

    config = TrainConfig(
        task=task,
        base=EMBEDDED_BASE,
        data=TRAIN_DIR / f"{task}.jsonl",
        out=adapter_dir(d, recipe.name),
        steps=recipe.steps,
        lr=recipe.lr,
        batch_size=recipe.batch_size,
        max_seq_len=recipe.max_seq_len,
        rank=recipe.rank,
        alpha=recipe.alpha,
        target_modules=recipe.target_modules,
        warmup_frac=recipe.warmup_frac,
        bf16=recipe.bf16,
        split="train",
    )
    result = train(config)
    log.info("%s/%s: final loss %.4f", task, recipe.name, result.final_loss)


def part_rows(task: str, part: str) -> tuple[list[dict], list[int], str]:
    """(rows of the file, indices of the part, the file as recorded) for "dev" or "eval"."""
    if part == "dev":
        split = load_split(task)
        return list(split.rows), list(split.dev_index), display_path(TRAIN_DIR / f"{task}.jsonl")
    path = EVAL_DIR / f"{task}.jsonl"
    rows = read_jsonl(path)
    return rows, list(range(len(rows))), display_path(path)


def score_stage(task: str, part: str, who: str, d: Path) -> ScoredRun:
    """Score the base (`who` == "base") or a recipe's adapter on the dev or eval rows."""
    from lora_land.deployment import AdapterSource, BaseSource, Deployment
    from lora_land.engine.engine import Engine
    from lora_land.engine.prepare import HUB_ID

    rows, index, data = part_rows(task, part)
    adapters = {}
    adapter_id = None
    if who != "base":
        adapter_id = f"{EMBEDDED_BASE}/{task}"
        adapters[adapter_id] = AdapterSource(adapter_id, task, path=adapter_dir(d, who))
    deployment = Deployment(
        name="zoo-v2",
        base=BaseSource(EMBEDDED_BASE, "embedded", EMBEDDED_BASE, HUB_ID),
        adapters=adapters,
    )
    # batches of rows: the compiled decode step serves one or two (engine/compiled.py)
    engine = Engine.from_settings(Settings.from_env(compile="off"), deployment)
    try:
        run = score_rows(
            engine, load_task(task), rows, index, adapter_id=adapter_id, data=data, part=part
        )
    finally:
        engine.close()
    run.save(Path(d) / f"{part}-{who}.json")
    log.info("%s %s %s: %s", task, part, who, run.interval().text())
    return run


def compare(task: str, part: str, who: str, d: Path) -> dict:
    """Base, adapter, paired lift (and the second measure's) of one recipe on one part."""
    from lora_land.evaluation.measures import second_measure_runs, validity_shares

    base = ScoredRun.load(Path(d) / f"{part}-base.json")
    tuned = ScoredRun.load(Path(d) / f"{part}-{who}.json")
    out = {
        "metric": base.metric,
        "data": base.data,
        "base": base.interval().as_dict(),
        "adapter": tuned.interval().as_dict(),
        "lift": paired_lift(tuned, base).as_dict(),
    }
    rows, _, _ = part_rows(task, part)
    valid = validity_shares(task, base, tuned)
    if valid is not None:
        out["valid_answers"] = {"base": valid[0], "adapter": valid[1]}
    majority = majority_reference(task, rows, tuned)
    if majority is not None:
        out["majority"] = majority
    second = second_measure_runs(task, rows, base, tuned)
    if second is not None:
        name, base2, tuned2 = second
        out["second"] = {
            "measure": name,
            "base": base2.interval().as_dict(),
            "adapter": tuned2.interval().as_dict(),
            "lift": paired_lift(tuned2, base2).as_dict(),
        }
    return out


def majority_reference(task: str, rows: list[dict], tuned: ScoredRun) -> dict | None:
    """The adapter against a constant answer (a classifier's most common training label, a
    numeric task's median target), on the adapter's rows: that answer's score and the
    adapter's paired lift over it. A lift over the base that a constant answer also gets is
    the answer format and the targets' prior, not reading the input."""
    from dataclasses import replace

    from lora_land.evaluation.measures import constant_answer
    from lora_land.evaluation.metrics import get_metric

    found = constant_answer(task)
    if found is None:
        return None
    answer, what = found
    spec = get_metric(tuned.metric)
    constant = replace(
        tuned,
        adapter="",
        predictions=[answer] * len(tuned.index),
        scores=[spec.score(answer, str(rows[i]["target"]), rows[i]) for i in tuned.index],
    )
    return {
        "label": answer,
        "what": what,
        "score": constant.interval().as_dict(),
        "adapter_lift": paired_lift(tuned, constant).as_dict(),
    }


def _verdict(task: str, comparison: dict, where: str):
    from lora_land.evaluation.stats import Interval

    second = comparison.get("second")
    majority = comparison.get("majority")
    return shipping_verdict(
        task,
        Interval(**comparison["lift"]),
        Interval(**second["lift"]) if second else None,
        where=where,
        over_constant=Interval(**majority["adapter_lift"]) if majority else None,
    )


def judge(task: str, result: dict) -> dict:
    """`result` with `ships` and `reason` from the current rule applied to its recorded dev
    and evaluation comparisons (the rule is applied on dev first, as the queue does)."""
    dev = _verdict(task, result["dev"], "dev")
    if not dev.ships:
        return result | {"ships": False, "reason": f"no lift on dev: {dev.reason}"}
    if not result.get("eval"):
        return result
    verdict = _verdict(task, result["eval"], "evaluation")
    return result | {"ships": verdict.ships, "reason": verdict.reason}


def choose_stage(task: str, recipes: list[str], d: Path) -> None:
    """Pick the recipe with the best dev score; it is a candidate if the rule holds on dev."""
    dev = {r: compare(task, "dev", r, d) for r in recipes}
    best = max(recipes, key=lambda r: dev[r]["adapter"]["mean"])  # ties: the first listed
    verdict = _verdict(task, dev[best], "dev")
    write_json(
        Path(d) / "choice.json",
        {"recipe": best, "candidate": verdict.ships, "reason": verdict.reason, "dev": dev},
    )
    log.info("%s: chose %s on dev; candidate=%s (%s)", task, best, verdict.ships, verdict.reason)


def result_stage(task: str, d: Path) -> None:
    """The verdict: measured once on the evaluation rows for a candidate, else why not."""
    choice = read_json(Path(d) / "choice.json")
    assert choice is not None
    recipe = choice["recipe"]
    if not choice["candidate"]:
        result = {"ships": False, "recipe": recipe, "reason": f"no lift on dev: {choice['reason']}"}
    else:
        evaluation = compare(task, "eval", recipe, d)
        verdict = _verdict(task, evaluation, "evaluation")
        result = {
            "ships": verdict.ships,
            "recipe": recipe,
            "reason": verdict.reason,
            "eval": evaluation,
        }
    result["dev"] = choice["dev"][recipe]
    result["date"] = ScoredRun.load(Path(d) / f"dev-{recipe}.json").date
    if choice["candidate"]:
        result["date"] = ScoredRun.load(Path(d) / f"eval-{recipe}.json").date
    write_json(Path(d) / "result.json", result)
    log.info("%s: ships=%s (%s)", task, result["ships"], result["reason"])
