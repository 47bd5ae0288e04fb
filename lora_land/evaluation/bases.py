"""Base model names for the offline tools: `smollm2-135m-instruct`, a local dir or a Hub id.

`resolve_base` turns what a person typed after `--base` into a loadable source plus the
names the leaderboard and model cards record. It prepares the embedded model when asked for
it; it loads nothing itself and imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lora_land.config import EMBEDDED_BASE, Settings
from lora_land.errors import UserError


@dataclass(frozen=True)
class ResolvedBase:
    name: str  # short name used in adapter ids and leaderboard rows
    source: str  # local directory or Hub id that transformers loads
    hub_id: str  # the Hub id recorded in model cards and leaderboard rows


def resolve_base(base: str, settings: Settings | None = None) -> ResolvedBase:
    """Resolve `--base`: the embedded model's name, a local model dir, or a Hub repo id."""
    if base in (EMBEDDED_BASE, "embedded"):
        from lora_land.engine.prepare import HUB_ID, prepare_embedded_model

        settings = settings or Settings.from_env()
        path = prepare_embedded_model(settings.models_dir)
        return ResolvedBase(EMBEDDED_BASE, str(path), HUB_ID)
    path = Path(base).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"--base {base!r} is a directory without config.json")
        return ResolvedBase(path.name.lower(), str(path.resolve()), _hub_id_of(path) or base)
    if base.count("/") == 1 and not base.startswith(("/", ".")):
        return ResolvedBase(base.split("/")[1].lower(), base, base)
    raise UserError(
        f"--base {base!r} is neither {EMBEDDED_BASE!r}, a local model directory, nor a Hub id"
    )


def _hub_id_of(path: Path) -> str | None:
    """The `_name_or_path` a saved config remembers, when it looks like a Hub id."""
    import json

    try:
        name = json.loads((path / "config.json").read_text()).get("_name_or_path") or ""
    except (OSError, ValueError):
        return None
    return name if name.count("/") == 1 and not name.startswith(("/", ".")) else None
