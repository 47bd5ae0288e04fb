"""`lora-land train` then `lora-land evaluate`, end to end, on a tiny local base model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lora_land.catalog.measured import read_measured
from lora_land.cli import main


@pytest.mark.slow
def test_train_then_evaluate_from_the_cli(
    tiny_base: Path, sst2_rows: Path, samples_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "adapter"
    argv = [
        "train",
        "--task",
        "glue_sst2",
        "--base",
        str(tiny_base),
        "--data",
        str(sst2_rows),
        "--out",
        str(out),
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--max-seq-len",
        "96",
    ]
    assert main(argv) == 0
    assert "final loss" in capsys.readouterr().out
    assert (out / "adapter_model.safetensors").is_file()

    measured = tmp_path / "measured_here.csv"
    predictions = tmp_path / "predictions.jsonl"
    data = samples_dir / "glue_sst2.jsonl"
    common = [
        "evaluate",
        "--task",
        "glue_sst2",
        "--base",
        str(tiny_base),
        "--data",
        str(data),
        "--measured",
        str(measured),
        "--max-new-tokens",
        "4",
    ]
    assert main([*common, "--limit", "4"]) == 0
    assert not measured.exists()  # a partial run is not recorded
    assert main([*common, "--adapter", str(out), "--predictions", str(predictions)]) == 0
    rows = read_measured(measured)
    assert len(rows) == 1 and rows[0].n == 50 and rows[0].adapter.endswith("/glue_sst2")
    assert rows[0].data == "shared/data/samples/glue_sst2.jsonl"
    preds = [json.loads(x) for x in predictions.read_text().splitlines()]
    assert rows[0].score == pytest.approx(sum(p["score"] for p in preds) / 50)
    assert "Evaluation" in (out / "README.md").read_text()
    assert f"{rows[0].score:.3f}" in (out / "README.md").read_text()


def test_unknown_task_is_a_clear_error(capsys) -> None:
    code = main(["train", "--task", "no_such_task", "--data", "/dev/null"])
    assert code == 2
    assert "unknown task 'no_such_task'" in capsys.readouterr().err
