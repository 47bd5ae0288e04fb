"""LoRA Land: settings -> services -> app, served on http://127.0.0.1:7860 by default.

On a Hugging Face Space (SPACE_ID is set) it binds 0.0.0.0 so the Space can reach it.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import uvicorn

from lora_land.config import Settings
from lora_land.server.app import create_app
from lora_land.services import build_services


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if os.environ.get("SPACE_ID") and "LORA_LAND_HOST" not in os.environ:
        settings = dataclasses.replace(settings, host="0.0.0.0")
    services = build_services(settings)
    app = create_app(services)
    print(f"LoRA Land is running on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
