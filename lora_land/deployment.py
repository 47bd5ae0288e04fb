"""Deployment: which base model and which adapters this server serves.

A deployment is a small JSON file (presets live in `deployments/`), chosen by
`Settings.deployment` and adjusted by environment overrides. It maps public adapter ids
(`<base>/<task>`, e.g. `smollm2-135m-instruct/glue_sst2`) to where their files are. A variant
of a task's adapter (e.g. the DPO-trained one) is served beside it as `<base>/<task>@<variant>`
(`smollm2-135m-instruct/glue_sst2@dpo`, files in `<adapters_dir>/<task>@<variant>/`); its
`AdapterSource.task` is the plain task, so code that needs the task never parses the id.
Users only ever pass those ids; `Deployment.resolve` turns an id into a source and refuses
anything else unless the operator allowed arbitrary adapters.

This module does not load anything: the engine does. It imports no torch.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lora_land.config import PROJECT_ROOT, Settings
from lora_land.errors import ConfigError, UnknownAdapterError

log = logging.getLogger(__name__)
DEPLOYMENTS_DIR = PROJECT_ROOT / "deployments"
_HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_VARIANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
VARIANT_SEP = "@"


def split_variant(name: str) -> tuple[str, str | None]:
    """`"glue_sst2@dpo"` -> `("glue_sst2", "dpo")`; `"glue_sst2"` -> `("glue_sst2", None)`.

    `ConfigError` when the part after `@` is not a short lowercase name."""
    task, sep, variant = name.partition(VARIANT_SEP)
    if not sep:
        return name, None
    if not task or not _VARIANT.match(variant):
        raise ConfigError(
            f"adapter name {name!r}: a variant is `<task>@<name>` with a lowercase name of "
            "1-32 letters, digits, '_' or '-'"
        )
    return task, variant


@dataclass(frozen=True)
class AdapterSource:
    """Where one servable adapter's files are: a local directory or a Hub repo."""

    id: str  # public id, "<base>/<task>"
    task: str | None  # catalog task name (None for operator-added adapters)
    path: Path | None = None  # local directory holding adapter_config.json
    repo: str | None = None  # Hub repo id
    revision: str | None = None  # Hub revision (branch, tag or commit)
    pinned: bool = False  # preload and never evict

    @property
    def variant(self) -> str | None:
        """The variant name (`"dpo"` for `<base>/<task>@dpo`), None for the plain adapter."""
        _, sep, variant = self.id.rsplit("/", 1)[-1].partition(VARIANT_SEP)
        return variant if sep else None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.repo is None):
            raise ConfigError(f"adapter {self.id!r} needs exactly one of 'path' or 'repo'")


@dataclass(frozen=True)
class BaseSource:
    """The one base model of this deployment."""

    name: str  # short name used in adapter ids, e.g. "mistral-7b"
    source: str  # "embedded", a Hub id or a local directory
    display_name: str = ""  # shown in the UI
    hub_id: str | None = None  # the model's Hub id, for people who want the weights

    @property
    def is_embedded(self) -> bool:
        return self.source == "embedded"


@dataclass(frozen=True)
class Deployment:
    name: str
    base: BaseSource
    adapters: Mapping[str, AdapterSource] = field(default_factory=dict)
    allow_arbitrary: bool = False  # operator opt-in: ids may be local paths or Hub repos

    def resolve(self, adapter_id: str) -> AdapterSource:
        """The source for `adapter_id`; `UnknownAdapterError` if it is not served."""
        if adapter_id in self.adapters:
            return self.adapters[adapter_id]
        if self.allow_arbitrary:
            path = Path(adapter_id).expanduser()
            if path.is_dir():
                return AdapterSource(id=adapter_id, task=None, path=path.resolve())
            if _HUB_REPO.match(adapter_id):
                return AdapterSource(id=adapter_id, task=None, repo=adapter_id)
        served = ", ".join(sorted(self.adapters)[:8]) or "none"
        more = f" (and {len(self.adapters) - 8} more)" if len(self.adapters) > 8 else ""
        raise UnknownAdapterError(
            f"adapter {adapter_id!r} is not served by deployment {self.name!r}; "
            f"served adapters: {served}{more}"
        )

    def adapter_for_task(self, task: str) -> AdapterSource | None:
        """The served adapter for a catalog task, if any."""
        return self.adapters.get(f"{self.base.name}/{task}")

    def variants_for_task(self, task: str) -> list[AdapterSource]:
        """The task's served adapters: the plain one first (if served), then its variants."""
        found = [a for a in self.adapters.values() if a.task == task]
        return sorted(found, key=lambda a: (a.variant is not None, a.variant or ""))

    @property
    def served_tasks(self) -> list[str]:
        return sorted({a.task for a in self.adapters.values() if a.task})


def _scan_adapters_dir(base_name: str, directory: Path, pinned: set[str]) -> dict:
    """Every sub-directory with an adapter_config.json is an adapter for the task it names;
    `<task>@<variant>/` is a variant of that task's adapter, served as `<base>/<task>@<variant>`."""
    found: dict[str, AdapterSource] = {}
    if not directory.is_dir():
        return found
    for sub in sorted(directory.iterdir()):
        if (sub / "adapter_config.json").is_file():
            try:
                task, _ = split_variant(sub.name)
            except ConfigError as e:
                log.warning("skipping %s: %s", sub, e)
                continue
            adapter_id = f"{base_name}/{sub.name}"
            found[adapter_id] = AdapterSource(
                id=adapter_id, task=task, path=sub, pinned=sub.name in pinned
            )
    return found


def _catalog_hub_adapters(base_name: str, settings: Settings, pinned: set[str]) -> dict:
    from lora_land.catalog import load_catalog  # local import: only presets that need it

    catalog = load_catalog(settings.leaderboards_dir)
    found: dict[str, AdapterSource] = {}
    for task in catalog.tasks.values():
        if task.hf_adapter_id:
            adapter_id = f"{base_name}/{task.name}"
            found[adapter_id] = AdapterSource(
                id=adapter_id,
                task=task.name,
                repo=task.hf_adapter_id,
                pinned=task.name in pinned,
            )
    return found


def _read_file(settings: Settings) -> tuple[Path, dict]:
    ref = settings.deployment
    path = Path(ref) if ref.endswith(".json") else DEPLOYMENTS_DIR / f"{ref}.json"
    if not path.is_file():
        presets = sorted(p.stem for p in DEPLOYMENTS_DIR.glob("*.json"))
        raise ConfigError(f"deployment {ref!r} not found (file {path}); presets: {presets}")
    try:
        return path, json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"deployment file {path} is not valid JSON: {e}") from e


def load_deployment(settings: Settings) -> Deployment:
    """Read the deployment file named by settings and apply environment overrides."""
    path, raw = _read_file(settings)
    try:
        base_raw = raw["base"]
        base = BaseSource(
            name=base_raw["name"],
            source=settings.base_override or base_raw["source"],
            display_name=base_raw.get("display_name", base_raw["name"]),
            hub_id=base_raw.get("hub_id"),
        )
    except (KeyError, TypeError) as e:
        raise ConfigError(f"deployment file {path}: 'base' needs 'name' and 'source'") from e
    pinned = set(raw.get("pinned_tasks", []))
    adapters: dict[str, AdapterSource] = {}
    if raw.get("adapters_dir") or settings.adapters_dir_override:
        directory = settings.adapters_dir_override or PROJECT_ROOT / raw["adapters_dir"]
        adapters.update(_scan_adapters_dir(base.name, directory, pinned))
    if raw.get("adapters_from_catalog"):
        adapters.update(_catalog_hub_adapters(base.name, settings, pinned))
    for entry in raw.get("adapters", []):
        task = entry.get("task")
        adapter_id = entry.get("id") or f"{base.name}/{task}"
        local = entry.get("path")
        adapters[adapter_id] = AdapterSource(
            id=adapter_id,
            task=task,
            path=(PROJECT_ROOT / local) if local else None,
            repo=entry.get("repo"),
            revision=entry.get("revision"),
            pinned=bool(entry.get("pinned")) or task in pinned,
        )
    return Deployment(
        name=raw.get("name", path.stem),
        base=base,
        adapters=adapters,
        allow_arbitrary=settings.allow_arbitrary_adapters,
    )
