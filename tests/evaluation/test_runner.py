"""The eval runner against a fake `TextEngine`, and the "measured here" CSV it writes."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from lora_land.catalog.measured import COLUMNS, read_measured, upsert_measured
from lora_land.engine.types import GenerationRequest, GenerationResult
from lora_land.evaluation.runner import evaluate_rows, measured_row
from lora_land.evaluation.tasks import load_task, read_rows


class FakeEngine:
    """Answers "1" for every prompt; records the requests it saw."""

    base_name = "fake"
    context_length = 2048

    def __init__(self, answer: str = "1") -> None:
        self.answer = answer
        self.batches: list[list[GenerationRequest]] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.batches.append(list(requests))
        return [
            GenerationResult(self.answer, r.adapter_id, 10, 1, "eos", 0.0, 0.0, 0.0, "hot")
            for r in requests
        ]


def test_runner_scores_with_the_task_metric_and_report_decoding(samples_dir: Path) -> None:
    rows = read_rows(samples_dir / "glue_sst2.jsonl")
    engine = FakeEngine("1")
    task = load_task("glue_sst2")
    report = evaluate_rows(engine, task, rows, "fake/glue_sst2", batch_size=8, progress=False)
    expected = sum(r["target"] == "1" for r in rows) / len(rows)
    assert report.score == expected and report.n == len(rows) == 50
    assert report.metric == "binary_accuracy_flex"
    assert [len(b) for b in engine.batches] == [8] * 6 + [2]
    first = engine.batches[0][0]
    assert first.prompt == task.render(rows[0])
    assert first.temperature == 0.0 and first.max_new_tokens == 256
    assert first.adapter_id == "fake/glue_sst2"


def test_measured_rows_are_replaced_per_task_base_adapter(tmp_path: Path) -> None:
    from lora_land.evaluation.runner import EvalReport

    path = tmp_path / "measured_here.csv"
    report = EvalReport("glue_sst2", None, "binary_accuracy_flex", 0.5, 50)
    row = measured_row(
        report,
        "smollm2-135m-instruct",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "shared/data/samples/glue_sst2.jsonl",
    )
    upsert_measured(row, path)
    upsert_measured(
        measured_row(
            EvalReport("glue_sst2", "x", "m", 0.9, 50),
            "smollm2-135m-instruct",
            "hub",
            "d",
            "smollm2-135m-instruct/glue_sst2",
        ),
        path,
    )
    upsert_measured(
        measured_row(
            EvalReport("glue_sst2", None, "m", 0.25, 50), "smollm2-135m-instruct", "hub", "d"
        ),
        path,
    )
    with open(path, newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    rows = read_measured(path)
    assert [(r.adapter, r.score) for r in rows] == [
        ("", 0.25),
        ("smollm2-135m-instruct/glue_sst2", 0.9),
    ]


def test_magicoder_uses_its_eval_template_and_humaneval(samples_dir: Path) -> None:
    rows = read_rows(samples_dir / "magicoder.jsonl")[:2]
    task = load_task("magicoder")
    prompt = task.render_eval(rows[0])
    assert prompt.startswith("Below is a programming problem")
    assert rows[0]["prompt"] in prompt and prompt.endswith("### Solution: ")

    class Solver(FakeEngine):
        def generate(self, requests):
            by_prompt = {task.render_eval(r): r["target"] for r in rows}
            return [
                GenerationResult(by_prompt[r.prompt], None, 1, 1, "eos", 0, 0, 0, "base")
                for r in requests
            ]

    report = evaluate_rows(Solver(), task, rows, None, progress=False)
    assert report.metric == "humaneval" and report.score == 1.0  # canonical solutions pass


def test_measured_row_carries_the_bootstrap_interval_of_the_row_scores(samples_dir: Path) -> None:
    from lora_land.evaluation.stats import bootstrap_mean

    rows = read_rows(samples_dir / "glue_sst2.jsonl")
    report = evaluate_rows(FakeEngine("1"), load_task("glue_sst2"), rows, None, progress=False)
    row = measured_row(report, "b", "hub", "d")
    expected = bootstrap_mean([r["score"] for r in report.records])
    assert (row.low, row.high) == (expected.low, expected.high)
    assert row.low < row.score < row.high and row.n == 50


def test_rows_sharing_a_prompt_form_one_bootstrap_group(samples_dir: Path) -> None:
    # e2e_nlg's evaluation rows give one meaning representation several references
    rows = read_rows(samples_dir / "e2e_nlg.jsonl")
    task = load_task("e2e_nlg")
    report = evaluate_rows(FakeEngine("x"), task, rows, None, progress=False)
    prompts = [task.render_eval(r) for r in rows]
    groups = [r["input"] for r in report.records]
    assert len(set(groups)) == len(set(prompts)) < len(rows)
    for i, g in enumerate(groups):
        assert prompts[g] == prompts[i] and g <= i  # the first row with that prompt
    report.records = [dict(r, score=float(len(prompts[r["input"]]) % 3)) for r in report.records]
    row = measured_row(report, "b", "hub", "d")
    from lora_land.evaluation.stats import bootstrap_mean

    grouped = bootstrap_mean([r["score"] for r in report.records], groups=groups)
    assert (row.low, row.high) == (grouped.low, grouped.high)
    assert (row.low, row.high) != (
        bootstrap_mean([r["score"] for r in report.records]).low,
        bootstrap_mean([r["score"] for r in report.records]).high,
    )
