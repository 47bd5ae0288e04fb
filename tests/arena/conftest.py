"""Services for arena tests: FakeEngine, the real catalog, a small deployment with a variant."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lora_land.catalog import load_catalog
from lora_land.config import Settings
from lora_land.deployment import AdapterSource, BaseSource, Deployment
from lora_land.reference import ReferenceCache, ReferenceClient
from lora_land.services import Services
from tests.fakes import FakeEngine

BASE = "smollm2-135m-instruct"
SST2 = f"{BASE}/glue_sst2"
SST2_DPO = f"{BASE}/glue_sst2@dpo"  # a variant (contract 2): task glue_sst2
COLA = f"{BASE}/glue_cola"


def make_services(tmp_path: Path, reference_url: str | None = None, **settings_kw) -> Services:
    settings = replace(Settings(), cache_dir=tmp_path, max_new_tokens_limit=64, **settings_kw)
    adapters = {
        SST2: AdapterSource(id=SST2, task="glue_sst2", path=tmp_path / "glue_sst2"),
        SST2_DPO: AdapterSource(id=SST2_DPO, task="glue_sst2", path=tmp_path / "glue_sst2@dpo"),
        COLA: AdapterSource(id=COLA, task="glue_cola", path=tmp_path / "glue_cola"),
    }
    deployment = Deployment(
        name="test",
        base=BaseSource(BASE, "embedded", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2"),
        adapters=adapters,
    )
    engine = FakeEngine(
        base_name=BASE,
        adapters=list(adapters),
        replies={SST2: "1", SST2_DPO: "1 (positive)", COLA: "0", None: "The sentence is positive"},
    )
    reference = ReferenceClient(
        base_url=reference_url,
        api_key="sk-test" if reference_url else None,
        timeout_s=2,
        cache=ReferenceCache(tmp_path / "ref.sqlite"),
    )
    return Services(settings, load_catalog(), deployment, engine, reference)


@pytest.fixture
def services(tmp_path: Path) -> Services:
    return make_services(tmp_path)
