"""Example prompts for the Playground: the values that fill a task's template fields.

Three sources, in this order:
1. examples written for this project (`assets/examples/<task>.json`, a few per task);
2. real evaluation rows from a local directory of `<task>.jsonl` files (tests and offline
   demos point this at `../shared/data/samples`; the rows are read, never copied);
3. real rows of the task's evaluation split from the Hugging Face Hub (the dataset viewer's
   rows API through `huggingface_hub`), cached as JSONL under the cache directory. Used only
   when the Hub is reachable and the dataset's columns are the template's fields.

Each example may carry its gold answer (`target`). This module does not render prompts or
score anything; it imports no torch.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lora_land.config import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from lora_land.catalog import Task

log = logging.getLogger(__name__)

EXAMPLES_DIR = PROJECT_ROOT / "assets" / "examples"
HUB_SPLITS = ("train", "validation", "test")
HUB_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Example:
    label: str  # short text on the chip
    values: dict[str, str]  # one value per template field
    target: str | None = None  # the gold answer, when known
    source: str = ""  # where it came from, shown under the chip
    row: dict = field(default_factory=dict, compare=False)  # the whole row (some metrics need it)


def hub_dataset(dataset_link: str) -> tuple[str, str | None] | None:
    """(repo id, config) for a Hugging Face dataset link, None for other hosts."""
    prefix = "https://huggingface.co/datasets/"
    if not dataset_link.startswith(prefix):
        return None
    path, _, extra = dataset_link.removeprefix(prefix).partition(" (")
    repo, _, config = path.partition("/viewer/")
    config = config or extra.rstrip(")") or None
    return repo.strip("/"), config


def _row_to_example(task: Task, row: dict, label: str, source: str) -> Example | None:
    if not all(name in row for name in task.fields):
        return None
    values = {name: _text(row[name]) for name in task.fields}
    target = row.get("target", row.get(task.target_col))
    return Example(label, values, None if target is None else _text(target), source, dict(row))


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value) if value is not None else ""


class ExampleLibrary:
    """Finds and remembers the examples of each task (thread-safe, shared by all users)."""

    def __init__(
        self,
        examples_dir: Path = EXAMPLES_DIR,
        samples_dir: Path | None = None,
        hub_cache_dir: Path | None = None,
        per_source: int = 3,
    ) -> None:
        self.examples_dir = Path(examples_dir)
        self.samples_dir = Path(samples_dir) if samples_dir else None
        self.hub_cache_dir = Path(hub_cache_dir) if hub_cache_dir else None  # None: no Hub
        self.per_source = per_source
        self._lock = threading.Lock()
        self._memo: dict[str, list[Example]] = {}
        self._hub_down = False  # after one failure, stop asking for this process

    @classmethod
    def from_settings(cls, settings: Settings, samples_dir: Path | None = None) -> ExampleLibrary:
        return cls(samples_dir=samples_dir, hub_cache_dir=settings.cache_dir / "examples")

    def for_task(self, task: Task) -> list[Example]:
        with self._lock:
            if task.name not in self._memo:
                self._memo[task.name] = self._written(task) + self._samples(task) + self._hub(task)
            return list(self._memo[task.name])

    def _written(self, task: Task) -> list[Example]:
        path = self.examples_dir / f"{task.name}.json"
        if not path.is_file():
            return []
        data = json.loads(path.read_text(encoding="utf-8"))
        found = []
        for item in data["examples"]:
            row = {**item["values"], "target": item.get("target")}
            example = _row_to_example(task, row, item["label"], data.get("source", ""))
            if example is not None:
                found.append(example)
        return found

    def _samples(self, task: Task) -> list[Example]:
        if self.samples_dir is None or not (self.samples_dir / f"{task.name}.jsonl").is_file():
            return []
        lines = (self.samples_dir / f"{task.name}.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()][: self.per_source]
        source = f"{task.eval_split} rows ({self.samples_dir.name}/{task.name}.jsonl)"
        made = (_row_to_example(task, r, f"Eval row {i + 1}", source) for i, r in enumerate(rows))
        return [e for e in made if e is not None]

    def _hub(self, task: Task) -> list[Example]:
        found = hub_dataset(task.dataset_link)
        if self.hub_cache_dir is None or found is None or task.eval_split not in HUB_SPLITS:
            return []
        cached = self.hub_cache_dir / f"{task.name}.jsonl"
        if not cached.is_file():
            rows = self._fetch_hub_rows(*found, split=task.eval_split)
            if not rows:
                return []
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        rows = [json.loads(line) for line in cached.read_text(encoding="utf-8").splitlines()]
        source = f"{found[0]} {task.eval_split} split (Hugging Face Hub)"
        made = (_row_to_example(task, r, f"Hub row {i + 1}", source) for i, r in enumerate(rows))
        return [e for e in made if e is not None]

    def _fetch_hub_rows(self, repo: str, config: str | None, split: str) -> list[dict]:
        """First rows of a split from the dataset viewer; [] when the Hub is unreachable."""
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session

        if self._hub_down or constants.HF_HUB_OFFLINE:
            return []
        url = constants.DATASETS_SERVER_ENDPOINT
        try:
            session = get_session()
            if config is None:
                splits = session.get(
                    f"{url}/splits", params={"dataset": repo}, timeout=HUB_TIMEOUT_S
                ).json()["splits"]
                config = next(s["config"] for s in splits if s["split"] == split)
            response = session.get(
                f"{url}/rows",
                params={
                    "dataset": repo,
                    "config": config,
                    "split": split,
                    "offset": 0,
                    "length": self.per_source,
                },
                timeout=HUB_TIMEOUT_S,
            )
            response.raise_for_status()
            return [item["row"] for item in response.json()["rows"]]
        except Exception as e:  # any network or format failure: go on without Hub rows
            log.info("Hub examples unavailable for %s (%s); using local examples", repo, e)
            name = type(e).__name__
            self._hub_down = isinstance(e, OSError) or "Connect" in name or "Timeout" in name
            return []
