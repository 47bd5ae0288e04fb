"""Shipping zoo v2 results: files, model card, measured-here rows with intervals, v1 retired."""

from __future__ import annotations

import json
from pathlib import Path

from lora_land.catalog.measured import MeasuredRow, read_measured, write_measured
from lora_land.config import EMBEDDED_BASE
from lora_land.training.model_card import SUMMARY_FILE
from lora_land.training.queue import write_json
from lora_land.training.ship import ship_all, zoo_version
from lora_land.training.zoo import write_zoo_readme

SUMMARY = {
    "task": "glue_sst2",
    "base": EMBEDDED_BASE,
    "data": "shared/data/samples/train/glue_sst2.jsonl",
    "steps": 300,
    "lr": 0.001,
    "batch_size": 8,
    "max_seq_len": 256,
    "rank": 4,
    "alpha": 8,
    "dropout": 0.05,
    "warmup_frac": 0.03,
    "target_modules": ["q_proj", "v_proj"],
    "seed": 0,
    "split": "train",
    "n_rows": 622,
    "final_loss": 0.1,
    "first_loss": 9.0,
}


def _ci(mean, low, high, n):
    return {"mean": mean, "low": low, "high": high, "n": n}


def _comparison(n, base, tuned, lift, data):
    return {
        "metric": "binary_accuracy_flex",
        "data": data,
        "base": _ci(*base, n),
        "adapter": _ci(*tuned, n),
        "lift": _ci(*lift, n),
        "second": {
            "measure": "label_validity",
            "base": _ci(0.0, 0.0, 0.0, n),
            "adapter": _ci(1.0, 1.0, 1.0, n),
            "lift": _ci(1.0, 1.0, 1.0, n),
        },
    }


def _adapter(path: Path, task: str, summary: dict) -> None:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text("{}")
    (path / "adapter_model.safetensors").write_bytes(b"w")
    (path / SUMMARY_FILE).write_text(json.dumps({**summary, "task": task}))


def test_ship_all_ships_records_intervals_and_retires_v1(tmp_path):
    runs, zoo, measured = tmp_path / "runs", tmp_path / "zoo", tmp_path / "measured.csv"
    _adapter(runs / "glue_sst2" / "all4" / "adapter", "glue_sst2", SUMMARY)
    dev = _comparison(
        100,
        (0.1, 0.05, 0.16),
        (0.9, 0.84, 0.95),
        (0.8, 0.72, 0.87),
        "shared/data/samples/train/glue_sst2.jsonl",
    )
    ev = _comparison(
        50,
        (0.0, 0.0, 0.0),
        (0.88, 0.78, 0.96),
        (0.88, 0.78, 0.96),
        "shared/data/samples/glue_sst2.jsonl",
    )
    write_json(
        runs / "glue_sst2" / "choice.json", {"recipe": "all4", "dev": {"all4": dev, "qv8": dev}}
    )
    write_json(
        runs / "glue_sst2" / "result.json",
        {
            "ships": True,
            "recipe": "all4",
            "reason": "paired lift +0.880",
            "dev": dev,
            "eval": ev,
            "date": "2026-12-01",
        },
    )
    legacy = {k: v for k, v in SUMMARY.items() if k != "split"}
    _adapter(zoo / "covid", "covid", legacy)  # a v1 adapter
    _adapter(zoo / "covid@dpo", "covid", legacy)  # another branch's variant
    write_json(
        runs / "covid" / "result.json",
        {"ships": False, "recipe": "all4", "reason": "no lift on dev", "dev": dev},
    )
    old = MeasuredRow(
        "2026-11-25",
        "covid",
        EMBEDDED_BASE,
        f"{EMBEDDED_BASE}/covid",
        "covid_accuracy",
        0.26,
        50,
        "shared/data/samples/covid.jsonl",
        "m",
    )
    write_measured([old], measured)

    done = ship_all(runs, zoo, measured)

    assert done["glue_sst2"] == "shipped (v2)" and done["covid"].startswith("v1 retired")
    assert zoo_version(zoo / "glue_sst2") == 2
    assert not (zoo / "covid").exists() and (zoo / "covid@dpo").is_dir()
    summary = json.loads((zoo / "glue_sst2" / SUMMARY_FILE).read_text())
    assert summary["zoo"]["chosen_on"]["part"] == "dev"
    assert summary["zoo"]["measured_on"] == {
        "part": "eval",
        "data": "shared/data/samples/glue_sst2.jsonl",
        "n": 50,
        "times": 1,
    }
    card = (zoo / "glue_sst2" / "README.md").read_text()
    assert "Chosen on the **dev** split: 100 rows" in card and "Measured **once**" in card
    assert (
        "| evaluation (measured) | `binary_accuracy_flex` | 50 | 0.000 [0.000, 0.000] | "
        "0.880 [0.780, 0.960] | +0.880 [+0.780, +0.960] |"
    ) in card
    rows = {r.adapter: r for r in read_measured(measured)}
    assert set(rows) == {"", f"{EMBEDDED_BASE}/glue_sst2"}  # covid's v1 row went with it
    tuned = rows[f"{EMBEDDED_BASE}/glue_sst2"]
    assert (tuned.score, tuned.low, tuned.high, tuned.n) == (0.88, 0.78, 0.96, 50)
    assert (tuned.lift, tuned.lift_low, tuned.second_metric) == (0.88, 0.78, "label_validity")
    assert rows[""].lift is None and rows[""].second_score == 0.0

    readme = write_zoo_readme(zoo, runs).read_text()
    assert "| glue_sst2 | **shipped** |" in readme and "not shipped: no lift on dev" in readme
    assert "Mean lift of the 1 shipped v2 adapters on the evaluation rows: +0.880." in readme


def test_a_classifier_is_measured_against_its_most_common_training_label(tmp_path):
    from lora_land.evaluation.measures import constant_answer
    from lora_land.evaluation.scored import ScoredRun
    from lora_land.training.zoo_stages import majority_reference

    assert constant_answer("boolq")[0] == "True"  # 1,257 of its 2,000 training rows
    assert constant_answer("e2e_nlg") is None  # free text: no constant answer
    rows = [{"target": t} for t in ("True", "False", "True", "True")]
    tuned = ScoredRun(
        "boolq",
        "a",
        "d",
        "eval",
        "binary_accuracy_flex",
        index=[0, 1, 2, 3],
        scores=[1.0, 0.0, 0.0, 1.0],
        predictions=["True", "True", "False", "True"],
    )
    m = majority_reference("boolq", rows, tuned)
    # the constant "True" is right on rows 0, 2, 3; the adapter minus it per row: 0, 0, -1, 0
    assert m["label"] == "True"
    assert (m["score"]["mean"], m["score"]["n"]) == (0.75, 4)
    assert m["adapter_lift"]["mean"] == -0.25 and m["adapter_lift"]["low"] <= -0.25


def test_shipping_adds_the_constant_answer_reference_to_a_classifiers_card(tmp_path):
    from lora_land.evaluation.scored import ScoredRun
    from lora_land.training.zoo_stages import part_rows

    runs, zoo, measured = tmp_path / "runs", tmp_path / "zoo", tmp_path / "measured.csv"
    _adapter(runs / "boolq" / "all4" / "adapter", "boolq", SUMMARY)
    rows, _, data = part_rows("boolq", "eval")
    index = list(range(len(rows)))  # an adapter right on every row beats the constant
    truth = [str(rows[i]["target"]) for i in index]
    tuned = ScoredRun(
        "boolq", "a", data, "eval", "binary_accuracy_flex", index=index,
        scores=[1.0] * len(rows), predictions=truth,
    )  # fmt: skip
    tuned.save(runs / "boolq" / "eval-all4.json")
    ev = _comparison(len(rows), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), data)
    write_json(runs / "boolq" / "choice.json", {"recipe": "all4", "dev": {"all4": ev}})
    write_json(
        runs / "boolq" / "result.json",
        {"ships": True, "recipe": "all4", "reason": "r", "dev": ev, "eval": ev},
    )

    ship_all(runs, zoo, measured)

    share = truth.count("True") / len(rows)  # the constant answer's score on these rows
    result = json.loads((runs / "boolq" / "result.json").read_text())
    assert result["eval"]["majority"]["score"]["mean"] == share
    assert result["ships"] and 0 < share < 1
    assert abs(result["eval"]["majority"]["adapter_lift"]["mean"] - (1 - share)) < 1e-9
    card = (zoo / "boolq" / "README.md").read_text()
    assert f"always `True` (the most common training label) scores {share:.3f}" in card
    readme = write_zoo_readme(zoo, runs).read_text()
    assert f"| boolq | `True` | {share:.3f} [" in readme


def test_an_adapter_shipped_under_an_earlier_rule_is_withdrawn_when_it_no_longer_holds(tmp_path):
    from lora_land.evaluation.scored import ScoredRun
    from lora_land.training.zoo_stages import part_rows

    runs, zoo, measured = tmp_path / "runs", tmp_path / "zoo", tmp_path / "measured.csv"
    rows, index, data = part_rows("boolq", "eval")
    always_true = ScoredRun(
        "boolq", "a", data, "eval", "binary_accuracy_flex", index=index,
        scores=[float(str(r["target"]) == "True") for r in rows], predictions=["True"] * len(rows),
    )  # fmt: skip
    always_true.save(runs / "boolq" / "eval-all4.json")
    ev = _comparison(len(rows), (0.2, 0.1, 0.3), (0.78, 0.66, 0.88), (0.58, 0.4, 0.76), data)
    write_json(
        runs / "boolq" / "result.json",
        {"ships": True, "recipe": "all4", "reason": "paired lift +0.58", "dev": ev, "eval": ev},
    )
    _adapter(zoo / "boolq", "boolq", {**SUMMARY, "zoo": {"version": 2}})

    done = ship_all(runs, zoo, measured)

    assert done["boolq"].startswith("v2 withdrawn") and "targets' prior" in done["boolq"]
    assert not (zoo / "boolq").exists()
    result = json.loads((runs / "boolq" / "result.json").read_text())
    assert not result["ships"] and result["eval"]["majority"]["adapter_lift"]["mean"] == 0.0


def test_a_numeric_task_is_measured_against_its_median_training_target():
    import statistics

    from lora_land.evaluation.measures import constant_answer
    from lora_land.evaluation.tasks import read_jsonl
    from lora_land.training.split import TRAIN_DIR

    answer, what = constant_answer("glue_stsb")
    targets = [float(r["target"]) for r in read_jsonl(TRAIN_DIR / "glue_stsb.jsonl")]
    assert float(answer) == statistics.median(targets) and what == "the median training target"


def test_a_target_many_training_rows_share_is_a_constant_answer_free_text_has_none():
    from collections import Counter

    from lora_land.evaluation.measures import MIN_MODE_SHARE, constant_answer
    from lora_land.evaluation.tasks import read_jsonl
    from lora_land.training.split import TRAIN_DIR

    for task in ("reuters", "conllpp", "e2e_nlg"):
        counts = Counter(str(r["target"]) for r in read_jsonl(TRAIN_DIR / f"{task}.jsonl"))
        mode, n = counts.most_common(1)[0]
        found = constant_answer(task)
        if n / counts.total() >= MIN_MODE_SHARE:
            assert found is not None and found[0] == mode and "training rows" in found[1]
        else:
            assert found is None
    assert constant_answer("reuters")[0] == "[]"  # 43% of its training rows
    assert constant_answer("e2e_nlg") is None  # free text: no answer fits many inputs
