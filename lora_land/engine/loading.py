"""Loading the one base model a deployment serves: embedded, a Hub id or a local directory.

Chooses the device (CUDA when present unless settings say otherwise), the dtype (`auto`: bf16
on CUDA; on a CPU bf16 only where it is native and measured to agree with fp32 and be
faster, see `dtype_choice`) and optional bitsandbytes 4-bit / 8-bit quantization on CUDA
(bf16 compute, as the LoRA Land report trained). Always safetensors, never
`trust_remote_code`. The context length comes from the model config.

This module loads weights and a tokenizer; it knows nothing about adapters or generation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from lora_land.config import Settings
from lora_land.deployment import BaseSource
from lora_land.engine import cpu_linear
from lora_land.engine.packed import pack_siblings
from lora_land.errors import ConfigError

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BF16_WEIGHTS = "bf16-weights"  # float32 model, linears read bf16 weights (CPU, cpu_linear.py)
PRECISIONS = _DTYPES | {BF16_WEIGHTS: torch.float32}
DEFAULT_CONTEXT = 2048  # when a config names no max_position_embeddings


@dataclass
class LoadedBase:
    model: torch.nn.Module
    tokenizer: object  # a transformers PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype  # the dtype activations (and adapter weights) use
    context_length: int
    source: str  # where it came from (a directory or a Hub id)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("LORA_LAND_DEVICE=cuda but no CUDA device is available")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def pick_precision(
    name: str, device: torch.device, cache_dir: Path | None = None, source: str | None = None
) -> str:
    """The serving precision: a dtype name, or `bf16-weights` (a float32 model whose linears
    read bf16 weights, CPU only, see `cpu_linear`); `auto` consults the measured records for
    `source` when given."""
    if name == "auto":
        if cache_dir is not None and source is not None:
            from lora_land.engine.dtype_choice import auto_precision

            return auto_precision(device, cache_dir, source)
        return "bfloat16" if device.type == "cuda" else "float32"
    if name not in PRECISIONS:
        raise ConfigError(f"dtype must be auto or one of {sorted(PRECISIONS)}, got {name!r}")
    if name == BF16_WEIGHTS and device.type != "cpu":
        raise ConfigError(f"dtype {BF16_WEIGHTS!r} is for CPUs; on {device} use bfloat16")
    return name


def pick_dtype(
    name: str, device: torch.device, cache_dir: Path | None = None, source: str | None = None
) -> torch.dtype:
    """The torch dtype of the model's parameters for `pick_precision`'s choice."""
    return PRECISIONS[pick_precision(name, device, cache_dir, source)]


def resolve_source(base: BaseSource, settings: Settings) -> str:
    """A local directory for the embedded model; otherwise the directory or Hub id as given."""
    if base.is_embedded:
        from lora_land.engine.prepare import prepare_embedded_model

        return str(prepare_embedded_model(settings.models_dir))
    path = Path(base.source).expanduser()
    return str(path) if path.is_dir() else base.source


def _quantization_config(kind: str | None, device: torch.device) -> object | None:
    if kind is None:
        return None
    if device.type != "cuda":
        raise ConfigError(f"quantization {kind!r} needs a CUDA device (device is {device})")
    if kind not in ("4bit", "8bit"):
        raise ConfigError(f"quantization must be 4bit or 8bit, got {kind!r}")
    from transformers import BitsAndBytesConfig

    if kind == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def context_length_of(config: object) -> int:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_CONTEXT


def load_base(base: BaseSource, settings: Settings) -> LoadedBase:
    """Load the deployment's base model and tokenizer for inference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(settings.device)
    quant = _quantization_config(settings.quantization, device)
    source = resolve_source(base, settings)
    precision = pick_precision(settings.dtype, device, settings.cache_dir, source)
    dtype = PRECISIONS[precision]
    log.info(
        "loading base %s from %s on %s (%s, quantization=%s)",
        base.name,
        source,
        device,
        precision,
        settings.quantization,
    )
    kwargs: dict = {"dtype": dtype, "use_safetensors": True, "trust_remote_code": False}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device.index or 0})
        dtype = torch.bfloat16 if settings.quantization == "4bit" else dtype
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if quant is None:
        model.to(device)
        onednn = cpu_linear.wanted(settings.cpu_linear, device, dtype)  # validates the setting
        if precision == BF16_WEIGHTS and onednn:
            done = cpu_linear.use_onednn_bf16_linears(model)
            log.info("%d linear layers through oneDNN with bf16 weights", done)
            onednn = not done  # else plain float32 oneDNN linears
        if onednn and cpu_linear.use_onednn_linears(model) and settings.cpu_linear == "auto":
            cpu_linear.keep_faster_float32(model)  # or back to BLAS, if faster here
        if device.type == "cpu":
            log.info("CPU linears: %s", cpu_linear.linear_kind(model))
        pack_siblings(model)  # q/k/v and gate/up as one matrix each (oneDNN linears)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    return LoadedBase(model, tokenizer, device, dtype, context_length_of(model.config), source)
