"""Which dtype `LORA_LAND_DTYPE=auto` serves in, from evidence measured on this machine.

On CUDA, auto is bfloat16. On a CPU, bfloat16 is only a candidate when the CPU computes it
natively (AVX512-BF16 / AMX, what oneDNN reports); it is then chosen only when a recorded
check (`python -m bench.dtype`, which greedy-decodes the zoo's evaluation prompts with their
adapters in float32 and bfloat16) found it faster AND its outputs agreeing with float32 on at
least `MIN_AGREEMENT` of the prompts. Without such a record auto stays float32 (and says how
to measure). Records live in `<cache>/dtype/`, keyed by the model's source, torch's version
and the CPU's bf16 support, so a different machine or model measures again.

This module decides; it does not load models or run the check (bench/dtype.py does).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

MIN_AGREEMENT = 0.9  # fraction of prompts whose greedy text must equal float32's
MIN_SPEEDUP = 1.1  # bf16 must decode at least this much faster


@dataclass(frozen=True)
class DtypeRecord:
    """What a check measured for one model on one machine."""

    source: str
    candidate: str  # "bfloat16"
    agreement: float  # fraction of prompts with the same greedy text as float32
    prompts: int
    speedup: float  # candidate tokens/s over float32 tokens/s
    torch_version: str
    cpu_bf16: bool

    @property
    def accepted(self) -> bool:
        return self.agreement >= MIN_AGREEMENT and self.speedup >= MIN_SPEEDUP


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN's own test)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def record_path(cache_dir: Path, source: str) -> Path:
    key = f"{Path(source).name}|{source}|{torch.__version__}|{cpu_supports_bf16()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / "dtype" / f"{Path(source).name}-{digest}.json"


def save_record(cache_dir: Path, record: DtypeRecord) -> Path:
    path = record_path(cache_dir, record.source)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(record), indent=2) + "\n")
    return path


def load_record(cache_dir: Path, source: str) -> DtypeRecord | None:
    path = record_path(cache_dir, source)
    if not path.is_file():
        return None
    try:
        return DtypeRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        log.warning("ignoring unreadable dtype record %s: %s", path, e)
        return None


def auto_dtype(device: torch.device, cache_dir: Path, source: str) -> torch.dtype:
    """The dtype `auto` means for this model on this device (see the module docstring)."""
    if device.type == "cuda":
        return torch.bfloat16
    if not cpu_supports_bf16():
        return torch.float32
    record = load_record(cache_dir, source)
    if record is None:
        log.info(
            "dtype auto: float32 (this CPU has bf16; run `python -m bench.dtype` to measure "
            "whether bfloat16 agrees with float32 on the zoo's prompts and is faster)"
        )
        return torch.float32
    choice = torch.bfloat16 if record.accepted else torch.float32
    log.info(
        "dtype auto: %s (bfloat16 agreement %.2f over %d prompts, speed x%.2f)",
        str(choice).replace("torch.", ""),
        record.agreement,
        record.prompts,
        record.speedup,
    )
    return choice
