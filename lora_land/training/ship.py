"""Shipping zoo v2 results: queue outputs in `runs/zoo-v2/` -> `assets/adapters/` + leaderboard.

`ship_all()` (`lora-land zoo --ship`) goes through the queue's finished tasks:
- a task whose `result.json` says it ships: its adapter files are copied into
  `assets/adapters/<task>/` (replacing a v1 adapter), its training summary records which split
  chose it and which measured it, its model card is rewritten, and the base's and adapter's
  rows in `leaderboards/measured_here.csv` get n, the 95% intervals, the paired lift and the
  second measure;
- a task that does not ship: a v1 adapter of that task (chosen on the evaluation rows, before
  this rule) is retired from the zoo and its measured rows go with it; the reason stays in
  `runs/zoo-v2/<task>/result.json` and the zoo README.
Variant directories (`<task>@<variant>`, another branch's) are never touched. This module
copies files and writes text; it trains and measures nothing.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path

from lora_land.catalog.measured import MEASURED_PATH, MeasuredRow, read_measured, write_measured
from lora_land.config import EMBEDDED_BASE, PROJECT_ROOT
from lora_land.training.model_card import SUMMARY_FILE, read_summary, write_model_card
from lora_land.training.queue import RUNS_DIR, keep_record, read_json, task_dir, write_json
from lora_land.training.recipes import QUEUE_ORDER, RECIPES
from lora_land.training.split import SPLIT_SEED, dev_rows_for
from lora_land.training.zoo_stages import judge

ZOO_DIR = PROJECT_ROOT / "assets" / "adapters"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", SUMMARY_FILE)
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
log = logging.getLogger("lora_land.zoo")


def zoo_version(adapter_dir: Path) -> int | None:
    """2 for an adapter shipped by this module, 1 for an earlier one, None if absent."""
    if not (Path(adapter_dir) / "adapter_model.safetensors").is_file():
        return None
    return 2 if "zoo" in read_summary(adapter_dir) else 1


def measured_rows(task: str, result: dict) -> list[MeasuredRow]:
    """The base's and the adapter's "measured here" rows from a task's evaluation comparison."""
    ev = result["eval"]
    second = ev.get("second") or {}
    date = result.get("date", "")

    def row(who: str, adapter: str) -> MeasuredRow:
        extra = {}
        if adapter:
            extra = {
                "lift": ev["lift"]["mean"],
                "lift_low": ev["lift"]["low"],
                "lift_high": ev["lift"]["high"],
            }
        if second:
            extra |= {
                "second_metric": second["measure"],
                "second_score": second[who]["mean"],
                "second_low": second[who]["low"],
                "second_high": second[who]["high"],
            }
            if adapter:
                extra |= {
                    "second_lift": second["lift"]["mean"],
                    "second_lift_low": second["lift"]["low"],
                    "second_lift_high": second["lift"]["high"],
                }
        return MeasuredRow(
            date=date,
            task=task,
            base_model=EMBEDDED_BASE,
            adapter=adapter,
            metric=ev["metric"],
            score=ev[who]["mean"],
            n=ev[who]["n"],
            data=ev["data"],
            model=HUB_ID,
            low=ev[who]["low"],
            high=ev[who]["high"],
            **extra,
        )

    return [row("base", ""), row("adapter", f"{EMBEDDED_BASE}/{task}")]


def with_majority(task: str, result: dict, runs: Path) -> dict:
    """Add the constant-answer reference (classifiers) to a verdict made before it existed;
    the verdict itself does not change."""
    from lora_land.evaluation.measures import constant_answer
    from lora_land.evaluation.scored import ScoredRun
    from lora_land.training.zoo_stages import majority_reference, part_rows

    if constant_answer(task) is None:  # free text: nothing to add, no rows to read
        return result
    for part in ("dev", "eval"):
        comparison = result.get(part)
        tuned = task_dir(task, runs) / f"{part}-{result['recipe']}.json"
        if not comparison or "majority" in comparison or not tuned.is_file():
            continue
        rows, _, _ = part_rows(task, part)
        majority = majority_reference(task, rows, ScoredRun.load(tuned))
        if majority is not None:
            comparison["majority"] = majority
    return result


def ship_task(task: str, result: dict, runs: Path, zoo: Path) -> None:
    """Copy the chosen adapter into the zoo with the record of how it was chosen and measured."""
    source = task_dir(task, runs) / result["recipe"] / "adapter"
    target = Path(zoo) / task
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ADAPTER_FILES:
        shutil.copy2(source / name, target / name)
    summary = read_summary(target)
    choice = read_json(task_dir(task, runs) / "choice.json") or {}
    summary.pop("eval", None)  # v1's single-number record; superseded by "zoo"
    summary["zoo"] = {
        "version": 2,
        "recipe": result["recipe"],
        "recipe_text": RECIPES[result["recipe"]].describe(),
        "recipes_compared": sorted(choice.get("dev", {})),
        "chosen_on": {
            "part": "dev",
            "data": result["dev"]["data"],
            "n": result["dev"]["adapter"]["n"],
            "split": f"seeded ({SPLIT_SEED!r}), >= {dev_rows_for(task)} rows held out of training",
        },
        "measured_on": {
            "part": "eval",
            "data": result["eval"]["data"],
            "n": result["eval"]["adapter"]["n"],
            "times": 1,
        },
        "dev": result["dev"],
        "eval": result["eval"],
        "reason": result["reason"],
        "date": result.get("date", ""),
    }
    (target / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    write_model_card(target)


def ship_all(
    runs: Path = RUNS_DIR, zoo: Path = ZOO_DIR, measured: Path = MEASURED_PATH
) -> dict[str, str]:
    """Ship, retire or leave each task; returns task -> what happened."""
    rows = {r.key: r for r in read_measured(measured)}
    done: dict[str, str] = {}
    for task in QUEUE_ORDER:
        result = read_json(task_dir(task, runs) / "result.json")
        if result is None:
            continue  # not finished here (a task finished on another machine is in its record)
        # the current rule on the recorded figures (a rule change withdraws what fails it)
        judged = judge(task, with_majority(task, copy.deepcopy(result), runs))
        if judged != result:  # a reference added, or a verdict made under an earlier rule
            result = judged
            write_json(task_dir(task, runs) / "result.json", result)
        keep_record(task, runs)
        adapter_key = (task, EMBEDDED_BASE, f"{EMBEDDED_BASE}/{task}")
        if result.get("eval"):  # measured on the evaluation rows (shipped or not)
            for r in measured_rows(task, result):
                rows[r.key] = r
        if result["ships"]:
            ship_task(task, result, runs, zoo)
            done[task] = "shipped (v2)"
        elif zoo_version(Path(zoo) / task) == 1:
            shutil.rmtree(Path(zoo) / task)
            if not result.get("eval"):
                rows.pop(adapter_key, None)  # the v1 figure was chosen on the rows it reports
            done[task] = "v1 retired: " + result["reason"]
        elif zoo_version(Path(zoo) / task) == 2:  # shipped under an earlier rule
            shutil.rmtree(Path(zoo) / task)
            done[task] = "v2 withdrawn: " + result["reason"]
        else:
            done[task] = "not shipped: " + result["reason"]
    write_measured(list(rows.values()), measured)
    return done
