"""The mini zoo's directory and its README (assets/adapters/README.md).

The zoo is built by the v2 queue (`lora_land.training.queue`, `lora-land zoo --resume`) and
shipped by `lora_land.training.ship`; this module writes the README that lists every task with
its verdict and intervals. It trains and measures nothing.
"""

from __future__ import annotations

from pathlib import Path

from lora_land.config import PROJECT_ROOT

ZOO_DIR = PROJECT_ROOT / "assets" / "adapters"

# Zoo v1 (2026-11-25), for the record: task -> (steps, max_seq_len[, peak lr]), trained on all
# training rows and chosen on the evaluation rows that also measured them. v2 replaces these.
V1_RECIPES: dict[str, tuple] = {
    "glue_sst2": (400, 256, 1e-3),
    "glue_qnli": (300, 256, 1e-3),
    "conllpp": (60, 256),
    "e2e_nlg": (50, 256),
    "arc_combined": (50, 256),
    "covid": (40, 256),
    "winogrande": (50, 256),
    "webnlg": (40, 256),
}


def write_zoo_readme(out_dir: Path = ZOO_DIR, runs: Path | None = None) -> Path:
    """assets/adapters/README.md: every zoo v2 task, shipped or not and why, with intervals."""
    from lora_land.training.queue import RUNS_DIR, next_stage, read_json, task_dir, task_result
    from lora_land.training.recipes import QUEUE_ORDER
    from lora_land.training.ship import zoo_version
    from lora_land.training.split import DEV_ROWS, DEV_ROWS_BY_TASK

    runs = runs or RUNS_DIR
    larger = "".join(f"; {t} {n}" for t, n in sorted(DEV_ROWS_BY_TASK.items()))
    lines = [
        "# The mini zoo: LoRA adapters for SmolLM2-135M-Instruct",
        "",
        "Zoo v2 (`lora-land zoo --resume`, then `lora-land zoo --ship`): each task's training",
        f"rows are split into train and a seeded dev part (at least {DEV_ROWS} rows{larger});"
        " adapters are",
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
    from lora_land.training.recipes import COMPARISON_TASK, RECIPES

    lines[-3:-3] = ["", *(f"- recipe `{r.name}`: {r.describe()}" for r in RECIPES.values())]
    choice = read_json(task_dir(COMPARISON_TASK, runs) / "choice.json")
    record = task_result(COMPARISON_TASK, runs) or {}
    if choice is None and "recipes_dev" in record:
        choice = {"recipe": record["recipe"], "dev": record["recipes_dev"]}
    if choice:
        means = ", ".join(f"`{r}` {_ci(c['adapter'])}" for r, c in sorted(choice["dev"].items()))
        lines[-3:-3] = [
            "",
            f"Recipe chosen on the dev split of {COMPARISON_TASK} (n = "
            f"{next(iter(choice['dev'].values()))['adapter']['n']}): `{choice['recipe']}` "
            f"({means}); the other tasks use it.",
        ]
    lifts, v1, constant = [], [], []
    for task in QUEUE_ORDER:
        result = task_result(task, runs)
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
            m = c.get("majority") if result.get("eval") else None
            if m:
                constant.append(
                    f"| {task} | `{m['label']}` | {_ci(m['score'])} | "
                    f"{_ci(c['adapter'])} | {_ci(m['adapter_lift'], True)} |"
                )
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
    if constant:
        lines += [
            "",
            "Shipped adapters against a constant answer (a classifier's most common training",
            "label, a numeric task's median target) on the same evaluation rows: a lift over the",
            "base that the constant answer also gets comes from the answer format and the",
            "targets' prior, not from reading the input.",
            "",
            "| task | constant answer | its score [95% CI] | adapter [95% CI] "
            "| adapter - constant [95% CI] |",
            "|---|---|---|---|---|",
            *constant,
        ]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _ci(d: dict, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(d['mean'])} [{f.format(d['low'])}, {f.format(d['high'])}]"
