"""Deployments map public adapter ids to files; users can never name a path."""

from __future__ import annotations

import json

import pytest

from lora_land.config import Settings
from lora_land.deployment import load_deployment, split_variant
from lora_land.errors import ConfigError, UnknownAdapterError


def _adapter_dir(root, task):
    d = root / task
    d.mkdir(parents=True)
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    return d


def test_embedded_preset_scans_adapter_dirs_and_pins(tmp_path):
    _adapter_dir(tmp_path, "glue_sst2")
    _adapter_dir(tmp_path, "glue_cola")
    (tmp_path / "not_an_adapter").mkdir()
    dep = load_deployment(Settings(adapters_dir_override=tmp_path))
    assert dep.base.name == "smollm2-135m-instruct" and dep.base.is_embedded
    assert sorted(dep.adapters) == [
        "smollm2-135m-instruct/glue_cola",
        "smollm2-135m-instruct/glue_sst2",
    ]
    assert dep.resolve("smollm2-135m-instruct/glue_sst2").pinned  # preset pins glue_sst2
    assert not dep.resolve("smollm2-135m-instruct/glue_cola").pinned
    assert dep.served_tasks == ["glue_cola", "glue_sst2"]


def test_paths_and_unknown_ids_are_refused_by_default(tmp_path):
    _adapter_dir(tmp_path, "glue_sst2")
    dep = load_deployment(Settings(adapters_dir_override=tmp_path))
    with pytest.raises(UnknownAdapterError, match=r"not served.*glue_sst2"):
        dep.resolve(str(tmp_path / "glue_sst2"))
    with pytest.raises(UnknownAdapterError, match="not served"):
        dep.resolve("someone/evil-adapter")


def test_operator_may_allow_paths_and_hub_repos(tmp_path):
    d = _adapter_dir(tmp_path, "custom")
    dep = load_deployment(
        Settings(adapters_dir_override=tmp_path / "none", allow_arbitrary_adapters=True)
    )
    assert dep.resolve(str(d)).path == d.resolve()
    assert dep.resolve("someone/adapter").repo == "someone/adapter"


def test_mistral_preset_serves_the_public_predibase_adapters():
    dep = load_deployment(Settings(deployment="mistral-7b"))
    assert dep.base.source == "mistralai/Mistral-7B-v0.1"
    assert len(dep.adapters) == 22
    assert dep.resolve("mistral-7b/glue_sst2").repo == "predibase/glue_sst2"


def test_missing_deployment_lists_presets():
    with pytest.raises(ConfigError, match=r"presets.*embedded"):
        load_deployment(Settings(deployment="nope"))


def test_base_override_replaces_source(tmp_path):
    dep = load_deployment(Settings(base_override=str(tmp_path)))
    assert dep.base.source == str(tmp_path)


def test_variant_dirs_are_served_beside_the_plain_adapter_with_the_plain_task(tmp_path):
    _adapter_dir(tmp_path, "glue_sst2")
    _adapter_dir(tmp_path, "glue_sst2@dpo")
    _adapter_dir(tmp_path, "conllpp@dpo")  # a variant may be served without its plain adapter
    dep = load_deployment(Settings(adapters_dir_override=tmp_path))
    dpo = dep.resolve("smollm2-135m-instruct/glue_sst2@dpo")
    assert (dpo.task, dpo.variant, dpo.path) == ("glue_sst2", "dpo", tmp_path / "glue_sst2@dpo")
    plain = dep.resolve("smollm2-135m-instruct/glue_sst2")
    assert (plain.task, plain.variant) == ("glue_sst2", None)
    assert plain.pinned and not dpo.pinned  # pins name plain adapters only
    assert dep.adapter_for_task("glue_sst2") == plain
    assert [a.id for a in dep.variants_for_task("glue_sst2")] == [
        "smollm2-135m-instruct/glue_sst2",
        "smollm2-135m-instruct/glue_sst2@dpo",
    ]
    assert dep.served_tasks == ["conllpp", "glue_sst2"]  # each task once


def test_badly_named_variant_dirs_are_skipped_not_served(tmp_path):
    _adapter_dir(tmp_path, "glue_sst2@DPO v2")
    _adapter_dir(tmp_path, "@dpo")
    _adapter_dir(tmp_path, "glue_sst2")
    dep = load_deployment(Settings(adapters_dir_override=tmp_path))
    assert sorted(dep.adapters) == ["smollm2-135m-instruct/glue_sst2"]


def test_split_variant_names_the_bad_part():
    assert split_variant("glue_sst2@dpo") == ("glue_sst2", "dpo")
    assert split_variant("glue_sst2") == ("glue_sst2", None)
    with pytest.raises(ConfigError, match=r"'glue_sst2@'.*lowercase name of 1-32"):
        split_variant("glue_sst2@")
