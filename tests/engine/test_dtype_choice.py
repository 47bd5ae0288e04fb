"""`LORA_LAND_DTYPE=auto`: bf16 on a CPU only with native support and a recorded check that
found it agreeing with float32 and faster; float32 otherwise."""

from __future__ import annotations

import pytest
import torch

from lora_land.engine import dtype_choice
from lora_land.engine.dtype_choice import DtypeRecord, auto_precision, load_record, save_record
from lora_land.engine.loading import pick_dtype
from lora_land.errors import ConfigError

CPU = torch.device("cpu")


def _record(source: str, agreement: float, speedup: float) -> DtypeRecord:
    return DtypeRecord(
        source=source,
        candidate="bfloat16",
        agreement=agreement,
        prompts=96,
        speedup=speedup,
        torch_version=torch.__version__,
        cpu_bf16=True,
    )


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setattr(dtype_choice, "cpu_supports_bf16", lambda: True)


def test_without_a_record_auto_stays_float32(tmp_path, bf16_cpu):
    assert auto_precision(CPU, tmp_path, "/models/m") == "float32"


def test_a_record_of_agreement_and_speed_makes_auto_bf16(tmp_path, bf16_cpu):
    save_record(tmp_path, _record("/models/m", agreement=0.97, speedup=1.8))
    assert auto_precision(CPU, tmp_path, "/models/m") == "bfloat16"
    assert auto_precision(CPU, tmp_path, "/models/other") == "float32"  # per model


@pytest.mark.parametrize(("agreement", "speedup"), [(0.5, 2.0), (0.99, 1.0)])
def test_disagreement_or_no_speedup_keeps_float32(tmp_path, bf16_cpu, agreement, speedup):
    save_record(tmp_path, _record("/models/m", agreement, speedup))
    assert auto_precision(CPU, tmp_path, "/models/m") == "float32"


def test_a_cpu_without_native_bf16_never_picks_it(tmp_path, monkeypatch):
    monkeypatch.setattr(dtype_choice, "cpu_supports_bf16", lambda: True)
    save_record(tmp_path, _record("/models/m", agreement=1.0, speedup=3.0))
    monkeypatch.setattr(dtype_choice, "cpu_supports_bf16", lambda: False)
    assert auto_precision(CPU, tmp_path, "/models/m") == "float32"


def test_records_round_trip_and_a_corrupt_one_is_ignored(tmp_path, bf16_cpu):
    path = save_record(tmp_path, _record("/models/m", 0.95, 1.5))
    assert load_record(tmp_path, "/models/m") == _record("/models/m", 0.95, 1.5)
    path.write_text("{not json")
    assert load_record(tmp_path, "/models/m") is None


def test_explicit_dtypes_are_taken_as_given_and_bad_names_are_refused(tmp_path):
    assert pick_dtype("bfloat16", CPU, tmp_path, "/models/m") == torch.bfloat16
    with pytest.raises(ConfigError, match="float64"):
        pick_dtype("float64", CPU)


def test_auto_picks_the_fastest_accepted_candidate(tmp_path, bf16_cpu):
    from dataclasses import replace

    slow = _record("/models/m", agreement=0.95, speedup=1.3)
    save_record(tmp_path, slow)
    save_record(tmp_path, replace(slow, candidate="bf16-weights", agreement=0.99, speedup=1.6))
    assert auto_precision(CPU, tmp_path, "/models/m") == "bf16-weights"
    assert pick_dtype("auto", CPU, tmp_path, "/models/m") == torch.float32  # its parameters
    save_record(tmp_path, replace(slow, candidate="bf16-weights", agreement=0.5, speedup=2.0))
    assert auto_precision(CPU, tmp_path, "/models/m") == "bfloat16"  # the other one holds


def test_a_record_made_before_the_serving_code_changed_is_not_read(tmp_path, bf16_cpu, monkeypatch):
    save_record(tmp_path, _record("/models/m", agreement=0.97, speedup=1.8))
    monkeypatch.setattr(dtype_choice, "RECORD_VERSION", dtype_choice.RECORD_VERSION + 1)
    assert auto_precision(CPU, tmp_path, "/models/m") == "float32"


def test_bf16_weights_is_a_cpu_precision():
    from lora_land.engine.loading import pick_precision

    assert pick_precision("bf16-weights", CPU) == "bf16-weights"
    with pytest.raises(ConfigError, match="bf16-weights"):
        pick_precision("bf16-weights", torch.device("cuda"))
