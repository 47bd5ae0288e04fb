"""Which precision `LORA_LAND_DTYPE=auto` serves in, from evidence measured on this machine.

On CUDA, auto is bfloat16. On a CPU, the candidates are only considered when the CPU computes
bf16 natively (AVX512-BF16 / AMX, what oneDNN reports): `bfloat16` (the whole model) and
`bf16-weights` (a float32 model whose linears read bf16 weights, see `cpu_linear`). A
candidate is chosen only when a recorded check (`python -m bench.dtype`, which greedy-decodes
the zoo's evaluation prompts with their adapters in float32 and in each candidate) found it
faster AND its outputs agreeing with float32 on at least `MIN_AGREEMENT` of the prompts; of
the accepted ones, the fastest. Without records auto stays float32 (and says how to
measure). Records live in `<cache>/dtype/`, keyed by the model's source, torch's version, the
CPU's bf16 support, the candidate and `RECORD_VERSION` (raised when the serving code changes
what a candidate costs, so an old verdict is measured again).

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
MIN_SPEEDUP = 1.1  # a candidate must decode at least this much faster
CANDIDATES = ("bfloat16", "bf16-weights")
# 2: float32 gained oneDNN linears and bf16-weights arrived; a version-1 record (bfloat16
# against the stock float32 path) no longer says which is faster
# 3: float32 serves through whichever of oneDNN and BLAS is faster here (1.5x at batch 1 on
# a Xeon), and decode steps skip transformers' per-layer machinery: float32 got faster
# 4: float32 decode steps are compiled (engine/compiled.py, 1.09-1.11x at batch 1 here)
RECORD_VERSION = 4


@dataclass(frozen=True)
class DtypeRecord:
    """What a check measured for one model on one machine."""

    source: str
    candidate: str  # one of CANDIDATES
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


def record_path(cache_dir: Path, source: str, candidate: str = "bfloat16") -> Path:
    key = (
        f"{Path(source).name}|{source}|{torch.__version__}|{cpu_supports_bf16()}|{candidate}"
        f"|v{RECORD_VERSION}"
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / "dtype" / f"{Path(source).name}-{candidate}-{digest}.json"


def save_record(cache_dir: Path, record: DtypeRecord) -> Path:
    path = record_path(cache_dir, record.source, record.candidate)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(record), indent=2) + "\n")
    return path


def load_record(cache_dir: Path, source: str, candidate: str = "bfloat16") -> DtypeRecord | None:
    path = record_path(cache_dir, source, candidate)
    if not path.is_file():
        return None
    try:
        return DtypeRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        log.warning("ignoring unreadable dtype record %s: %s", path, e)
        return None


def auto_precision(device: torch.device, cache_dir: Path, source: str) -> str:
    """The precision `auto` means for this model on this device (see the module docstring)."""
    if device.type == "cuda":
        return "bfloat16"
    if not cpu_supports_bf16():
        return "float32"
    records = [r for c in CANDIDATES if (r := load_record(cache_dir, source, c)) is not None]
    if not records:
        log.info(
            "dtype auto: float32 (this CPU has bf16; run `python -m bench.dtype` to measure "
            "whether %s agree with float32 on the zoo's prompts and are faster)",
            " and ".join(CANDIDATES),
        )
        return "float32"
    accepted = [r for r in records if r.accepted]
    choice = max(accepted, key=lambda r: r.speedup).candidate if accepted else "float32"
    log.info(
        "dtype auto: %s (%s)",
        choice,
        "; ".join(
            f"{r.candidate}: agreement {r.agreement:.2f} over {r.prompts} prompts, "
            f"speed x{r.speedup:.2f}"
            for r in records
        ),
    )
    return choice
