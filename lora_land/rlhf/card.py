"""Model cards for DPO adapter variants: README.md with the loop's iteration table.

Built from `rlhf_summary.json` (written by `loop.install`): what pi_0 was, the recipe's
settings, and per iteration the pairs used, rewards of chosen and rejected answers, the DPO
loss, the KL proxy and the evaluation score with its 95% interval and its paired difference
to pi_0. It writes text; it trains and imports nothing heavy.
"""

from __future__ import annotations

import json
from pathlib import Path

from lora_land.rlhf.rewards import describe_reward

SUMMARY_FILE = "rlhf_summary.json"


def _num(value, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _interval(ci: dict | None, signed: bool = False) -> str:
    if not ci:
        return "-"
    sign = "+" if signed else ""
    return f"{ci['mean']:{sign}.3f} [{ci['low']:{sign}.3f}, {ci['high']:{sign}.3f}]"


def _rows(ci: dict) -> str:
    """`n=50`, or `n=50 rows, 14 distinct inputs` when rows share inputs."""
    inputs = ci.get("inputs")
    return f"n={ci['n']} rows, {inputs} distinct inputs" if inputs else f"n={ci['n']}"


def iteration_table(curve: list[dict]) -> list[str]:
    lines = [
        "| t | prompts | pairs | tied | reward chosen / rejected | DPO loss before -> after "
        "| KL proxy | eval score [95% CI] | vs pi_0 [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    grouped = bool(curve[-1]["eval"]["score"].get("inputs"))
    stale = False  # some intervals resample rows although the rows share inputs
    for r in curve:
        ev, dpo = r["eval"], r.get("dpo") or {}
        mark = "†" if grouped and not ev["score"].get("inputs") else ""
        stale = stale or bool(mark)
        if r["iteration"] == 0:
            lines.append(
                f"| 0 (pi_0) | | | | | | | {_interval(ev['score'])}{mark} "
                f"({_rows(ev['score'])}) | |"
            )
            continue
        lines.append(
            f"| {r['iteration']} | {r['prompts']} | {r['pairs']} | {r['skipped_ties']} "
            f"| {_num(r['reward_chosen'])} / {_num(r['reward_rejected'])} "
            f"| {_num(dpo.get('loss_before'), '.4f')} -> {_num(dpo.get('loss_after'), '.4f')} "
            f"| {_num(dpo.get('kl_chosen'), '.2f')} "
            f"| {_interval(ev['score'])}{mark} | {_interval(ev.get('vs_pi0'), signed=True)}{mark} |"
        )
    if stale:
        lines += [
            "",
            "† These intervals resample rows, not inputs: they were measured before rows that",
            "share an input were grouped, and their row scores were not kept (too narrow).",
        ]
    return lines


def outcome(curve: list[dict]) -> str:
    """What the last policy's paired difference to pi_0 establishes, in words."""
    diff = curve[-1]["eval"].get("vs_pi0") if len(curve) > 1 else None
    if not diff:
        return "no iteration was evaluated"
    words = (
        "better than pi_0"
        if diff["low"] > 0
        else "worse than pi_0"
        if diff["high"] < 0
        else "no difference from pi_0 established (the interval spans 0)"
    )
    return f"pi_{curve[-1]['iteration']} vs pi_0: {_interval(diff, signed=True)}, {words}"


def chosen_section(choice: dict | None) -> list[str]:
    """The card's account of an iteration chosen on the dev split (`--eval-on choose`)."""
    if not choice:
        return []
    t = choice["chosen"]
    scores = []
    for r in choice["curve"]:
        diff = f" ({_interval(r['vs_pi0'], signed=True)})" if r.get("vs_pi0") else ""
        scores.append(f"pi_{r['iteration']} {r['score']:.3f}{diff}")
    return [
        "## How one iteration was chosen",
        "",
        "`--eval-on choose`: the same loop (same settings and seeds) was first measured on the",
        f"zoo's dev split of the task's training rows ({_rows(choice)}, disjoint from the loop's",
        f"prompts): {', '.join(scores)}. pi_{t} was best there, so this adapter is that run's",
        f"pi_{t} (its samples, pairs and DPO weights reused), measured once on the evaluation",
        "rows above.",
        "",
    ]


def write_card(adapter_dir: Path) -> Path:
    s = json.loads((Path(adapter_dir) / SUMMARY_FILE).read_text())
    c, task = s["config"], s["task"]
    dpo = c["dpo"]
    last = s["curve"][-1]
    metric = last["eval"]["metric"]
    text = "\n".join(
        [
            "---",
            f"base_model: {s['base_hub_id']}",
            "library_name: peft",
            "pipeline_tag: text-generation",
            f"tags: [lora, lora-land, dpo, rlhf, {task}]",
            "---",
            "",
            f"# LoRA Land mini zoo: `{task}` after iterative DPO (`@dpo`)",
            "",
            f"The supervised adapter `{s['pi0']}` (pi_0) trained on with online iterative DPO,",
            "the RLHF Workflow recipe (arXiv 2405.07863) scaled to a CPU: each iteration samples",
            f"K={c['k']} answers per training prompt from the current policy (half at temperature",
            "0.7, half at 1.0), scores them with the proxy reward "
            f"(`{c['reward']}`: {describe_reward(c['reward'])}),",
            "pairs the best with the worst answer (`max_min`, ties skipped"
            + (f", length penalty {c['length_penalty']}/char" if c["length_penalty"] else "")
            + (
                f", the rejected the worst within {c['max_length_ratio']}x the best one's length"
                if c.get("max_length_ratio")
                else ""
            )
            + (", pairs balanced over the chosen answers" if c.get("balance_pairs") else "")
            + "), and trains",
            "DPO with TRL (sigmoid loss"
            + (
                f" + {dpo['sft_weight']} x SFT on the chosen answer, which the loss columns include"
                if dpo.get("sft_weight")
                else ""
            )
            + f", beta {dpo['beta']}, lr {dpo['lr']}, {dpo['epochs']} epochs,",
            "LoRA weights only) warm-started from the previous iteration, the reference fixed at",
            "pi_0. Each policy is evaluated greedily on the task's evaluation rows with the",
            f"report's metric (`{metric}`). Prompts: {s.get('prompt_rows') or 'training rows'},",
            "a fresh slice per iteration.",
            "",
            f"Result: {outcome(s['curve'])}.",
            "",
            "## Iterations",
            "",
            *iteration_table(s["curve"]),
            "",
            "KL proxy: mean log pi_t(chosen) - log pi_0(chosen) over the iteration's chosen",
            "answers (nats per answer). Intervals: 95% bootstrap; the last column is the paired",
            "difference to pi_0 on the same rows, a difference only counts when it excludes 0.",
            *(
                [
                    "Rows that share an input (the same prompt: e.g. one meaning representation",
                    "with several references) get one answer from a greedy policy, so the",
                    "bootstrap resamples inputs, not rows.",
                ]
                if last["eval"]["score"].get("inputs")
                else []
            ),
            "",
            *chosen_section(s.get("chosen_on_dev")),
            f"Served as `{s['base_name']}/{task}@dpo` beside the supervised `{s['pi0']}`.",
            "",
        ]
    )
    path = Path(adapter_dir) / "README.md"
    path.write_text(text)
    return path
