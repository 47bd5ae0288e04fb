"""The multi-LoRA engine: the only package that imports torch.

`lora_land.engine.types` (requests, results, the `TextEngine` protocol) imports no torch;
`Engine` is loaded lazily (`from lora_land.engine import Engine` imports torch only then).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from lora_land.engine.engine import Engine

        return Engine
    raise AttributeError(f"module 'lora_land.engine' has no attribute {name!r}")
