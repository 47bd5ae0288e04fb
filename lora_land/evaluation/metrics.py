"""The report's metrics as specs in a registry keyed by the tasks' `metric_fn` names.

Behaviour follows predibase/lora_bakeoff `utils/metric_fns.py` (the report's evaluation code),
quirks included, with three documented departures:
- `accuracy`: numbers compare by value both ways ("1.0" == "1" and "1" == "1.0"); the report's
  code only caught one direction although its comment states this intent.
- `stsb`: a parsed number outside 0..5 counts as "no number" (score 0), as the report's
  first-number path already did; the score is 1 - |pred - target| / 5, so higher is better
  even though the report labels the column "mae".
- the metric functions the report names but whose code is not public (`mmlu_accuracy`,
  `winogrande_accuracy`, `arc_accuracy`, `covid_accuracy`, `humaneval`) are implemented as
  the evident variants: first number, choice letter, sentiment label, HumanEval pass@1.
Every metric here is higher-is-better (so a spec carries no direction flag; the catalog's
`Task.higher_is_better` is what the UI shows). This module scores strings; it imports no torch and
runs no model (HumanEval code runs in `lora_land.evaluation.sandbox`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from lora_land.errors import UserError

ScoreFn = Callable[[str, str, Mapping[str, str] | None], float]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    description: str
    fn: ScoreFn

    def score(self, prediction: str, target: str, row: Mapping[str, str] | None = None) -> float:
        return float(self.fn(str(prediction), str(target), row))


class UnknownMetricError(UserError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def accuracy(pred: str, target: str, row=None) -> float:
    """Equal after stripping periods and case, or equal as numbers ("1.0" == "1")."""
    if pred.strip().strip(".").lower() == target.strip().strip(".").lower():
        return 1.0
    p, t = _as_float(pred.strip()), _as_float(target.strip())
    return float(p is not None and t is not None and p == t)


def bool_value(text: str) -> bool | None:
    """The report's reading of a yes/no answer: first of 1, 0, yes, no, true, false,
    positive, negative found anywhere in the text (in that order); None if none is."""
    low = str(text).lower()
    for needle, value in (
        ("1", True),
        ("0", False),
        ("yes", True),
        ("no", False),
        ("true", True),
        ("false", False),
        ("positive", True),
        ("negative", False),
    ):
        if needle in low:
            return value
    return None


def binary_accuracy_flex(pred: str, target: str, row=None) -> float:
    p, t = bool_value(pred), bool_value(target)
    return float(p is not None and t is not None and p == t)


def _digit_presence(digits: str) -> ScoreFn:
    """Vanilla accuracy, else the same class digit present in both (mrpc, mnli, hellaswag)."""

    def fn(pred: str, target: str, row=None) -> float:
        if accuracy(pred, target):
            return 1.0
        return float(any(d in pred and d in target for d in digits))

    return fn


@cache
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge(pred: str, target: str, row=None) -> float:
    """ROUGE-L F-measure (the report used torchmetrics' `rougeL_fmeasure`, no stemming)."""
    return _rouge_scorer().score(target, pred)["rougeL"].fmeasure


_FIRST_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})*(?:\.\d+)?")


def first_number(text: str) -> str | None:
    """The report's first-number pattern (thousands commas, optional decimals)."""
    m = _FIRST_NUMBER.search(text)
    return m.group(0) if m else None


def stsb_number(text: str) -> float | None:
    """The whole text as a number, else its first number; None outside 0..5 or if none."""
    value = _as_float(text.strip())
    if value is None:
        found = first_number(text)
        value = float(found.replace(",", "")) if found else None
    return value if value is not None and 0.0 <= value <= 5.0 else None


def stsb(pred: str, target: str, row=None) -> float:
    """1 - |pred - target| / 5 (0 when no usable number was generated)."""
    p, t = stsb_number(pred), stsb_number(target)
    return 0.0 if p is None or t is None else 1.0 - abs(p - t) / 5.0


DBPEDIA_CLASSES = (
    "Company",
    "EducationalInstitution",
    "Artist",
    "Athlete",
    "OfficeHolder",
    "MeanOfTransportation",
    "Building",
    "NaturalPlace",
    "Village",
    "Animal",
    "Plant",
    "Album",
    "Film",
    "WrittenWork",
)


def dbpedia(pred: str, target: str, row=None) -> float:
    """A bare class index becomes its name (0-based, as the report), then ROUGE-L."""
    index = pred.strip()
    if index.isdigit() and int(index) < len(DBPEDIA_CLASSES):
        pred = DBPEDIA_CLASSES[int(index)]
    return rouge(pred, target)


def customer_support_accuracy(pred: str, target: str, row=None) -> float:
    return float(bool(accuracy(pred, target)) or target.lower() in pred.lower())


_GSM8K = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def _last_gsm8k_number(text: str) -> float | None:
    matches = _GSM8K.findall(text)
    if not matches:
        return None
    return _as_float("".join(matches[-1]).strip("$.").replace(",", ""))


def gsm8k_regex(pred: str, target: str, row=None) -> float:
    """The last number of the generation equals the last number of the target."""
    p, t = _last_gsm8k_number(pred), _last_gsm8k_number(target)
    return float(p is not None and t is not None and p == t)


def first_number_accuracy(pred: str, target: str, row=None) -> float:
    """Vanilla accuracy, else the first number generated equals the target's value."""
    if accuracy(pred, target):
        return 1.0
    found, t = first_number(pred), _as_float(target.strip())
    return float(found is not None and t is not None and float(found.replace(",", "")) == t)


_LETTER = re.compile(r"\b([A-E])\b")


def choice_letter_accuracy(pred: str, target: str, row=None) -> float:
    """Vanilla accuracy, else the first standalone choice letter A-E equals the target."""
    if accuracy(pred, target):
        return 1.0
    m = _LETTER.search(pred.strip().upper() if len(pred.strip()) == 1 else pred)
    return float(m is not None and m.group(1) == target.strip().upper())


COVID_LABELS = ("Extremely Positive", "Extremely Negative", "Positive", "Negative", "Neutral")
_COVID = re.compile("|".join(re.escape(x.lower()) for x in COVID_LABELS))


def covid_accuracy(pred: str, target: str, row=None) -> float:
    """Vanilla accuracy, else the first sentiment label named (longest at a position) matches."""
    if accuracy(pred, target):
        return 1.0
    m = _COVID.search(pred.lower())
    return float(m is not None and m.group(0) == target.strip().lower())


def humaneval(pred: str, target: str, row=None) -> float:
    """pass@1 with one greedy sample: the generated code passes the problem's tests."""
    from lora_land.evaluation.sandbox import check_humaneval

    if not row or "test" not in row or "entry_point" not in row:
        raise ValueError("humaneval needs the row's 'prompt', 'test' and 'entry_point'")
    return float(check_humaneval(pred, row).passed)


_SPECS = [
    MetricSpec("accuracy", "exact match ignoring case and periods; numbers by value", accuracy),
    MetricSpec(
        "binary_accuracy_flex",
        "yes/no, true/false, 1/0, positive/negative",
        binary_accuracy_flex,
    ),
    MetricSpec("mrpc_accuracy", "accuracy, else class digit 1/2 present", _digit_presence("12")),
    MetricSpec("mnli_accuracy", "accuracy, else class digit 0/1/2 present", _digit_presence("012")),
    MetricSpec(
        "hellaswag_accuracy",
        "accuracy, else class digit 0-3 present",
        _digit_presence("0123"),
    ),
    MetricSpec("rouge", "ROUGE-L F-measure", rouge),
    MetricSpec("dbpedia", "class index to name, then ROUGE-L", dbpedia),
    MetricSpec("stsb", "1 - |pred - target| / 5; no number scores 0", stsb),
    MetricSpec(
        "customer_support_accuracy",
        "accuracy, else target contained",
        customer_support_accuracy,
    ),
    MetricSpec("gsm8k_regex", "last number matches", gsm8k_regex),
    MetricSpec("mmlu_accuracy", "first number is the answer's number", first_number_accuracy),
    MetricSpec("winogrande_accuracy", "first number is the option's number", first_number_accuracy),
    MetricSpec("arc_accuracy", "first choice letter matches", choice_letter_accuracy),
    MetricSpec("covid_accuracy", "first sentiment label named matches", covid_accuracy),
    MetricSpec("humaneval", "pass@1: the code passes the tests in a sandbox", humaneval),
]
METRICS: dict[str, MetricSpec] = {s.name: s for s in _SPECS}


def get_metric(name: str) -> MetricSpec:
    """The spec for a task's `metric_fn`; a miss lists the valid names."""
    try:
        return METRICS[name]
    except KeyError:
        raise UnknownMetricError(
            f"unknown metric {name!r}; valid metrics: {', '.join(sorted(METRICS))}"
        ) from None


def score(name: str, prediction: str, target: str, row: Mapping[str, str] | None = None) -> float:
    return get_metric(name).score(prediction, target, row)


def score_many(
    name: str,
    predictions: Sequence[str],
    targets: Sequence[str],
    rows: Sequence[Mapping[str, str] | None] | None = None,
) -> float:
    """Mean score over aligned predictions and targets (0.0 for no rows)."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    if not predictions:
        return 0.0
    spec = get_metric(name)
    rows = rows if rows is not None else [None] * len(predictions)
    return sum(
        spec.score(p, t, r) for p, t, r in zip(predictions, targets, rows, strict=True)
    ) / len(predictions)
