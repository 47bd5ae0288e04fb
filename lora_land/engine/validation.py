"""Reading and validating one PEFT LoRA adapter directory against the loaded base.

`read_adapter(directory, adapter_id, base_shapes, ...)` returns a `HostAdapter` (CPU tensors
plus per-module scalings) or raises `AdapterValidationError` naming the adapter and the
problem: unreadable config, not a LoRA, a LoRA feature this engine does not serve (DoRA,
modules_to_save, biases...), rank above the configured maximum, pickle weights without the
operator's opt-in, target modules missing from the base, or tensor shapes that do not match.

It reads files; it does not download, cache or place anything on a device.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from lora_land.errors import AdapterValidationError

CONFIG_FILE = "adapter_config.json"
SAFETENSORS_FILE = "adapter_model.safetensors"
PICKLE_FILE = "adapter_model.bin"
_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<which>[AB])(?:\.[^.]+)?\.weight$"
)
# config fields whose non-default value means the adapter is more than plain LoRA
_UNSUPPORTED = {
    "use_dora": "DoRA (use_dora)",
    "modules_to_save": "modules_to_save (fully trained extra modules)",
    "fan_in_fan_out": "fan_in_fan_out (Conv1D bases)",
    "layer_replication": "layer_replication",
    "lora_bias": "lora_bias",
    "target_parameters": "target_parameters",
    "trainable_token_indices": "trainable_token_indices",
    "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens)",
}


@dataclass
class HostAdapter:
    """A validated adapter in host memory: A [r, in] and B [out, r] per module name."""

    id: str
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    scalings: dict[str, float]
    rank: int
    nbytes: int
    directory: Path


def _fail(adapter_id: str, problem: str) -> AdapterValidationError:
    return AdapterValidationError(f"adapter {adapter_id!r} cannot be served: {problem}")


def read_config(directory: Path, adapter_id: str) -> dict:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise _fail(adapter_id, f"{CONFIG_FILE} not found in {directory.name}/")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(adapter_id, f"{CONFIG_FILE} is not readable JSON ({e})") from e
    if not isinstance(config, dict):
        raise _fail(adapter_id, f"{CONFIG_FILE} must hold a JSON object")
    return config


def check_config(config: dict, adapter_id: str, max_rank: int) -> None:
    """PEFT LoRA for a causal LM, plain features only, rank within the limit."""
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise _fail(adapter_id, f"peft_type is {config.get('peft_type')!r}, expected 'LORA'")
    task_type = config.get("task_type")
    if task_type not in (None, "CAUSAL_LM"):
        raise _fail(adapter_id, f"task_type is {task_type!r}, expected 'CAUSAL_LM'")
    for key, label in _UNSUPPORTED.items():
        if config.get(key):
            raise _fail(adapter_id, f"uses {label}, which this engine does not serve")
    if config.get("bias", "none") != "none":
        raise _fail(adapter_id, f"bias={config['bias']!r} is not supported (only 'none')")
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise _fail(adapter_id, f"rank r={rank!r} must be a positive integer")
    ranks = [rank, *(config.get("rank_pattern") or {}).values()]
    if max(ranks) > max_rank:
        raise _fail(adapter_id, f"rank {max(ranks)} exceeds the maximum LoRA rank {max_rank}")


def _load_weights(directory: Path, adapter_id: str, allow_pickle: bool) -> dict:
    safetensors_path = directory / SAFETENSORS_FILE
    if safetensors_path.is_file():
        try:
            return load_file(str(safetensors_path), device="cpu")
        except Exception as e:  # safetensors raises several types for corrupt files
            raise _fail(adapter_id, f"{SAFETENSORS_FILE} is unreadable ({e})") from e
    pickle_path = directory / PICKLE_FILE
    if pickle_path.is_file():
        if not allow_pickle:
            raise _fail(
                adapter_id,
                f"weights are pickle ({PICKLE_FILE}); only safetensors are served unless the "
                "operator sets LORA_LAND_ALLOW_PICKLE_ADAPTERS=1",
            )
        return torch.load(pickle_path, map_location="cpu", weights_only=True)
    raise _fail(adapter_id, f"no {SAFETENSORS_FILE} in {directory.name}/")


def _pattern_value(pattern: dict, module: str, default: float) -> float:
    for key, value in (pattern or {}).items():
        if re.search(rf"(^|\.){key}$", module):
            return value
    return default


def _pair_tensors(weights: dict, adapter_id: str) -> dict[str, dict[str, torch.Tensor]]:
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in weights.items():
        match = _KEY.match(key)
        if match is None:
            raise _fail(adapter_id, f"unexpected tensor {key!r} (only lora_A/lora_B weights)")
        pairs.setdefault(match["module"], {})[match["which"]] = tensor
    if not pairs:
        raise _fail(adapter_id, "the weights file holds no LoRA tensors")
    for module, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise _fail(adapter_id, f"module {module!r} lacks lora_A or lora_B")
    return pairs


def read_adapter(
    directory: Path,
    adapter_id: str,
    base_shapes: dict[str, tuple[int, int]],
    max_rank: int,
    allow_pickle: bool = False,
) -> HostAdapter:
    """Validate `directory` against a base with `base_shapes` (module -> (in, out))."""
    directory = Path(directory)
    config = read_config(directory, adapter_id)
    check_config(config, adapter_id, max_rank)
    pairs = _pair_tensors(_load_weights(directory, adapter_id, allow_pickle), adapter_id)
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    scalings: dict[str, float] = {}
    nbytes = 0
    for module, pair in pairs.items():
        if module not in base_shapes:
            raise _fail(adapter_id, f"target module {module!r} is not a linear layer of the base")
        a, b = pair["A"], pair["B"]
        in_f, out_f = base_shapes[module]
        r = a.shape[0]
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != in_f or b.shape != (out_f, r):
            raise _fail(
                adapter_id,
                f"shapes of {module!r} do not match the base: lora_A {tuple(a.shape)}, "
                f"lora_B {tuple(b.shape)}, base layer in={in_f} out={out_f}",
            )
        if r > max_rank:
            raise _fail(adapter_id, f"rank {r} of {module!r} exceeds the maximum {max_rank}")
        alpha = _pattern_value(config.get("alpha_pattern"), module, config.get("lora_alpha", r))
        scalings[module] = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        tensors[module] = (a, b)
        nbytes += a.numel() * a.element_size() + b.numel() * b.element_size()
    rank = max(a.shape[0] for a, _ in tensors.values())
    return HostAdapter(adapter_id, tensors, scalings, rank, nbytes, directory)
