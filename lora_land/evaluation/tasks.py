"""Task lookup and data rows for training and evaluation.

`load_task` returns the catalog's `Task` (one type renders prompts everywhere: `Task.render`
for the Playground, `Task.render_eval` for data rows, which may leave a field blank);
`read_jsonl`/`read_rows` read a task's JSONL rows. It does not score or generate anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from lora_land.catalog import Task, load_catalog
from lora_land.errors import UserError


def load_task(name: str) -> Task:
    """The catalog's task called `name`; a miss lists the valid names."""
    tasks = load_catalog().tasks
    if name not in tasks:
        raise UserError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(tasks))}")
    return tasks[name]


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
