"""Catalog queries the leaderboard tab uses: filter, search, sort, pivot, per task, cache."""

from __future__ import annotations

import shutil

import pytest

from lora_land.catalog import load_catalog
from lora_land.config import PROJECT_ROOT
from lora_land.errors import PromptError, UserError


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_no_filter_returns_all_310_sorted_by_lift_descending(catalog):
    frame = catalog.leaderboard()
    assert len(frame) == 310
    assert frame["lift"].is_monotonic_decreasing


def test_task_filter_returns_its_10_bases(catalog):
    frame = catalog.leaderboard(task="glue_sst2", sort_by="finetuned")
    assert len(frame) == 10
    assert set(frame["base"]) == set(catalog.bases)
    assert frame["finetuned"].is_monotonic_decreasing


def test_filters_combine(catalog):
    frame = catalog.leaderboard(category="Reasoning", base="mistral-7b", beats_gpt4=True)
    expected = [
        a.id
        for a in catalog.adapters.values()
        if a.base == "mistral-7b"
        and catalog.tasks[a.task].category == "Reasoning"
        and a.finetuned > a.gpt4
    ]
    assert sorted(frame["id"]) == sorted(expected)
    assert frame["beats_gpt4"].all()


def test_search_matches_every_word_case_insensitively(catalog):
    frame = catalog.leaderboard(search="ZEPHYR sst2")
    assert list(frame["id"]) == ["zephyr-7b-beta/glue_sst2"]
    assert catalog.leaderboard(search="no such thing").empty


def test_sort_ascending_by_any_column(catalog):
    frame = catalog.leaderboard(sort_by="base_score", descending=False)
    assert frame["base_score"].is_monotonic_increasing


def test_unknown_filter_or_sort_names_the_valid_choices(catalog):
    with pytest.raises(UserError, match=r"unknown task 'nope'.*glue_sst2"):
        catalog.leaderboard(task="nope")
    with pytest.raises(UserError, match="cannot sort by 'x'"):
        catalog.leaderboard(sort_by="x")
    with pytest.raises(UserError, match="cannot pivot"):
        catalog.pivot("x")


def test_pivot_is_tasks_by_bases_in_file_order(catalog):
    table = catalog.pivot("lift")
    assert table.shape == (31, 10)
    assert list(table.index) == list(catalog.tasks)
    assert list(table.columns) == list(catalog.bases)
    assert table.loc["glue_sst2", "mistral-7b"] == catalog.adapters["mistral-7b/glue_sst2"].lift


def test_per_task_lists_each_base_once(catalog):
    frame = catalog.per_task("gsm8k")
    assert list(frame.index) == list(catalog.bases)
    assert frame.loc["phi-2", "finetuned"] == catalog.adapters["phi-2/gsm8k"].finetuned


def test_render_names_a_missing_or_empty_field(catalog):
    with pytest.raises(PromptError, match="sentence2"):
        catalog.tasks["glue_stsb"].render({"sentence1": "a"})
    with pytest.raises(PromptError, match="must not be empty"):
        catalog.tasks["glue_sst2"].render({"sentence": "  "})


def test_catalog_is_cached_per_directory_and_reloaded_when_a_file_changes(tmp_path):
    for f in (PROJECT_ROOT / "leaderboards").glob("*.*"):
        if f.name != "measured_here.csv":
            shutil.copy(f, tmp_path / f.name)
    first = load_catalog(tmp_path)
    assert load_catalog(tmp_path) is first
    assert first.measured == []
    (tmp_path / "measured_here.csv").write_text(
        "date,task,base_model,adapter,metric,score,n,data,model\n"
        "2025-01-01,glue_sst2,smollm2-135m-instruct,smollm2-135m-instruct/glue_sst2,accuracy,"
        "0.81,64,shared/data/samples/glue_sst2.jsonl,HuggingFaceTB/SmolLM2-135M-Instruct\n"
    )
    second = load_catalog(tmp_path)
    assert second is not first
    assert [(m.task, m.score, m.n) for m in second.measured] == [("glue_sst2", 0.81, 64)]


def test_one_render_rule_blank_fields_only_for_data_rows(catalog):
    covid = catalog.tasks["covid"]
    row = {"OriginalTweet": "Shops are empty", "TweetAt": "2/3/2020", "Location": ""}
    with pytest.raises(PromptError, match=r"field\(s\) \['Location'\] must not be empty"):
        covid.render(row)
    assert covid.render_eval(row) == covid.render(row, allow_blank=True)
    assert "Shops are empty" in covid.render_eval(row)
    with pytest.raises(PromptError, match=r"needs field\(s\) \['Location'\]"):
        covid.render_eval({**row, "Location": None})
