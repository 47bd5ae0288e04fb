"""The shipping rule of the mini zoo, as code: which adapters may be shipped, and why not.

An adapter ships only if its paired lift over the base (same rows, mean of per-row
differences) has a 95% bootstrap interval that lies entirely above zero on the evaluation
rows, and, for a task whose metric can be satisfied by format alone (structured outputs:
NER entity lists, data-to-text), only if its lift on the task's second measure also lies
above zero; and, where a constant answer is a real prior (a classifier's most common label, a
numeric task's median target, a target at least 5% of the training rows share, such as
reuters' "[]"), only if its paired lift over that constant answer also lies above zero: an
adapter that answers every input with the targets' prior gets the report metric's lift over a
base that cannot produce an answer of the right form, without reading the input. The same rule
picks the candidates on the dev split before the evaluation rows are touched. This module
decides; it measures nothing and touches no files.
"""

from __future__ import annotations

from dataclasses import dataclass

from lora_land.evaluation.stats import Interval

# Tasks whose report metric rewards format: the second measure must also improve.
STRUCTURED_TASKS = frozenset({"conllpp", "bc5cdr", "e2e_nlg", "viggo", "webnlg"})


@dataclass(frozen=True)
class Verdict:
    ships: bool
    reason: str


def shipping_verdict(
    task: str,
    lift: Interval,
    second_lift: Interval | None = None,
    *,
    where: str = "eval",
    over_constant: Interval | None = None,
) -> Verdict:
    """Apply the rule to a paired `lift` (and `second_lift` for structured tasks,
    `over_constant`, the lift over the most common label, for classifiers)."""
    if not lift.above_zero:
        return Verdict(
            False,
            f"paired lift {lift.text(signed=True)} on the {where} rows: "
            "the interval does not lie above zero",
        )
    if task in STRUCTURED_TASKS:
        if second_lift is None:
            return Verdict(False, f"{task} is structured and its second measure is missing")
        if not second_lift.above_zero:
            return Verdict(
                False,
                f"second-measure lift {second_lift.text(signed=True)} on the {where} rows: "
                "the metric's gain may be format alone",
            )
    if over_constant is not None and not over_constant.above_zero:
        return Verdict(
            False,
            f"paired lift over a constant answer (the targets' prior) "
            f"{over_constant.text(signed=True)} on the {where} rows: the metric's gain is the "
            "answer format and the targets' prior",
        )
    return Verdict(True, f"paired lift {lift.text(signed=True)} on the {where} rows")
