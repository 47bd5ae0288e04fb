"""A broken data file fails at load with `CatalogDataError` naming file, row and problem.

Each test copies the real `leaderboards/` files to a tmp dir, breaks one thing, and loads it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lora_land.catalog import build_catalog, load_catalog
from lora_land.config import PROJECT_ROOT
from lora_land.errors import CatalogDataError

FILES = ("tasks.json", "base_models.json", "scores_table12.csv", "openai_table12.csv")
MEASURED_HEADER = "date,task,base_model,adapter,metric,score,n,data,model\n"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    for name in FILES:
        shutil.copy(PROJECT_ROOT / "leaderboards" / name, tmp_path / name)
    return tmp_path


def _edit_lines(path: Path, edit) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(edit(lines)))


def _replace_line(path: Path, index: int, old: str, new: str) -> None:
    def edit(lines):
        assert old in lines[index]
        lines[index] = lines[index].replace(old, new, 1)
        return lines

    _edit_lines(path, edit)


def _fails(data: Path, pattern: str) -> None:
    with pytest.raises(CatalogDataError, match=pattern):
        build_catalog(data)


def test_the_copied_files_load_cleanly(data):
    assert len(build_catalog(data).adapters) == 310


def test_missing_column_names_file_header_and_column(data):
    path = data / "scores_table12.csv"
    _replace_line(path, 0, ",finetuned,", ",ft,")
    _fails(data, r"scores_table12\.csv: line 1 \(header\): missing column\(s\) \['finetuned'\]")


def test_unknown_task_names_file_line_and_task(data):
    _replace_line(data / "scores_table12.csv", 3, ",bc5cdr,", ",bc6cdr,")
    _fails(data, r"scores_table12\.csv: line 4: unknown task 'bc6cdr'")


def test_unknown_base_names_file_line_and_base(data):
    _replace_line(data / "scores_table12.csv", 2, "gemma-2b", "gemma-3b")
    _fails(data, r"scores_table12\.csv: line 3: unknown base model 'gemma-3b'")


def test_score_out_of_range_names_column_value_and_limits(data):
    _replace_line(data / "scores_table12.csv", 1, "0.950,", "1.950,")
    _fails(data, r"scores_table12\.csv: line 2: finetuned=1\.950 is out of range \[0\.0, 1\.0\]")


def test_non_numeric_score_is_named(data):
    _replace_line(data / "openai_table12.csv", 1, "0.890", "n/a")
    _fails(data, r"openai_table12\.csv: line 2: gpt_4='n/a' is not a number")


def test_duplicate_row_names_the_pair(data):
    _edit_lines(data / "scores_table12.csv", lambda lines: [*lines, lines[1]])
    _fails(data, r"scores_table12\.csv: line 312: duplicate row for base 'phi-2', task 'bc5cdr'")


def test_missing_row_is_reported(data):
    _edit_lines(data / "scores_table12.csv", lambda lines: lines[:-1])
    _fails(data, r"scores_table12\.csv: rows: 1 \(base, task\) pair\(s\) missing")


def test_inconsistent_base_and_delta_are_reported(data):
    _replace_line(data / "scores_table12.csv", 1, ",0.172", ",0.272")
    _fails(data, r"scores_table12\.csv: line 2: base 0\.272 != finetuned 0\.95 - delta 0\.778")


def test_bad_json_names_file_line_and_column(data):
    path = data / "base_models.json"
    path.write_text(path.read_text().replace('"creator"', "creator", 1))
    _fails(data, r"base_models\.json: line \d+ column \d+: invalid JSON")


def test_json_entry_missing_a_field_is_named(data):
    path = data / "tasks.json"
    tasks = json.loads(path.read_text())
    del tasks[4]["target_col"]
    path.write_text(json.dumps(tasks))
    _fails(data, r"tasks\.json: entry 4: missing field\(s\) \['target_col'\]")


def test_duplicate_task_in_json_is_named(data):
    path = data / "tasks.json"
    tasks = json.loads(path.read_text())
    path.write_text(json.dumps([*tasks, tasks[0]]))
    _fails(data, r"tasks\.json: entry 31: duplicate task 'bc5cdr'")


def test_unknown_metric_lists_the_known_ones(data):
    path = data / "tasks.json"
    tasks = json.loads(path.read_text())
    tasks[0]["metric"] = "bleu"
    path.write_text(json.dumps(tasks))
    _fails(data, r"tasks\.json: entry 0 \(bc5cdr\): unknown metric 'bleu' \(known: \[")


def test_openai_table_missing_a_task_is_named(data):
    path = data / "openai_table12.csv"
    _edit_lines(path, lambda lines: [ln for ln in lines if "gsm8k" not in ln])
    _fails(data, r"openai_table12\.csv: rows: no GPT-4/GPT-3\.5 row for task\(s\) \['gsm8k'\]")


def test_missing_file_names_the_path(data):
    (data / "base_models.json").unlink()
    _fails(data, r"base_models\.json: file not found")


def test_measured_file_may_be_absent_or_header_only(data):
    assert build_catalog(data).measured == []
    (data / "measured_here.csv").write_text(MEASURED_HEADER)
    assert build_catalog(data).measured == []


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("d,nope,b,,accuracy,0.5,3,x,m", r"line 2: unknown task 'nope'"),
        ("d,glue_sst2,b,,accuracy,1.5,3,x,m", r"line 2: score=1\.5 is out of range"),
        ("d,glue_sst2,b,,accuracy,0.5,zero,x,m", r"line 2: n='zero' is not an integer"),
        ("d,glue_sst2,b,,accuracy,0.5,3,x", r"line 2: expected 9 fields"),
    ],
)
def test_broken_measured_row_is_named(data, row, problem):
    (data / "measured_here.csv").write_text(MEASURED_HEADER + row + "\n")
    _fails(data, r"measured_here\.csv: " + problem)


def test_duplicate_measured_row_is_named(data):
    row = "d,glue_sst2,b,a,accuracy,0.5,3,x,m\n"
    (data / "measured_here.csv").write_text(MEASURED_HEADER + row + row)
    _fails(data, r"measured_here\.csv: line 3: duplicate row")


def test_load_catalog_raises_too(data):
    _replace_line(data / "scores_table12.csv", 1, "0.950,", "-0.5,")
    with pytest.raises(CatalogDataError, match="out of range"):
        load_catalog(data)
