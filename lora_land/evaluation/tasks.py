"""Task lookup for training and evaluation: template, fields, target and metric of a task.

Prefers the catalog (`lora_land.catalog.load_catalog`); when the catalog package is not
importable it reads the report's `tasks.json` (in `leaderboards/` or `../shared/data/loraland/`).
It renders prompts exactly as the report did (`template.format(**fields)`). It does not score
or generate anything.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lora_land.config import PROJECT_ROOT
from lora_land.errors import PromptError, UserError

_TASKS_JSON_CANDIDATES = (
    PROJECT_ROOT / "leaderboards" / "tasks.json",
    PROJECT_ROOT.parent / "shared" / "data" / "loraland" / "tasks.json",
)


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


def _from_catalog(name: str) -> TaskSpec | None:
    try:
        from lora_land.catalog import load_catalog
    except ImportError:
        return None
    try:
        tasks = load_catalog().tasks
    except Exception:  # a half-written catalog must not block training; fall back to the file
        return None
    if name not in tasks:
        return None
    t = tasks[name]
    eval_template = getattr(t, "eval_prompt_template", None)
    if eval_template is None:  # older catalogs do not carry it: read it from tasks.json
        eval_template = _from_tasks_json(name).eval_prompt_template
    return TaskSpec(t.name, t.prompt_template, tuple(t.fields), t.metric_fn, eval_template)


def _from_tasks_json(name: str) -> TaskSpec:
    for path in _TASKS_JSON_CANDIDATES:
        if path.is_file():
            rows = {row["name"]: row for row in json.loads(path.read_text())}
            if name not in rows:
                raise UserError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(rows))}")
            row = rows[name]
            fields = row.get("template_placeholders") or row.get("input_columns") or []
            return TaskSpec(
                row["name"],
                row["prompt_template"],
                tuple(fields),
                row["metric_fn"],
                row.get("eval_prompt_template"),
            )
    raise UserError(f"no tasks.json found (looked in {[str(p) for p in _TASKS_JSON_CANDIDATES]})")


def load_task(name: str) -> TaskSpec:
    """The task called `name` (catalog first, then the report's tasks.json)."""
    return _from_catalog(name) or _from_tasks_json(name)


def read_rows(path: Path) -> list[dict]:
    """Rows of a JSONL file (blank lines skipped); names the file and line on bad JSON."""
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{i} is not valid JSON: {e}") from e
    if not rows:
        raise UserError(f"{path} holds no rows")
    return rows
