"""Second measures: entity F1 for NER, slot coverage for data-to-text, label validity."""

from __future__ import annotations

import json

import pytest

from lora_land.evaluation.measures import (
    entity_f1,
    label_set,
    second_measure,
    second_measure_runs,
    slot_values,
)
from lora_land.evaluation.scored import ScoredRun

GOLD = json.dumps(
    {"person": ["Saddam Hussein"], "organization": [], "location": ["Iraq"], "miscellaneous": []}
)
SKELETON = json.dumps({"person": [], "organization": [], "location": [], "miscellaneous": []})


def test_the_empty_skeleton_scores_zero_entity_f1_where_rouge_would_not():
    from lora_land.evaluation.metrics import get_metric

    assert entity_f1(SKELETON, GOLD) == 0.0
    assert get_metric("rouge").score(SKELETON, GOLD) > 0.6  # the format alone scores this


def test_entity_f1_counts_typed_entities():
    half = json.dumps({"person": ["Saddam Hussein"], "location": ["Baghdad"]})
    assert entity_f1(GOLD, GOLD) == 1.0
    assert entity_f1(half, GOLD) == pytest.approx(0.5)  # 1 hit of 2 predicted, 2 gold
    assert entity_f1(json.dumps({"location": ["Saddam Hussein"]}), GOLD) == 0.0  # wrong type
    assert entity_f1("not json at all", GOLD) == 0.0
    assert entity_f1(SKELETON, SKELETON) == 1.0


def test_bc5cdr_python_literal_targets_parse():
    target = "{'B-Chemical': ['lithium'], 'B-Disease': ['dystonia'], 'I-Disease': []}"
    assert entity_f1(target, target) == 1.0
    assert entity_f1("{'B-Chemical': ['lithium']}", target) == pytest.approx(2 / 3)


def test_slot_values_leave_out_flags_and_read_triples():
    e2e = {"meaning_representation": "name[Alimentum], familyFriendly[yes], near[Burger King]"}
    assert slot_values("e2e_nlg", e2e) == ["Alimentum", "Burger King"]
    web = {"modified_triple_set_preprocessed": "Nie_Haisheng | birthDate | 1964-10-13"}
    assert slot_values("webnlg", web) == ["Nie Haisheng", "1964-10-13"]


def test_slot_coverage_is_the_share_of_values_mentioned():
    name, fn = second_measure("e2e_nlg")
    row = {"meaning_representation": "name[Alimentum], area[riverside], near[Burger King]"}
    assert name == "slot_coverage"
    assert fn("Alimentum is near Burger King.", "", row) == pytest.approx(2 / 3)
    assert fn("A pub.", "", row) == 0.0


def test_label_validity_uses_the_training_labels():
    assert label_set("glue_sst2") == frozenset({"0", "1"})
    name, fn = second_measure("glue_sst2")
    assert name == "label_validity"
    assert fn("1", "0") == 1.0 and fn(" 0. ", "0") == 1.0
    assert fn("positive", "1") == 0.0
    assert second_measure("gsm8k") is None  # free-form numbers: no label set


def test_second_measure_runs_rescore_stored_predictions_by_row_index():
    rows = [{"input": "x", "target": GOLD}, {"input": "y", "target": SKELETON}]
    run = ScoredRun("conllpp", "", "f", "dev", "rouge", [1, 0], [0.5, 0.5], [GOLD, GOLD])
    name, rescored = second_measure_runs("conllpp", rows, run)
    assert name == "entity_f1"
    assert rescored.scores == [0.0, 1.0]  # row 1 predicted GOLD against an empty target
    assert rescored.index == [1, 0] and run.metric == "rouge"


def test_validity_is_the_share_of_answers_in_the_task_form():
    from lora_land.evaluation.measures import validity_shares

    run = ScoredRun("conllpp", "", "f", "dev", "rouge", [0, 1], [0.0, 0.0], [GOLD, "Iraq"])
    assert validity_shares("conllpp", run) == [0.5]
    sst2 = ScoredRun("glue_sst2", "", "f", "dev", "m", [0, 1, 2], [0.0] * 3, ["1", "0", "yes"])
    assert validity_shares("glue_sst2", sst2) == [pytest.approx(2 / 3)]
    assert validity_shares("gsm8k", sst2) is None
