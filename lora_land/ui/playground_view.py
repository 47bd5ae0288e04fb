"""What the Playground shows before a run: pickers, adapter details, fields, token count.

Plain functions of (services, choices) that return text and choice lists, so they are tested
without a browser; `playground.py` wires them to Gradio components. Nothing here runs a model
or keeps per-user data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lora_land.catalog import Task

if TYPE_CHECKING:
    from lora_land.services import Services

ALL = "All categories"
MAX_FIELDS = 4  # input boxes built once; the 31 tasks use at most 3
STATE_WORDS = {
    "hot": "hot (resident next to the base model)",
    "warm": "warm (in host memory; moved to the device on use)",
    "cold": "cold (on disk; the first run loads it)",
    "base": "base model",
}


@dataclass(frozen=True)
class BaseChoice:
    name: str
    label: str
    served: bool
    hub_id: str | None


def served_base(services: Services) -> str:
    return services.deployment.base.name


def base_choices(services: Services) -> list[BaseChoice]:
    """The served base first, then the report's 10 bases (their weights are not served here)."""
    dep = services.deployment.base
    shown = dep.display_name or dep.name
    out = [BaseChoice(dep.name, f"{shown} — served here", True, dep.hub_id)]
    for base in services.catalog.bases.values():
        if base.name != dep.name:
            label = f"{base.display_name} — weights not served here"
            out.append(BaseChoice(base.name, label, False, base.hf_id))
    return out


def categories(services: Services) -> list[str]:
    return [ALL, *sorted({t.category for t in services.catalog.tasks.values()})]


def adapter_id(services: Services, base: str, task: str) -> str | None:
    """The served adapter id for (base, task), None when this server has none."""
    if base != served_base(services):
        return None
    source = services.deployment.adapter_for_task(task)
    return source.id if source else None


def task_choices(services: Services, base: str, category: str) -> list[tuple[str, str]]:
    """(label, task) pairs in `category`; tasks with an adapter served here come first."""
    tasks = [t for t in services.catalog.tasks.values() if category in (ALL, t.category)]
    served = [t for t in tasks if adapter_id(services, base, t.name)]
    others = [t for t in tasks if t not in served]
    mark = base == served_base(services)
    return [(f"● {t.ui_name} — adapter served", t.name) for t in served] + [
        (f"{t.ui_name}{' — no adapter here' if mark else ''}", t.name) for t in others
    ]


def default_task(services: Services, base: str, category: str) -> str:
    return task_choices(services, base, category)[0][1]


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _report_lines(services: Services, base: str, task: Task) -> list[str]:
    entry = services.catalog.adapters.get(f"{base}/{task.name}")
    if entry is None:
        return [_measured_lines(services, base, task)]
    display = services.catalog.bases[base].display_name
    return [
        f"**Report (Table 12), {display}:** fine-tuned {_fmt(entry.finetuned)} · "
        f"base {_fmt(entry.base_score)} · lift {entry.lift:+.3f} · "
        f"GPT-4 {_fmt(entry.gpt4)} · GPT-3.5 {_fmt(entry.gpt35)}"
    ]


def _measured_lines(services: Services, base: str, task: Task) -> str:
    rows = [m for m in services.catalog.measured if m.task == task.name and m.base_model == base]
    head = (
        f"**Report:** no scores for this base (GPT-4 {_fmt(task.gpt4)} · "
        f"GPT-3.5 {_fmt(task.gpt35)} on this task). "
    )
    if not rows:
        return head + "**Measured here:** none yet."
    parts = []
    for m in rows:
        ci = f" [{_fmt(m.low)}, {_fmt(m.high)}]" if m.low is not None and m.high is not None else ""
        text = f"{_measured_kind(m.adapter)} {_fmt(m.score)}{ci} (n={m.n}, {m.date})"
        if m.lift is not None and m.lift_low is not None and m.lift_high is not None:
            text += f", paired lift {m.lift:+.3f} [{m.lift_low:+.3f}, {m.lift_high:+.3f}]"
        if m.second_metric and m.second_score is not None:
            text += f", {m.second_metric} {_fmt(m.second_score)}"
        parts.append(text)
    return head + "**Measured here** (95% intervals): " + " · ".join(parts)


def _measured_kind(adapter: str) -> str:
    """ "base", "adapter", or the variant's name for `<base>/<task>@<variant>` ("dpo adapter")."""
    if not adapter:
        return "base"
    _, sep, variant = adapter.rpartition("@")
    return f"{variant} adapter" if sep and "/" not in variant else "adapter"


def details_markdown(services: Services, base: str, task_name: str) -> str:
    """The adapter details panel for (base, task)."""
    task = services.catalog.tasks[task_name]
    direction = "higher is better" if task.higher_is_better else "lower is better"
    lines = [
        f"### {task.ui_name}",
        f"{task.description} · category **{task.category}** · task id `{task.name}`",
        f"**Dataset:** [{task.dataset_link}]({task.dataset_link}) (evaluated on "
        f"{task.eval_split}) · **Metric:** `{task.metric}` ({direction})",
    ]
    if task.metric_fn != task.metric:  # the report's label; the answers here are scored by
        lines[-1] += f"; answers here are scored with `{task.metric_fn}`"
    if task.metric_note:
        lines.append(f"> {task.metric_note}")
    lines += _report_lines(services, base, task)
    lines.append(_serving_line(services, base, task))
    return "\n\n".join(lines)


def _serving_line(services: Services, base: str, task: Task) -> str:
    entry = services.catalog.adapters.get(f"{base}/{task.name}")
    hub = (entry.hf_adapter_id if entry else None) or task.hf_adapter_id
    hub_text = (
        f"**Public adapter:** [{hub}](https://huggingface.co/{hub}) (trained on Mistral-7B-v0.1)"
        if hub
        else "**Public adapter:** none published for this task"
    )
    choice = next(c for c in base_choices(services) if c.name == base)
    if not choice.served:
        where = f"[{choice.hub_id}](https://huggingface.co/{choice.hub_id})"
        return f"{hub_text}\n\n**Not served here:** get the {base} weights from {where}."
    served = adapter_id(services, base, task.name)
    if served is None:
        return f"{hub_text}\n\n**Served here:** no adapter for this task; Run compares base only."
    state = STATE_WORDS.get(services.engine.adapter_state(served), "unknown")
    variants = [a.id for a in services.deployment.variants_for_task(task.name) if a.variant]
    also = f" · also served: {', '.join(f'`{v}`' for v in variants)}" if variants else ""
    return f"{hub_text}\n\n**Served here:** `{served}`, {state}{also}"


def filled_prompt(task: Task, values: list[str]) -> str:
    """The template with whatever is in the fields (blank ones left blank), for counting."""
    given = dict(zip(task.fields, values, strict=False))
    return task.prompt_template.format(**{f: given.get(f, "") for f in task.fields})


def token_count_markdown(services: Services, task_name: str, values: list[str], new: int) -> str:
    task = services.catalog.tasks[task_name]
    engine = services.engine
    used = engine.count_tokens(filled_prompt(task, values))
    limit = engine.context_length
    total = used + int(new)
    verdict = "fits" if total <= limit else "**too long: shorten the fields or lower max new**"
    return (
        f"Prompt: **{used}** tokens + up to {int(new)} new = {total} of {limit} "
        f"({engine.base_name} context) — {verdict}"
    )
