"""The catalog's records: tasks, base models and adapters.

Plain frozen dataclasses, built and validated by `lora_land.catalog.loader`. They hold the
LoRA Land report's facts as read from `leaderboards/`; they do not read files, run models
or know about the UI.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from lora_land.errors import PromptError


def template_fields(template: str) -> tuple[str, ...]:
    """The `str.format` placeholders of `template`, in order of first appearance."""
    seen: list[str] = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in seen:
            seen.append(name)
    return tuple(seen)


@dataclass(frozen=True)
class Task:
    """One of the 31 tasks of the study, with its exact prompt template."""

    name: str  # short id, e.g. "glue_sst2"
    category: str  # the report's category, e.g. "Reasoning"
    ui_name: str  # the web app's display name
    ui_category: str  # the web app's grouping
    description: str
    dataset_link: str
    metric: str  # the metric as printed in the report ("rouge", "accuracy", "mae"...)
    metric_fn: str  # the evaluation function's name (see lora_land.evaluation.metrics)
    higher_is_better: bool
    prompt_template: str  # exact; `{{`/`}}` are str.format escapes
    fields: tuple[str, ...]  # placeholders of the template, in order
    target_col: str  # dataset column holding the expected answer
    eval_split: str  # split the report evaluated on ("test", "validation", "(human_eval)")
    num_examples: Mapping[str, int | None]  # split -> example count (None: no such split)
    hf_adapter_id: str | None  # public Hub adapter (trained on Mistral-7B-v0.1), if known
    template_note: str | None  # oddities of the template, kept visible
    gpt4: float  # GPT-4's score on this task (Table 12)
    gpt35: float  # GPT-3.5-Turbo's score on this task (Table 12)
    metric_note: str | None = None  # why the metric direction differs from its label, if so
    eval_prompt_template: str | None = None  # a different template used for evaluation, if any

    def render(self, values: Mapping[str, object], *, allow_blank: bool = False) -> str:
        """Fill the exact template (`str.format`, as the report did).

        A missing (or None) field raises `PromptError`; so does a blank one unless
        `allow_blank` (data rows may leave a field empty: covid's Location often is; a person
        typing in the Playground may not)."""
        return _fill(self.name, self.prompt_template, self.fields, values, allow_blank)

    def render_eval(self, values: Mapping[str, object]) -> str:
        """The evaluation prompt for a data row: the task's evaluation template when it has one
        (magicoder), else the training template; blank fields allowed."""
        if not self.eval_prompt_template:
            return self.render(values, allow_blank=True)
        fields = template_fields(self.eval_prompt_template)
        return _fill(self.name, self.eval_prompt_template, fields, values, True)


def _fill(
    task: str,
    template: str,
    fields: tuple[str, ...],
    values: Mapping[str, object],
    allow_blank: bool,
) -> str:
    missing = [f for f in fields if values.get(f) is None]
    if missing:
        raise PromptError(f"task {task!r} needs field(s) {missing}; expected {list(fields)}")
    blank = [f for f in fields if not str(values[f]).strip()]
    if blank and not allow_blank:
        raise PromptError(f"task {task!r}: field(s) {blank} must not be empty")
    return template.format(**{f: str(values[f]) for f in fields})


@dataclass(frozen=True)
class BaseModel:
    """One of the 10 base models of the study (Table 2)."""

    name: str  # short id used in adapter ids, e.g. "mistral-7b"
    display_name: str  # as printed in the report, e.g. "Mistral-7b-v0.1"
    creator: str
    params: str  # size as printed, e.g. "7.24B"
    hf_id: str  # Hub repository
    is_instruct: bool


@dataclass(frozen=True)
class AdapterEntry:
    """One of the 310 fine-tunes: `<base>/<task>` with its Table 12 scores."""

    id: str  # "<base>/<task>"
    base: str
    task: str
    finetuned: float  # the LoRA fine-tuned score
    base_score: float  # the base model's score without the adapter
    lift: float  # finetuned - base_score, as printed in the report
    gpt4: float
    gpt35: float
    hf_adapter_id: str | None  # public Hub adapter for this exact pair, if known

    @property
    def beats_gpt4(self) -> bool:
        """Strictly better than GPT-4 on this task (every metric here is higher-is-better)."""
        return self.finetuned > self.gpt4


@dataclass(frozen=True)
class HeadlineStats:
    """The study's headline numbers, computed from Table 12 (never typed in)."""

    n_adapters: int
    mean_lift: float  # mean of the 310 printed lifts
    abstract_lift_claim: float  # what the abstract states, for comparison
    mean_best_vs_gpt4: float  # mean over tasks of (best fine-tuned - GPT-4)
    gpt4_ahead_tasks: tuple[str, ...]  # tasks where no fine-tune exceeds GPT-4
    tasks_best_beats_gpt4: int  # tasks where the best fine-tune beats GPT-4
    n_beat_gpt4: int  # (base, task) pairs whose fine-tune beats GPT-4
    best_base: str  # base with the highest mean fine-tuned score
    best_base_mean: float
