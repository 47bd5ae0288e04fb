"""GPT-4 reference answers: an OpenAI-compatible client (`client.py`) and its SQLite cache."""

from lora_land.reference.cache import RECORDED, ReferenceCache
from lora_land.reference.client import ReferenceAnswer, ReferenceClient

__all__ = ["RECORDED", "ReferenceAnswer", "ReferenceCache", "ReferenceClient"]
