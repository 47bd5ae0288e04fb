"""The LoRA Land study as a typed, validated, read-only catalog (no torch, no Gradio).

`load_catalog()` reads `leaderboards/`: 31 tasks, 10 base models, the 310 adapters of
Table 12 and the scores measured by this project; see `catalog.py` for the queries.
"""

from lora_land.catalog.catalog import (
    LEADERBOARD_COLUMNS,
    PIVOT_VALUES,
    SORTABLE,
    Catalog,
    build_catalog,
    load_catalog,
)
from lora_land.catalog.measured import MeasuredRow
from lora_land.catalog.models import AdapterEntry, BaseModel, HeadlineStats, Task

__all__ = [
    "LEADERBOARD_COLUMNS",
    "PIVOT_VALUES",
    "SORTABLE",
    "AdapterEntry",
    "BaseModel",
    "Catalog",
    "HeadlineStats",
    "MeasuredRow",
    "Task",
    "build_catalog",
    "load_catalog",
]
