"""`LORA_LAND_DTYPE=auto`: bf16 on a CPU only with native support and a recorded check that
found it agreeing with float32 and faster; float32 otherwise."""

from __future__ import annotations

import pytest
import torch

from lora_land.engine import dtype_choice
from lora_land.engine.dtype_choice import DtypeRecord, auto_dtype, load_record, save_record
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
    assert auto_dtype(CPU, tmp_path, "/models/m") == torch.float32


def test_a_record_of_agreement_and_speed_makes_auto_bf16(tmp_path, bf16_cpu):
    save_record(tmp_path, _record("/models/m", agreement=0.97, speedup=1.8))
    assert auto_dtype(CPU, tmp_path, "/models/m") == torch.bfloat16
    assert auto_dtype(CPU, tmp_path, "/models/other") == torch.float32  # per model


@pytest.mark.parametrize(("agreement", "speedup"), [(0.5, 2.0), (0.99, 1.0)])
def test_disagreement_or_no_speedup_keeps_float32(tmp_path, bf16_cpu, agreement, speedup):
    save_record(tmp_path, _record("/models/m", agreement, speedup))
    assert auto_dtype(CPU, tmp_path, "/models/m") == torch.float32


def test_a_cpu_without_native_bf16_never_picks_it(tmp_path, monkeypatch):
    monkeypatch.setattr(dtype_choice, "cpu_supports_bf16", lambda: True)
    save_record(tmp_path, _record("/models/m", agreement=1.0, speedup=3.0))
    monkeypatch.setattr(dtype_choice, "cpu_supports_bf16", lambda: False)
    assert auto_dtype(CPU, tmp_path, "/models/m") == torch.float32


def test_records_round_trip_and_a_corrupt_one_is_ignored(tmp_path, bf16_cpu):
    path = save_record(tmp_path, _record("/models/m", 0.95, 1.5))
    assert load_record(tmp_path, "/models/m") == _record("/models/m", 0.95, 1.5)
    path.write_text("{not json")
    assert load_record(tmp_path, "/models/m") is None


def test_explicit_dtypes_are_taken_as_given_and_bad_names_are_refused(tmp_path):
    assert pick_dtype("bfloat16", CPU, tmp_path, "/models/m") == torch.bfloat16
    with pytest.raises(ConfigError, match="float64"):
        pick_dtype("float64", CPU)
