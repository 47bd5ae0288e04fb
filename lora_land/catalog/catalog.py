"""The catalog: a read-only model of the LoRA Land study and the queries the UI asks of it.

`load_catalog(dir)` reads `leaderboards/` once per directory (re-read only when a file
changes) and returns a `Catalog`: 31 tasks, 10 base models, 310 adapters, the "measured
here" rows, and queries (filter/search/sort, tasks x bases pivot, per-task view, headline
statistics). It imports no torch and knows nothing about Gradio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from lora_land.catalog import loader
from lora_land.catalog.measured import MEASURED_FILE, MeasuredRow, read_measured
from lora_land.catalog.models import AdapterEntry, BaseModel, HeadlineStats, Task
from lora_land.config import PROJECT_ROOT
from lora_land.errors import UserError

# The abstract's claim ("34 points" of lift on average), shown beside the computed value.
ABSTRACT_LIFT_CLAIM = 0.34
# Columns of `Catalog.leaderboard()`, in display order.
LEADERBOARD_COLUMNS = (
    "id",
    "task",
    "task_ui_name",
    "category",
    "base",
    "base_display",
    "metric",
    "finetuned",
    "base_score",
    "lift",
    "gpt4",
    "gpt35",
    "vs_gpt4",
    "beats_gpt4",
    "hf_adapter_id",
)
SORTABLE = LEADERBOARD_COLUMNS[:-1]
PIVOT_VALUES = ("finetuned", "base_score", "lift", "vs_gpt4")


@dataclass(frozen=True)
class Catalog:
    """Tasks, base models and adapters of the study; every mapping is read-only."""

    tasks: Mapping[str, Task]
    bases: Mapping[str, BaseModel]
    adapters: Mapping[str, AdapterEntry]
    measured: list[MeasuredRow]
    source_dir: Path
    _frame: pd.DataFrame = field(repr=False, compare=False)
    _haystack: pd.Series = field(repr=False, compare=False)

    @property
    def categories(self) -> list[str]:
        """The report's task categories, in first-seen order."""
        return list(dict.fromkeys(t.category for t in self.tasks.values()))

    def leaderboard(
        self,
        search: str = "",
        category: str | None = None,
        task: str | None = None,
        base: str | None = None,
        beats_gpt4: bool = False,
        sort_by: str = "lift",
        descending: bool = True,
    ) -> pd.DataFrame:
        """The adapters matching every given filter, sorted (ties keep catalog order)."""
        if sort_by not in SORTABLE:
            raise UserError(f"cannot sort by {sort_by!r}; choose one of {list(SORTABLE)}")
        frame = self._frame
        mask = pd.Series(True, index=frame.index)
        for column, value, known in (
            ("category", category, self.categories),
            ("task", task, self.tasks),
            ("base", base, self.bases),
        ):
            if value:
                if value not in known:
                    raise UserError(f"unknown {column} {value!r}; choose one of {list(known)}")
                mask &= frame[column] == value
        if beats_gpt4:
            mask &= frame["beats_gpt4"]
        words = search.lower().split()
        for word in words:
            mask &= self._haystack.str.contains(word, regex=False)
        result = frame[mask]
        return result.sort_values(sort_by, ascending=not descending, kind="stable")

    def pivot(self, value: str = "finetuned") -> pd.DataFrame:
        """Tasks (rows, file order) x base models (columns, file order) of one score column."""
        if value not in PIVOT_VALUES:
            raise UserError(f"cannot pivot {value!r}; choose one of {list(PIVOT_VALUES)}")
        table = self._frame.pivot(index="task", columns="base", values=value)
        return table.loc[list(self.tasks), list(self.bases)]

    def per_task(self, task: str) -> pd.DataFrame:
        """The 10 adapters of one task, in base-model order."""
        if task not in self.tasks:
            raise UserError(f"unknown task {task!r}; choose one of {list(self.tasks)}")
        return self._frame[self._frame["task"] == task].set_index("base").loc[list(self.bases)]

    def headline_stats(self) -> HeadlineStats:
        """The study's headline numbers, computed from the 310 rows."""
        frame = self._frame
        best = frame.groupby("task", sort=False)["finetuned"].max()
        gpt4 = pd.Series({name: t.gpt4 for name, t in self.tasks.items()})
        margin = (best - gpt4[best.index]).round(6)
        base_means = frame.groupby("base", sort=False)["finetuned"].mean()
        return HeadlineStats(
            n_adapters=len(frame),
            mean_lift=float(frame["lift"].mean()),
            abstract_lift_claim=ABSTRACT_LIFT_CLAIM,
            mean_best_vs_gpt4=float(margin.mean()),
            gpt4_ahead_tasks=tuple(margin[margin < 0].sort_values().index),
            tasks_best_beats_gpt4=int((margin > 0).sum()),
            n_beat_gpt4=int(frame["beats_gpt4"].sum()),
            best_base=str(base_means.idxmax()),
            best_base_mean=float(base_means.max()),
        )


def _frame(
    tasks: Mapping[str, Task], bases: Mapping[str, BaseModel], adapters: Mapping[str, AdapterEntry]
) -> pd.DataFrame:
    records = [
        {
            "id": a.id,
            "task": a.task,
            "task_ui_name": tasks[a.task].ui_name,
            "category": tasks[a.task].category,
            "base": a.base,
            "base_display": bases[a.base].display_name,
            "metric": tasks[a.task].metric,
            "finetuned": a.finetuned,
            "base_score": a.base_score,
            "lift": a.lift,
            "gpt4": a.gpt4,
            "gpt35": a.gpt35,
            "vs_gpt4": round(a.finetuned - a.gpt4, 6),
            "beats_gpt4": a.beats_gpt4,
            "hf_adapter_id": a.hf_adapter_id or "",
        }
        for a in adapters.values()
    ]
    return pd.DataFrame.from_records(records, columns=list(LEADERBOARD_COLUMNS))


def _haystack(frame: pd.DataFrame, tasks: Mapping[str, Task]) -> pd.Series:
    text = frame["id"] + " " + frame["task_ui_name"] + " " + frame["category"]
    text = (
        text
        + " "
        + frame["base_display"]
        + " "
        + frame["task"].map(lambda t: f"{tasks[t].description} {tasks[t].ui_category}")
    )
    return text.str.lower()


def build_catalog(directory: Path) -> Catalog:
    """Read and validate every file of `directory` (no caching)."""
    tasks = loader.read_tasks(directory / loader.TASKS_FILE, directory / loader.OPENAI_FILE)
    bases = loader.read_bases(directory / loader.BASES_FILE)
    scores = loader.read_scores(directory / loader.SCORES_FILE, tasks, bases)
    adapters = {}
    for base in bases:  # base-major order, tasks in file order within each base
        for name, task in tasks.items():
            finetuned, base_score, lift = scores[(base, name)]
            hub = task.hf_adapter_id if bases[base].hf_id == "mistralai/Mistral-7B-v0.1" else None
            adapter = AdapterEntry(
                f"{base}/{name}",
                base,
                name,
                finetuned,
                base_score,
                lift,
                task.gpt4,
                task.gpt35,
                hub,
            )
            adapters[adapter.id] = adapter
    measured = read_measured(directory / MEASURED_FILE, set(tasks))
    frame = _frame(tasks, bases, adapters)
    return Catalog(
        tasks=MappingProxyType(tasks),
        bases=MappingProxyType(bases),
        adapters=MappingProxyType(adapters),
        measured=measured,
        source_dir=directory,
        _frame=frame,
        _haystack=_haystack(frame, tasks),
    )


def _signature(directory: Path) -> tuple[int, ...]:
    names = (loader.TASKS_FILE, loader.BASES_FILE, loader.SCORES_FILE, loader.OPENAI_FILE)
    paths = [directory / n for n in (*names, MEASURED_FILE)]
    return tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in paths)


@lru_cache(maxsize=8)
def _cached(directory: Path, signature: tuple[int, ...]) -> Catalog:
    return build_catalog(directory)


def load_catalog(leaderboards_dir: Path | None = None) -> Catalog:
    """The catalog of `leaderboards_dir` (default: the project's), cached until a file changes."""
    directory = Path(leaderboards_dir or PROJECT_ROOT / "leaderboards").resolve()
    return _cached(directory, _signature(directory))
