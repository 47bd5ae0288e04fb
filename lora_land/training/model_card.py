"""Model cards for trained adapters: README.md built from the run's `training_summary.json`.

The card says what the adapter is for (task, base, data, recipe, final loss) and, once the
evaluation runner has measured it, its score next to the bare base's. This module writes
text; it imports no torch and trains nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from lora_land.config import PROJECT_ROOT

SUMMARY_FILE = "training_summary.json"


def display_path(path: str | Path) -> str:
    """A path relative to the directory above the repo (e.g. `shared/data/...`) when possible."""
    p = Path(path).resolve()
    for root in (PROJECT_ROOT, PROJECT_ROOT.parent):
        if p.is_relative_to(root):
            return str(p.relative_to(root))
    return str(path)


def read_summary(adapter_dir: Path) -> dict:
    path = Path(adapter_dir) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def record_eval(adapter_dir: Path, result: dict) -> None:
    """Store an evaluation result (metric, score, n, data, base_score...) and refresh the card."""
    summary = read_summary(adapter_dir)
    if not summary:
        return  # not an adapter this project trained: leave its card alone
    summary["eval"] = result
    (Path(adapter_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    write_model_card(adapter_dir)


def _eval_lines(ev: dict | None) -> list[str]:
    if not ev:
        return [
            "Not evaluated yet: run `lora-land evaluate --task TASK --base BASE "
            "--adapter BASE/TASK --data FILE.jsonl`."
        ]
    lines = [
        f"| metric | `{ev['metric']}` |",
        "|---|---|",
        f"| this adapter | **{ev['score']:.3f}** on {ev['n']} rows |",
    ]
    if ev.get("base_score") is not None:
        lines.append(f"| bare base model | {ev['base_score']:.3f} on the same rows |")
    lines += [
        f"| data | `{ev['data']}` |",
        f"| measured | {ev['date']} |",
        "",
        "Greedy decoding, at most 256 new tokens, the report's metric for the task.",
    ]
    return lines


def _ci(d: dict, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(d['mean'])} [{f.format(d['low'])}, {f.format(d['high'])}]"


def _n(ci: dict) -> str:
    """`50`, or `50 (14 inputs)` when rows share inputs and the bootstrap resampled those."""
    return f"{ci['n']} ({ci['inputs']} inputs)" if ci.get("inputs") else str(ci["n"])


def _comparison_rows(label: str, c: dict) -> list[str]:
    rows = [
        f"| {label} | `{c['metric']}` | {_n(c['adapter'])} | {_ci(c['base'])} | "
        f"{_ci(c['adapter'])} | {_ci(c['lift'], True)} |"
    ]
    v = c.get("valid_answers")
    if v:
        rows.append(
            f"| {label} | valid answers (JSON parses / label in the label set) | "
            f"{c['adapter']['n']} | {v['base']:.0%} | {v['adapter']:.0%} | |"
        )
    s = c.get("second")
    if s:
        rows.append(
            f"| {label} | `{s['measure']}` (second measure) | {_n(s['adapter'])} | "
            f"{_ci(s['base'])} | {_ci(s['adapter'])} | {_ci(s['lift'], True)} |"
        )
    return rows


def _majority_lines(c: dict) -> list[str]:
    """A classifier against always answering its most common training label."""
    m = c.get("majority")
    if not m:
        return []
    return [
        "",
        f"Against a constant answer: always `{m['label']}` "
        f"({m.get('what', 'the most common training label')}) "
        f"scores {_ci(m['score'])} on the evaluation rows; the adapter's paired lift over it "
        f"is {_ci(m['adapter_lift'], True)}. A lift over the base that the constant answer "
        "also gets comes from the answer format and the targets' prior, not from reading the "
        "input.",
    ]


def _zoo_lines(z: dict) -> list[str]:
    """Zoo v2: which split chose the adapter, which measured it, with intervals."""
    chosen, measured = z["chosen_on"], z["measured_on"]
    compared = ", ".join(z.get("recipes_compared") or [z["recipe"]])
    return [
        f"Chosen on the **dev** split: {chosen['n']} rows of `{chosen['data']}` "
        f"({chosen['split']}), recipe `{z['recipe']}` ({z['recipe_text']}; compared: "
        f"{compared}). Measured **once** on the evaluation rows: {measured['n']} rows of "
        f"`{measured['data']}`, the base on the same rows.",
        "",
        "| rows | measure | n | base [95% CI] | adapter [95% CI] | paired lift [95% CI] |",
        "|---|---|---|---|---|---|",
        *_comparison_rows("dev (chose)", z["dev"]),
        *_comparison_rows("evaluation (measured)", z["eval"]),
        *_majority_lines(z["eval"]),
        "",
        "Intervals: percentile bootstrap, 10,000 resamples, seeded; the lift is the mean of the",
        "per-row differences on the same rows; where rows share an input (n (k inputs)), the",
        "bootstrap resamples the k inputs with their rows. Shipping rule: the lift's interval",
        "on the evaluation rows lies above zero (and, for structured outputs, the second",
        "measure's).",
        f"Verdict: {z['reason']}. Greedy decoding, at most 256 new tokens.",
    ]


def write_model_card(adapter_dir: Path) -> Path:
    """Write README.md from the summary (front matter in the Hub's model-card format)."""
    s = read_summary(adapter_dir)
    task, hub_id = s["task"], s.get("base_hub_id", s["base"])
    part = ", the train part of the seeded train/dev split" if s.get("split") == "train" else ""
    text = "\n".join(
        [
            "---",
            f"base_model: {hub_id}",
            "library_name: peft",
            "pipeline_tag: text-generation",
            f"tags: [lora, lora-land, {task}]",
            "---",
            "",
            f"# LoRA Land mini zoo: `{task}` on {s.get('base_name', s['base'])}",
            "",
            f"A rank-{s['rank']} LoRA adapter for the LoRA Land task `{task}` (arXiv 2405.00732), "
            f"trained by this project on `{hub_id}` (`lora-land train` or `lora-land zoo`).",
            "",
            "## Training",
            "",
            "| | |",
            "|---|---|",
            f"| task | `{task}` |",
            f"| base | `{hub_id}` |",
            f"| data | `{display_path(s['data'])}` ({s.get('n_rows', '?')} rows{part}) |",
            f"| LoRA | r={s['rank']}, alpha={s['alpha']}, dropout={s['dropout']}, "
            f"modules {', '.join(s['target_modules'])} |",
            f"| steps | {s['steps']} x batch {s['batch_size']}, max {s['max_seq_len']} tokens |",
            f"| learning rate | {s['lr']} peak, cosine, {s['warmup_frac']:.0%} warmup |",
            f"| loss | {s.get('first_loss', float('nan')):.4f} first step, "
            f"{s['final_loss']:.4f} final (mean of the last 10% of steps) |",
            "",
            "Completion style as in the report: the task's exact prompt template filled with the",
            "row's fields, then the target, then EOS; the loss counts the target and EOS only.",
            "",
            "## Evaluation",
            "",
            *(_zoo_lines(s["zoo"]) if "zoo" in s else _eval_lines(s.get("eval"))),
            "",
        ]
    )
    path = Path(adapter_dir) / "README.md"
    path.write_text(text)
    return path
