"""Second measures: what a task's answer must get right beyond its report metric's surface.

The report's metric can be satisfied by format alone (ROUGE on a JSON entity skeleton, on
data-to-text boilerplate), so the zoo shows a task-appropriate second measure beside it:
- NER (`conllpp`, `bc5cdr`): entity-level F1 of the predicted {type: [entities]} against the
  target's (per row; an answer that does not parse scores 0, two empty lists score 1);
- data-to-text (`e2e_nlg`, `viggo`, `webnlg`): slot coverage, the share of the input's slot
  values (yes/no flags aside) that the text mentions;
- classifiers (a task whose targets take at most `MAX_LABELS` values): label validity, the
  answer is exactly one of the labels (case and a final period aside).
Each is a per-row score in [0, 1], so it gets the same bootstrap interval and paired lift as
the metric. This module scores strings; it runs no model and imports no torch.
"""

from __future__ import annotations

import ast
import json
import re
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import cache

from lora_land.evaluation.tasks import read_jsonl
from lora_land.training.split import TRAIN_DIR

MAX_LABELS = 10
MIN_MODE_SHARE = 0.05  # a target this common is a prior an adapter could learn instead of reading
NER_TASKS = frozenset({"conllpp", "bc5cdr"})
DATA_TO_TEXT = {
    "e2e_nlg": "meaning_representation",
    "viggo": "meaning_representation",
    "webnlg": "modified_triple_set_preprocessed",
}
_SLOT = re.compile(r"([A-Za-z_ ]+)\[([^\]]*)\]")
_FLAGS = frozenset({"yes", "no", "true", "false", ""})


def parse_entities(text: str) -> dict[str, list[str]] | None:
    """A `{type: [entity, ...]}` answer (JSON or a Python literal); None if it is not one."""
    text = text.strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
            return {str(k): [str(e) for e in v] for k, v in value.items()}
    return None


def entity_f1(prediction: str, target: str, row: Mapping | None = None) -> float:
    """F1 of the predicted (type, entity) pairs against the target's; 1.0 when both are empty."""
    gold, pred = parse_entities(target), parse_entities(prediction)
    if gold is None:
        raise ValueError(f"target is not an entity dict: {target[:80]!r}")
    if pred is None:
        return 0.0
    g = {(k, e.strip().lower()) for k, v in gold.items() for e in v}
    p = {(k, e.strip().lower()) for k, v in pred.items() for e in v}
    if not g and not p:
        return 1.0
    hit = len(g & p)
    return 0.0 if hit == 0 else 2 * hit / (len(g) + len(p))


def slot_values(task: str, row: Mapping) -> list[str]:
    """The values a text for this input should mention (flags like yes/no left out)."""
    source = str(row[DATA_TO_TEXT[task]])
    if task == "webnlg":
        values = []
        for triple in source.split(";"):
            parts = [p.strip() for p in triple.split("|")]
            if len(parts) == 3:
                values += [parts[0], parts[2]]
        values = [v.replace("_", " ").strip('"') for v in values]
    else:
        values = [m.group(2) for m in _SLOT.finditer(source)]
    seen = dict.fromkeys(v.strip() for v in values if v.strip().lower() not in _FLAGS)
    return list(seen)


def slot_coverage(task: str) -> Callable[[str, str, Mapping | None], float]:
    def fn(prediction: str, target: str, row: Mapping | None = None) -> float:
        values = slot_values(task, row or {})
        if not values:
            return 1.0
        low = prediction.lower()
        return sum(v.lower() in low for v in values) / len(values)

    return fn


@cache
def label_set(task: str) -> frozenset[str] | None:
    """The task's labels (its training targets) when there are at most `MAX_LABELS`."""
    path = TRAIN_DIR / f"{task}.jsonl"
    if not path.is_file():
        return None
    labels = {_norm(str(r["target"])) for r in read_jsonl(path)}
    return frozenset(labels) if len(labels) <= MAX_LABELS else None


@cache
def constant_answer(task: str) -> tuple[str, str] | None:
    """(answer, what it is) a model that learnt only the targets' prior would give to every
    input: a classifier's most common training label, a numeric task's median training
    target, another task's most common training target when at least `MIN_MODE_SHARE` of the
    training rows have it (reuters' "[]", conllpp's empty entity lists); None for free text."""
    targets = [str(r["target"]) for r in read_jsonl(TRAIN_DIR / f"{task}.jsonl")]
    if not targets:
        return None
    counts = Counter(targets)
    mode = min(counts, key=lambda t: (-counts[t], t))  # ties: alphabetical
    if label_set(task) is not None:
        return mode, "the most common training label"
    numbers = [_number(t) for t in targets]
    if all(n is not None for n in numbers):
        return f"{statistics.median(numbers):g}", "the median training target"
    share = counts[mode] / len(targets)
    if share >= MIN_MODE_SHARE:
        return mode, f"the most common training target, {share:.0%} of the training rows"
    return None


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _norm(text: str) -> str:
    return text.strip().strip(".").strip().lower()


def label_validity(task: str) -> Callable[[str, str, Mapping | None], float]:
    labels = label_set(task) or frozenset()

    def fn(prediction: str, target: str, row: Mapping | None = None) -> float:
        return float(_norm(prediction) in labels)

    return fn


def second_measure(task: str) -> tuple[str, Callable[[str, str, Mapping | None], float]] | None:
    """(name, per-row score function) of the task's second measure, or None if it has none."""
    if task in NER_TASKS:
        return "entity_f1", entity_f1
    if task in DATA_TO_TEXT:
        return "slot_coverage", slot_coverage(task)
    if label_set(task) is not None:
        return "label_validity", label_validity(task)
    return None


def answer_validity(task: str) -> Callable[[str, str, Mapping | None], float] | None:
    """Whether an answer has the task's form: an entity dict (NER), one of the labels
    (classifiers); None for tasks with free-form answers."""
    if task in NER_TASKS:
        return lambda prediction, target, row=None: float(parse_entities(prediction) is not None)
    if label_set(task) is not None:
        return label_validity(task)
    return None


def validity_shares(task: str, *runs) -> list[float] | None:
    """The share of valid answers in each run (see `answer_validity`), or None."""
    fn = answer_validity(task)
    if fn is None:
        return None
    return [sum(fn(p, "", None) for p in run.predictions) / max(1, run.n) for run in runs]


def second_measure_runs(task: str, rows: Sequence[Mapping], *runs):
    """(name, *runs rescored with the second measure) or None; rows are the runs' data file."""
    from dataclasses import replace

    found = second_measure(task)
    if found is None:
        return None
    name, fn = found
    rescored = [
        replace(
            run,
            metric=name,
            scores=[
                fn(p, str(rows[i]["target"]), rows[i])
                for i, p in zip(run.index, run.predictions, strict=True)
            ],
        )
        for run in runs
    ]
    return (name, *rescored)
