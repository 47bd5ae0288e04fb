"""`lora-land rlhf` from the command line: options reach the loop, the variant is installed."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from lora_land.cli import main

pytestmark = pytest.mark.slow


def _one_iteration(tiny_base: Path, tiny_pi0: Path, tmp_path: Path, *extra: str) -> list[str]:
    """`rlhf` on the tiny model: one iteration of two prompts, out to tmp_path/glue_sst2@dpo."""
    return [
        "rlhf", "--task", "glue_sst2", "--base", str(tiny_base), "--adapter", str(tiny_pi0),
        "--iterations", "1", "--prompts", "2", "--k", "2", "--max-new-tokens", "3",
        "--eval-max-new-tokens", "2", "--max-steps", "1",
        "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "glue_sst2@dpo"), *extra,
    ]  # fmt: skip


def test_rlhf_cli_runs_one_iteration_and_installs_the_variant(
    tiny_base: Path, tiny_pi0: Path, tmp_path: Path, capsys
):
    out = tmp_path / "glue_sst2@dpo"
    assert main(_one_iteration(tiny_base, tiny_pi0, tmp_path, "--eval-limit", "2")) == 0
    printed = capsys.readouterr().out
    assert "pi_0: binary_accuracy_flex" in printed and "(n=2)" in printed
    assert f"installed {out}" in printed
    summary = json.loads((out / "rlhf_summary.json").read_text())
    first = summary["curve"][1]
    assert first["samples"] == 4 and first["pairs"] + first["skipped_ties"] == 2
    # a random model answers every prompt wrongly, so the metric ties and nothing is trained:
    # pi_1 is pi_0 and the card says so with empty DPO cells
    if first["pairs"] == 0:
        assert first["dpo"]["steps"] == 0
        assert "| - -> - |" in (out / "README.md").read_text()
    assert (out / "adapter_model.safetensors").read_bytes()


def test_rlhf_on_the_dev_split_measures_there_and_installs_nothing(
    tiny_base: Path, tiny_pi0: Path, tmp_path: Path, capsys
):
    out = tmp_path / "glue_sst2@dpo"
    argv = _one_iteration(tiny_base, tiny_pi0, tmp_path, "--eval-on", "dev", "--eval-limit", "3")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "(n=3)" in printed and "measured on the dev split: a dev run installs nothing" in printed
    assert not out.exists()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["eval_split"] == "dev"


def test_rlhf_background_detaches_and_logs(tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    assert main(["rlhf", "--task", "nope", "--run-dir", str(run_dir), "--background"]) == 0
    assert "running in the background as pid" in capsys.readouterr().out
    log = run_dir / "rlhf.log"
    for _ in range(300):
        if "unknown task 'nope'" in (log.read_text() if log.is_file() else ""):
            break
        time.sleep(0.2)
    assert "error: unknown task 'nope'" in log.read_text()


def test_rlhf_names_an_unknown_adapter(tiny_base: Path, capsys):
    argv = ["rlhf", "--task", "glue_sst2", "--base", str(tiny_base), "--adapter", "nope"]
    assert main(argv) == 2
    assert "--adapter 'nope' is neither a local adapter directory" in capsys.readouterr().err


def test_rlhf_refuses_a_coverage_reward_for_a_task_without_slots_before_loading(capsys):
    argv = ["rlhf", "--task", "glue_sst2", "--reward", "metric+coverage", "--base", "nope"]
    assert main(argv) == 2  # named before the (unknown) base is looked up
    err = capsys.readouterr().err
    assert "--reward metric+coverage needs a data-to-text task" in err and "'glue_sst2'" in err


def test_installed_variant_gets_its_measured_here_row(tmp_path: Path):
    from types import SimpleNamespace

    from lora_land.cli import _record_dpo
    from lora_land.rlhf.loop import LoopConfig, LoopResult

    config = LoopConfig(task="glue_sst2", adapter=tmp_path, adapter_id="x", run_dir=tmp_path)
    base = SimpleNamespace(name="smollm2-135m-instruct", hub_id="HuggingFaceTB/SmolLM2")
    curve = [{"eval": {"metric": "binary_accuracy_flex", "row_scores": [1.0, 0.0, 1.0, 1.0]}}]
    measured = tmp_path / "measured_here.csv"
    _record_dpo(config, base, LoopResult(curve=curve), tmp_path / "glue_sst2@dpo", measured)
    text = measured.read_text()
    assert "smollm2-135m-instruct/glue_sst2@dpo" in text and ",0.7500," in text
    assert "shared/data/samples/glue_sst2.jsonl" in text


def test_choosing_on_dev_installs_nothing_when_no_iteration_beats_pi0(
    tiny_base: Path, tiny_pi0: Path, tmp_path: Path, capsys
):
    out = tmp_path / "glue_sst2@dpo"
    argv = _one_iteration(tiny_base, tiny_pi0, tmp_path, "--eval-on", "choose", "--eval-limit", "2")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # the tiny model ties on every prompt: pi_1 is pi_0, so it did not beat pi_0 on dev
    assert "no iteration beat pi_0 on the dev split: nothing installed" in printed
    assert (tmp_path / "run" / "dev" / "iter1" / "record.json").is_file()
    assert not out.exists() and not (tmp_path / "run" / "eval").exists()


def test_choosing_on_dev_measures_the_chosen_iteration_once_and_installs_it(
    tiny_base: Path, tiny_pi0: Path, tmp_path: Path, capsys, monkeypatch
):
    import lora_land.rlhf.loop as loop

    monkeypatch.setattr(loop, "best_on_dev", lambda curve: 1)  # as if pi_1 won on dev
    out = tmp_path / "glue_sst2@dpo"
    argv = _one_iteration(tiny_base, tiny_pi0, tmp_path, "--eval-on", "choose", "--eval-limit", "2")
    assert main([*argv, "--no-record"]) == 0
    assert "chosen on the dev split: pi_1" in capsys.readouterr().out
    dev, ev = tmp_path / "run" / "dev" / "iter1", tmp_path / "run" / "eval" / "iter1"
    # the eval run trained nothing: it measured the dev run's pi_1 (same files) ...
    assert (ev / "samples.jsonl").read_bytes() == (dev / "samples.jsonl").read_bytes()
    assert (ev / "dpo.json").read_bytes() == (dev / "dpo.json").read_bytes()
    weights = "adapter/adapter_model.safetensors"
    assert (out / "adapter_model.safetensors").read_bytes() == (dev / weights).read_bytes()
    # ... on the evaluation rows, and installed it
    assert (
        json.loads((tmp_path / "run" / "eval" / "config.json").read_text()).get(
            "eval_split", "eval"
        )
        == "eval"
    )
    assert json.loads((ev / "record.json").read_text())["eval"]["score"]["n"] == 2
    # the card says how pi_1 was chosen, with the dev split's scores
    choice = json.loads((out / "rlhf_summary.json").read_text())["chosen_on_dev"]
    dev_scores = [
        json.loads((tmp_path / "run" / "dev" / f"iter{t}" / "record.json").read_text())
        for t in (0, 1)
    ]
    assert choice["chosen"] == 1 and [r["iteration"] for r in choice["curve"]] == [0, 1]
    assert choice["curve"][1]["score"] == dev_scores[1]["eval"]["score"]["mean"]
    card = (out / "README.md").read_text()
    assert "## How one iteration was chosen" in card and "pi_1 was best there" in card


def test_choosing_on_dev_keeps_the_served_variant_when_it_scored_higher_on_dev(
    tiny_base: Path, tiny_pi0: Path, tmp_path: Path, capsys, monkeypatch
):
    import lora_land.rlhf.loop as loop

    monkeypatch.setattr(loop, "best_on_dev", lambda curve: 1)  # as if pi_1 won on dev
    out = tmp_path / "glue_sst2@dpo"
    argv = [
        *_one_iteration(tiny_base, tiny_pi0, tmp_path, "--eval-on", "choose", "--eval-limit", "2"),
        "--no-record",
    ]
    assert main(argv) == 0 and f"installed {out}" in capsys.readouterr().out
    summary_path = out / "rlhf_summary.json"
    summary = json.loads(summary_path.read_text())
    ours = summary["chosen_on_dev"]["curve"][1]["score"]

    # a served variant that scored higher on the same dev rows (same pi_0 figure) stays
    summary["chosen_on_dev"]["curve"][1]["score"] = ours + 0.25
    summary_path.write_text(json.dumps(summary))
    shutil.rmtree(tmp_path / "run" / "eval")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"{ours + 0.25:.4f} on the same 2 dev rows, this run's pi_1 {ours:.4f}" in printed
    assert "the served glue_sst2@dpo stays" in printed and f"installed {out}" not in printed
    assert json.loads(summary_path.read_text()) == summary  # untouched
    assert not (tmp_path / "run" / "eval").exists()  # the evaluation rows were not measured

    # --replace installs regardless
    assert main([*argv, "--replace"]) == 0
    assert f"installed {out}" in capsys.readouterr().out
    assert json.loads(summary_path.read_text())["chosen_on_dev"]["curve"][1]["score"] == ours


def test_a_new_run_replaces_the_served_variant_only_on_the_same_footing():
    from lora_land.rlhf.loop import against_served

    def choice(pi0: float, best: float, n: int = 100) -> dict:
        curve = [{"iteration": 0, "score": pi0}, {"iteration": 1, "score": best}]
        return {"chosen": 1, "n": n, "curve": curve}

    assert against_served(None, choice(0.5, 0.6)) == (True, "no variant is served yet")
    replaces, why = against_served({"curve": []}, choice(0.5, 0.6))
    assert replaces and "not chosen on the dev split" in why
    served = {"chosen_on_dev": choice(0.5, 0.55)}
    assert against_served(served, choice(0.5, 0.56))[0] is True
    assert against_served(served, choice(0.5, 0.55))[0] is False  # a tie keeps the served one
    replaces, why = against_served(served, choice(0.5, 0.54))
    assert not replaces and "scored 0.5500 on the same 100 dev rows, this run's pi_1 0.5400" in why
    # other dev rows or another pi_0: no comparison, the new run replaces it and says why
    for other in (choice(0.49, 0.50), choice(0.5, 0.50, n=50)):
        replaces, why = against_served(served, other)
        assert replaces and "other dev rows or another pi_0" in why


def test_the_best_dev_iteration_is_the_earliest_of_the_highest():
    from lora_land.rlhf.loop import best_on_dev

    def curve(*scores):
        return [{"iteration": t, "eval": {"score": {"mean": s}}} for t, s in enumerate(scores)]

    assert best_on_dev(curve(0.78, 0.84, 0.83, 0.79)) == 1
    assert best_on_dev(curve(0.5, 0.6, 0.6)) == 1
    assert best_on_dev(curve(0.8, 0.8, 0.7)) == 0  # none beat pi_0
