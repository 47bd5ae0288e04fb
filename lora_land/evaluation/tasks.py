"""Task lookup for training and evaluation: template, fields, target and metric of a task.

A thin view of the catalog's `Task` (`lora_land.catalog.load_catalog`) for rendering data rows:
unlike the playground, a row may leave a field blank (covid's Location often is). It renders
prompts exactly as the report did (`template.format(**fields)`). It does not score or
generate anything.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lora_land.catalog import load_catalog
from lora_land.errors import PromptError, UserError


@dataclass(frozen=True)
class TaskSpec:
    """What training and evaluation need to know about one task."""

    name: str
    prompt_template: str  # exact; `{{`/`}}` are str.format escapes
    fields: tuple[str, ...]  # placeholders of the template
    metric_fn: str  # key into `lora_land.evaluation.metrics`
    eval_prompt_template: str | None = None  # a different template for evaluation (magicoder)

    def render(self, values: Mapping[str, str]) -> str:
        """The filled template; `PromptError` names a missing field."""
        missing = [f for f in self.fields if f not in values or values[f] is None]
        if missing:
            raise PromptError(f"task {self.name!r}: row is missing field(s) {missing}")
        return self.prompt_template.format(**{f: str(values[f]) for f in self.fields})

    def render_eval(self, values: Mapping[str, str]) -> str:
        """The evaluation prompt: the task's eval template when it has one, else `render`."""
        if not self.eval_prompt_template:
            return self.render(values)
        names = [n for _, n, _, _ in string.Formatter().parse(self.eval_prompt_template) if n]
        missing = [n for n in names if n not in values]
        if missing:
            raise PromptError(f"task {self.name!r}: row is missing field(s) {missing}")
        return self.eval_prompt_template.format(**{n: str(values[n]) for n in names})


def load_task(name: str) -> TaskSpec:
    """The task called `name`, from the catalog; a miss lists the valid names."""
    tasks = load_catalog().tasks
    if name not in tasks:
        raise UserError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(tasks))}")
    t = tasks[name]
    return TaskSpec(t.name, t.prompt_template, tuple(t.fields), t.metric_fn, t.eval_prompt_template)


def read_jsonl(path: Path) -> list[dict]:
    """Non-blank lines of a JSONL file; names the file and line on bad JSON.

    Lines end at "\\n" only: `str.splitlines` would also cut at U+2028 and friends, which JSON
    strings may hold (mmlu's rows do)."""
    rows = []
    for n, line in enumerate(Path(path).read_text().split("\n"), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n} is not valid JSON: {e}") from e
    return rows


def read_rows(path: Path) -> list[dict]:
    """Rows of a JSONL file (blank lines skipped); a file without rows is a `UserError`."""
    rows = read_jsonl(path)
    if not rows:
        raise UserError(f"{path} holds no rows")
    return rows
