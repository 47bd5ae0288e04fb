"""Services: the collaborators the UI and the HTTP API are built from, wired in one place.

`build_services(settings)` loads the catalog, reads the deployment, starts the real engine on
the deployment's base model, puts the generation service in front of it and opens the GPT-4
reference client. Tests build a `Services`
by hand with small real pieces or fakes; nothing here is a global.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lora_land.catalog import Catalog, load_catalog
from lora_land.config import Settings
from lora_land.deployment import Deployment, load_deployment
from lora_land.generation import GenerationService

if TYPE_CHECKING:
    from lora_land.engine.types import TextEngine

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    deployment: Deployment
    engine: TextEngine
    reference: Any  # lora_land.reference.ReferenceClient (or a stand-in in tests)
    # every generation goes through it (checks, tokenizes once, runs rows together); built
    # from the fields above when not given
    generation: GenerationService = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.generation is None:
            self.generation = GenerationService(self.engine, self.settings, self.deployment)


def build_services(settings: Settings) -> Services:
    """The real thing: catalog, deployment, engine on a real model, reference client.

    With `settings.remote_url` the engine is a `RemoteEngine` handing generation to an
    existing LoRAX or vLLM server; otherwise our own engine loads the base model here.
    """
    from lora_land.reference import ReferenceClient

    catalog = load_catalog(settings.leaderboards_dir)
    deployment = load_deployment(settings)
    log.info(
        "deployment %s: base %s (%s), %d adapters",
        deployment.name,
        deployment.base.name,
        deployment.base.source,
        len(deployment.adapters),
    )
    engine: TextEngine
    if settings.remote_url:
        from lora_land.engine.remote import RemoteEngine

        engine = RemoteEngine(
            deployment,
            settings.remote_url,
            protocol=settings.remote_protocol,  # type: ignore[arg-type]
            api_key=settings.remote_api_key,
            settings=settings,
        )
    else:
        from lora_land.engine.engine import Engine  # torch is imported only here

        engine = Engine.from_settings(settings, deployment)
    reference = ReferenceClient.from_settings(settings)
    return Services(settings, catalog, deployment, engine, reference)
