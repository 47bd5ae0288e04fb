"""The shipped `leaderboards/` data: counts, ranges, and the report's headline numbers.

Expected statistics are recomputed here with the `csv` module, independently of the catalog's
pandas code, and checked against the values the report's README states.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from statistics import mean

import pytest

from lora_land.catalog import load_catalog
from lora_land.config import PROJECT_ROOT

DATA = PROJECT_ROOT / "leaderboards"


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def table():
    scores = _rows("scores_table12.csv")
    gpt4 = {r["task"]: float(r["gpt_4"]) for r in _rows("openai_table12.csv")}
    return scores, gpt4


def test_counts_are_31_tasks_10_bases_310_adapters(catalog):
    assert len(catalog.tasks) == 31
    assert len(catalog.bases) == 10
    assert len(catalog.adapters) == 310
    assert {a.id for a in catalog.adapters.values()} == {
        f"{b}/{t}" for b in catalog.bases for t in catalog.tasks
    }


def test_every_score_is_in_range_and_lift_is_finetuned_minus_base(catalog):
    for a in catalog.adapters.values():
        assert 0.0 <= a.finetuned <= 1.0 and 0.0 <= a.base_score <= 1.0
        assert 0.0 <= a.gpt4 <= 1.0 and 0.0 <= a.gpt35 <= 1.0
        assert a.lift == pytest.approx(a.finetuned - a.base_score, abs=0.0015)


def test_adapter_scores_match_the_csv(catalog, table):
    scores, gpt4 = table
    for row in scores:
        entry = catalog.adapters[f"{row['base_model']}/{row['task']}"]
        assert entry.finetuned == float(row["finetuned"])
        assert entry.lift == float(row["delta"])
        assert entry.gpt4 == gpt4[row["task"]]


def test_every_metric_is_higher_is_better_and_stsb_carries_a_note(catalog):
    assert all(t.higher_is_better for t in catalog.tasks.values())
    stsb = catalog.tasks["glue_stsb"]
    assert stsb.metric == "mae"
    assert "higher-is-better" in stsb.metric_note
    assert [n for n, t in catalog.tasks.items() if t.metric_note] == ["glue_stsb"]


def test_hub_adapters_exist_only_on_mistral_7b_for_22_tasks(catalog):
    with_hub = [a for a in catalog.adapters.values() if a.hf_adapter_id]
    assert len(with_hub) == 22
    assert {a.base for a in with_hub} == {"mistral-7b"}
    assert catalog.adapters["mistral-7b/glue_sst2"].hf_adapter_id == "predibase/glue_sst2"


def test_mean_lift_is_0_384_not_the_abstracts_34_points(catalog, table):
    scores, _ = table
    expected = mean(float(r["delta"]) for r in scores)
    stats = catalog.headline_stats()
    assert stats.mean_lift == pytest.approx(expected)
    assert round(stats.mean_lift, 3) == 0.384
    assert stats.abstract_lift_claim == 0.34


def test_best_finetune_per_task_beats_gpt4_by_0_095_on_average(catalog, table):
    scores, gpt4 = table
    best: dict[str, float] = defaultdict(float)
    for r in scores:
        best[r["task"]] = max(best[r["task"]], float(r["finetuned"]))
    margins = {t: round(best[t] - gpt4[t], 6) for t in best}
    stats = catalog.headline_stats()
    assert stats.mean_best_vs_gpt4 == pytest.approx(mean(margins.values()))
    assert round(stats.mean_best_vs_gpt4, 3) == 0.095
    assert set(stats.gpt4_ahead_tasks) == {t for t, m in margins.items() if m < 0}
    assert set(stats.gpt4_ahead_tasks) == {
        "magicoder", "wikisql", "boolq", "mmlu", "arc_combined", "glue_wnli"
    }  # fmt: skip
    assert stats.tasks_best_beats_gpt4 == sum(m > 0 for m in margins.values())


def test_pairs_beating_gpt4_and_best_base_are_computed_from_the_rows(catalog, table):
    scores, gpt4 = table
    beats = sum(float(r["finetuned"]) > gpt4[r["task"]] for r in scores)
    by_base: dict[str, list[float]] = defaultdict(list)
    for r in scores:
        by_base[r["base_model"]].append(float(r["finetuned"]))
    best_base = max(by_base, key=lambda b: mean(by_base[b]))
    stats = catalog.headline_stats()
    assert stats.n_beat_gpt4 == beats
    assert stats.best_base == best_base
    assert stats.best_base_mean == pytest.approx(mean(by_base[best_base]))


def test_task_render_fills_the_exact_template_and_unescapes_braces(catalog):
    bc5cdr = catalog.tasks["bc5cdr"]
    text = bc5cdr.render({"tokens_concatenated": "Aspirin causes ulcers ."})
    assert 'Input: "Aspirin causes ulcers ."\n\nOutput: ' in text
    assert "{'B-Chemical': ['Naloxone', 'clonidine']" in text
    assert catalog.tasks["reuters"].fields == ("title", "text")
