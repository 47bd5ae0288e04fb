"""The zoo v2 queue: stage order, resuming from files, choosing on dev, the verdict."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lora_land.evaluation.scored import ScoredRun, paired_lift, score_rows
from lora_land.evaluation.tasks import load_task, read_rows
from lora_land.training import queue, zoo_stages
from lora_land.training.recipes import COMPARISON_TASK, DEFAULT_RECIPE, RECIPES
from tests.fakes import FakeEngine


def _adapter(runs: Path, task: str, recipe: str) -> None:
    d = runs / task / recipe / "adapter"
    d.mkdir(parents=True)
    (d / "adapter_model.safetensors").write_bytes(b"")


def _run(task: str, who: str, part: str, scores: list[float]) -> ScoredRun:
    return ScoredRun(
        task,
        who,
        "data.jsonl",
        part,
        "binary_accuracy_flex",
        list(range(len(scores))),
        scores,
        ["p"] * len(scores),
    )


def test_stages_follow_train_dev_choose_eval_result_and_resume_from_files(tmp_path):
    task = "glue_qnli"
    assert queue.next_stage(task, tmp_path) == f"train:{DEFAULT_RECIPE}"
    _adapter(tmp_path, task, DEFAULT_RECIPE)
    assert queue.next_stage(task, tmp_path) == "dev:base"
    (tmp_path / task / "dev-base.json").write_text("{}")
    assert queue.next_stage(task, tmp_path) == f"dev:{DEFAULT_RECIPE}"
    (tmp_path / task / f"dev-{DEFAULT_RECIPE}.json").write_text("{}")
    assert queue.next_stage(task, tmp_path) == "choose"
    choice = {"recipe": DEFAULT_RECIPE, "candidate": True}
    (tmp_path / task / "choice.json").write_text(json.dumps(choice))
    assert queue.next_stage(task, tmp_path) == "eval:base"
    (tmp_path / task / "eval-base.json").write_text("{}")
    assert queue.next_stage(task, tmp_path) == f"eval:{DEFAULT_RECIPE}"
    (tmp_path / task / f"eval-{DEFAULT_RECIPE}.json").write_text("{}")
    assert queue.next_stage(task, tmp_path) == "result"
    (tmp_path / task / "result.json").write_text("{}")
    assert queue.next_stage(task, tmp_path) is None


def test_a_task_not_chosen_on_dev_never_touches_the_evaluation_rows(tmp_path):
    task = "covid"
    _adapter(tmp_path, task, DEFAULT_RECIPE)
    for who in ("base", DEFAULT_RECIPE):
        (tmp_path / task / f"dev-{who}.json").write_text("{}")
    choice = {"recipe": DEFAULT_RECIPE, "candidate": False}
    (tmp_path / task / "choice.json").write_text(json.dumps(choice))
    assert queue.next_stage(task, tmp_path) == "result"


def test_the_comparison_task_trains_every_recipe_and_the_others_use_its_winner(tmp_path):
    assert queue.recipes_for(COMPARISON_TASK, tmp_path) == list(RECIPES)
    assert queue.recipes_for("conllpp", tmp_path) == [DEFAULT_RECIPE]
    (tmp_path / COMPARISON_TASK).mkdir()
    (tmp_path / COMPARISON_TASK / "choice.json").write_text(json.dumps({"recipe": "qv8"}))
    assert queue.recipes_for("conllpp", tmp_path) == ["qv8"]


def test_failed_tasks_drop_out_of_the_pending_list(tmp_path):
    order = ("glue_qnli", "covid")
    assert queue.pending_tasks(tmp_path, order) == list(order)
    queue.write_json(tmp_path / "glue_qnli" / "failures.json", {"count": queue.MAX_FAILURES})
    assert queue.pending_tasks(tmp_path, order) == ["covid"]


def test_score_rows_generates_each_distinct_prompt_once_and_stores_no_inputs(samples_dir):
    rows = read_rows(samples_dir / "train" / "e2e_nlg.jsonl")[:40]
    engine = FakeEngine(adapters=["a/e2e_nlg"], replies={"a/e2e_nlg": "Alimentum"})
    run = score_rows(
        engine,
        load_task("e2e_nlg"),
        rows,
        list(range(40)),
        adapter_id="a/e2e_nlg",
        data="x",
        part="dev",
        progress=False,
    )
    assert len(engine.requests) == len({json.dumps(r["meaning_representation"]) for r in rows})
    assert len(engine.requests) < 40 and run.n == 40
    stored = json.dumps(run.__dict__)
    assert rows[0]["meaning_representation"] not in stored and rows[0]["target"] not in stored


def test_choose_then_result_measures_the_dev_winner_on_the_evaluation_rows(tmp_path, monkeypatch):
    task = "glue_qnli"
    d = tmp_path / task
    n = 100
    base = [float(i % 2) for i in range(n)]
    _run(task, "", "dev", base).save(d / "dev-base.json")
    _run(task, "a", "dev", [1.0] * n).save(d / "dev-qv8.json")
    _run(task, "a", "dev", base).save(d / "dev-all4.json")
    rows = [{"target": str(i % 2)} for i in range(n)]  # a constant answer is right on half
    monkeypatch.setattr(zoo_stages, "part_rows", lambda t, p: (rows, list(range(n)), "x"))
    zoo_stages.choose_stage(task, ["all4", "qv8"], d)
    choice = json.loads((d / "choice.json").read_text())
    assert choice["recipe"] == "qv8" and choice["candidate"]
    assert choice["dev"]["qv8"]["lift"]["mean"] == 0.5
    assert choice["dev"]["qv8"]["majority"]["adapter_lift"]["mean"] == 0.5
    _run(task, "", "eval", base[:50]).save(d / "eval-base.json")
    _run(task, "a", "eval", base[:50]).save(d / "eval-qv8.json")  # no gain where it counts
    zoo_stages.result_stage(task, d)
    result = json.loads((d / "result.json").read_text())
    assert not result["ships"] and result["eval"]["lift"]["n"] == 50
    assert (
        paired_lift(ScoredRun.load(d / "eval-qv8.json"), ScoredRun.load(d / "eval-base.json")).mean
        == 0
    )


def test_stage_threads_follow_the_setting_else_the_load(monkeypatch):
    monkeypatch.setenv("LORA_LAND_THREADS", "3")
    assert queue.stage_threads() == 3
    monkeypatch.delenv("LORA_LAND_THREADS")
    monkeypatch.setattr(queue.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(queue.os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    assert queue.stage_threads() == 1
    monkeypatch.setattr(queue.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    assert queue.stage_threads() == 2


def test_a_finished_task_is_kept_in_its_record_and_not_redone_on_a_new_machine(tmp_path):
    runs = tmp_path / "runs"
    task = "glue_qnli"
    result = {"ships": True, "recipe": DEFAULT_RECIPE, "reason": "paired lift +0.4"}
    queue.write_json(runs / task / "result.json", result)
    queue.write_json(runs / task / "cpu.json", {"result": {"cpu_s": 1.0, "wall_s": 2.0}})
    record = queue.keep_record(task, runs)
    assert record == queue.records_dir(runs) / f"{task}.json"
    kept = json.loads(record.read_text())
    assert kept["reason"] == "paired lift +0.4" and kept["cpu"]["result"]["cpu_s"] == 1.0

    import shutil

    shutil.rmtree(runs / task)  # the machine's scratch is gone; the record stays
    assert queue.next_stage(task, runs) is None
    assert queue.status(runs)[[t for t, _ in queue.status(runs)].index(task)][1].startswith("ships")
    assert queue.next_stage("covid", runs) == f"train:{DEFAULT_RECIPE}"


def test_the_comparison_tasks_record_still_names_the_recipe_for_the_others(tmp_path):
    queue.write_json(queue.records_dir(tmp_path) / f"{COMPARISON_TASK}.json", {"recipe": "qv8"})
    assert queue.recipes_for("conllpp", tmp_path) == ["qv8"]


def test_the_default_queue_keeps_its_records_in_git():
    assert queue.records_dir() == queue.RECORDS_DIR
    assert queue.RECORDS_DIR.relative_to(queue.PROJECT_ROOT).parts[0] == "leaderboards"


def test_a_stage_measures_in_float32_unless_the_dtype_is_set(monkeypatch, tmp_path: Path):
    seen = []
    monkeypatch.setattr(queue, "step", lambda runs: seen.append(os.environ["LORA_LAND_DTYPE"]) or 3)
    import torch

    monkeypatch.setattr(queue, "stage_threads", torch.get_num_threads)  # leaves them as they are
    monkeypatch.delenv("LORA_LAND_DTYPE", raising=False)
    assert queue.main(["step", "--runs", str(tmp_path)]) == queue.ALL_DONE
    monkeypatch.setenv("LORA_LAND_DTYPE", "bfloat16")
    queue.main(["step", "--runs", str(tmp_path)])
    assert seen == ["float32", "bfloat16"]  # a bf16 record from bench.dtype is not consulted
