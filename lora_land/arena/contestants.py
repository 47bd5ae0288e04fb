"""Contestants: who can answer a task's prompt in Compare and in the Arena.

For one task the pool holds every served adapter of that task (the SFT adapter `<base>/<task>`
and its variants `<base>/<task>@<variant>`, found by `AdapterSource.task`, never by parsing
ids), the bare base model, and the GPT-4 reference when one is configured or recorded answers
were loaded. A contestant's `id` is its key in ratings and in stored votes; users only ever
pick ids from the pool, never paths.

This module describes contestants; it runs nothing (see `run.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lora_land.errors import UserError

if TYPE_CHECKING:
    from lora_land.services import Services

Kind = Literal["adapter", "base", "reference"]
REFERENCE_PREFIX = "reference:"


@dataclass(frozen=True)
class Contestant:
    id: str  # adapter id, the base's name, or "reference:<model>"
    kind: Kind
    label: str  # shown once names are revealed
    base: str | None = None  # the served base model (None for the reference)
    adapter_id: str | None = None  # the adapter run on the base (None: bare base, reference)
    variant: str | None = None  # e.g. "dpo" for `<base>/<task>@dpo`; None for the SFT adapter

    def spec(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Everything needed to reproduce this contestant's answer (stored with each vote)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "base": self.base,
            "adapter": self.adapter_id,
            "variant": self.variant,
            "params": dict(params),
        }


def reference_in_pool(services: Services) -> bool:
    """GPT-4 joins when an endpoint is configured or recorded answers were loaded."""
    ref = services.reference
    if ref is None:
        return False
    return bool(getattr(ref, "configured", False) or services.settings.reference_recordings)


def pool(services: Services, task: str) -> list[Contestant]:
    """Every contestant that can answer `task` here: adapters (and variants), base, GPT-4."""
    dep = services.deployment
    base_label = dep.base.display_name or dep.base.name
    served = set(services.engine.served_adapters())
    found: list[Contestant] = []
    for source in sorted(dep.adapters.values(), key=lambda s: s.id):
        if source.task != task or source.id not in served:
            continue
        variant = source.id.partition("@")[2] or None
        kind_text = f"{variant} variant" if variant else "adapter"
        found.append(
            Contestant(
                source.id,
                "adapter",
                f"{base_label} + {task} {kind_text}",
                base=dep.base.name,
                adapter_id=source.id,
                variant=variant,
            )
        )
    found.append(
        Contestant(dep.base.name, "base", f"{base_label} (base, no adapter)", dep.base.name)
    )
    if reference_in_pool(services):
        model = services.reference.model
        found.append(Contestant(f"{REFERENCE_PREFIX}{model}", "reference", f"{model} (reference)"))
    return found


def find(services: Services, task: str, ids: list[str]) -> list[Contestant]:
    """The contestants with these ids for `task`; a `UserError` names any id not in the pool."""
    by_id = {c.id: c for c in pool(services, task)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise UserError(
            f"not a contestant for {task}: {', '.join(missing)}; choose from {', '.join(by_id)}"
        )
    return [by_id[i] for i in ids]
