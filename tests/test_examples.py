"""ExampleLibrary: project-written examples, local eval rows, cached Hub rows."""

from __future__ import annotations

import json

import pytest

from lora_land.catalog import load_catalog
from lora_land.examples import ExampleLibrary, hub_dataset
from tests.conftest import read_jsonl


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_every_task_has_written_examples_that_fill_its_template(catalog):
    library = ExampleLibrary()
    for task in catalog.tasks.values():
        examples = library.for_task(task)
        assert len(examples) >= 2, task.name
        for example in examples:
            assert list(example.values) == list(task.fields)
            prompt = task.render(example.values)  # no field left empty
            assert all(value in prompt for value in example.values.values())


def test_local_eval_rows_follow_the_written_ones_with_their_targets(catalog, samples_dir):
    task = catalog.tasks["glue_mnli"]
    rows = read_jsonl(samples_dir / "glue_mnli.jsonl")
    examples = ExampleLibrary(samples_dir=samples_dir, per_source=3).for_task(task)
    real = [e for e in examples if e.label.startswith("Eval row")]
    assert [e.values["premise"] for e in real] == [r["premise"] for r in rows[:3]]
    assert [e.target for e in real] == [r["target"] for r in rows[:3]]


def test_hub_links_name_the_repo_and_config():
    assert hub_dataset("https://huggingface.co/datasets/glue/viewer/sst2") == ("glue", "sst2")
    assert hub_dataset("https://huggingface.co/datasets/cais/mmlu/viewer/all") == (
        "cais/mmlu",
        "all",
    )
    assert hub_dataset("https://huggingface.co/datasets/gsm8k (main)") == ("gsm8k", "main")
    assert hub_dataset("https://huggingface.co/datasets/google/boolq") == ("google/boolq", None)
    assert hub_dataset("kaggle://bahushruth/legalclausedataset") is None


def test_cached_hub_rows_are_used_without_the_network(catalog, samples_dir, tmp_path):
    task = catalog.tasks["boolq"]
    rows = read_jsonl(samples_dir / "boolq.jsonl")[:2]
    hub_rows = [
        {"passage": r["passage"], "question": r["question"], "answer": r["target"]} for r in rows
    ]
    (tmp_path / "boolq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hub_rows))
    examples = ExampleLibrary(hub_cache_dir=tmp_path).for_task(task)
    hub = [e for e in examples if e.label.startswith("Hub row")]
    assert [e.target for e in hub] == [r["target"] for r in rows]
    assert "google/boolq validation split" in hub[0].source


def test_unreachable_hub_gives_written_examples_only(catalog, tmp_path):
    library = ExampleLibrary(hub_cache_dir=tmp_path)
    library._hub_down = True  # as after a failed connection
    examples = library.for_task(catalog.tasks["glue_sst2"])
    assert examples and all(not e.label.startswith("Hub row") for e in examples)
    assert not list(tmp_path.iterdir())
