"""Preference export: DPO pairs, ties, CSV, the CLI, and a round trip through `datasets`."""

from __future__ import annotations

import csv
import json

from lora_land.arena import export
from lora_land.arena.store import VoteStore
from lora_land.cli import main
from tests.arena.test_store import SPEC_A, SPEC_B, make_vote


def _fill(store: VoteStore) -> None:
    store.record(make_vote("win-left", left_output="1", right_output="0"))
    store.record(make_vote("win-right", vote="right", outcome="right", task="glue_cola"))
    store.record(make_vote("tie", vote="tie", outcome="tie"))
    store.record(make_vote("bad", vote="both_bad", outcome="tie"))
    store.record(make_vote("fast", flag="too_fast"))
    store.record(make_vote("same", left_output="x", right_output="x", outcome="tie"))


def test_preference_rows_keep_only_decisive_counted_votes(tmp_path):
    store = VoteStore(tmp_path / "a.sqlite")
    _fill(store)
    rows = export.preference_rows(store.votes())
    assert [(r["chosen"], r["rejected"]) for r in rows] == [
        ("1", "0"),
        ("The sentence is positive", "1"),
    ]
    assert rows[1]["chosen_model"] == SPEC_B["id"] and rows[1]["rejected_model"] == SPEC_A["id"]
    assert [r["vote"] for r in export.tie_rows(store.votes())] == ["tie", "both_bad", "left"]


def test_cli_export_round_trips_through_datasets_as_trl_reads_it(tmp_path, capsys):
    import datasets

    db = tmp_path / "a.sqlite"
    _fill(VoteStore(db))
    out = tmp_path / "prefs.jsonl"
    code = main(["export-preferences", "--db", str(db), "--out", str(out), "--include-ties"])
    assert code == 0
    assert "wrote 2 preference pairs" in capsys.readouterr().err
    data = datasets.load_dataset("json", data_files=str(out), split="train")
    assert {"prompt", "chosen", "rejected", "task", "vote_id"} <= set(data.column_names)
    assert data.num_rows == 2 and all(isinstance(x, str) for x in data["chosen"])
    assert data[0]["prompt"] == "Is this positive? great film"
    ties = datasets.load_dataset("json", data_files=str(tmp_path / "prefs.ties.jsonl"))
    assert ties["train"].num_rows == 3


def test_cli_export_filters_by_task_and_writes_raw_csv(tmp_path, capsys):
    db = tmp_path / "a.sqlite"
    _fill(VoteStore(db))
    assert main(["export-preferences", "--db", str(db), "--task", "glue_cola"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["task"] for line in lines] == ["glue_cola"]
    out = tmp_path / "votes.csv"
    assert main(["export-preferences", "--db", str(db), "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and {r["flag"] for r in rows} == {"", "too_fast"}


def test_cli_export_without_a_database_says_where_it_looked(tmp_path, capsys):
    assert main(["export-preferences", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no arena votes yet" in capsys.readouterr().err


def test_exported_rows_are_trl_standard_preference_rows_with_an_explicit_prompt(tmp_path):
    from trl.data_utils import is_conversational, maybe_extract_prompt

    store = VoteStore(tmp_path / "a.sqlite")
    _fill(store)
    for row in export.preference_rows(store.votes()):
        assert not is_conversational(row)  # plain strings: TRL's "standard" format
        assert maybe_extract_prompt(row) == row  # the prompt is already explicit
