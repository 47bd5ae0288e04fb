"""Settings: one frozen dataclass, built in one place (`Settings.from_env`).

Every knob an operator can turn lives here with a one-line comment. Code receives a
`Settings` instance; nothing reads the environment anywhere else. Secrets (the OpenAI key)
are excluded from `repr` so they never reach logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from lora_land.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_BASE = "smollm2-135m-instruct"  # name of the embedded default base model

_MIB = 1024 * 1024


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from e


def _env_float(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from e


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _arena_from_env(base: Settings) -> dict[str, object]:
    data_dir = _env("LORA_LAND_DATA_DIR")
    return {
        "data_dir": Path(data_dir).expanduser() if data_dir else None,
        "arena_max_prompt_chars": _env_int(
            "LORA_LAND_ARENA_MAX_PROMPT_CHARS", base.arena_max_prompt_chars
        ),
        "arena_battles_per_minute": _env_int(
            "LORA_LAND_ARENA_BATTLES_PER_MINUTE", base.arena_battles_per_minute
        ),
        "arena_min_vote_s": _env_float("LORA_LAND_ARENA_MIN_VOTE_S", base.arena_min_vote_s),
        "arena_read_chars_per_s": _env_float(
            "LORA_LAND_ARENA_READ_CHARS_PER_S", base.arena_read_chars_per_s
        ),
    }


@dataclass(frozen=True)
class Settings:
    # where prepared models, downloaded adapters and the reference cache live
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "lora_land")
    # the report's data (tasks, scores); validated on load
    leaderboards_dir: Path = PROJECT_ROOT / "leaderboards"
    # deployment file (JSON) or preset name under deployments/: which base and adapters we serve
    deployment: str = "embedded"
    # override the deployment's base model source (Hub id or local directory)
    base_override: str | None = None
    # override the directory scanned for local adapters (the mini zoo by default)
    adapters_dir_override: Path | None = None
    # "auto" (CUDA when present), "cpu" or "cuda"
    device: str = "auto"
    # "auto" (bf16 on CUDA; on CPU the measured choice, see engine/dtype_choice.py), "float32",
    # "bfloat16", "float16" or "bf16-weights" (CPU: float32 model, linears read bf16 copies)
    dtype: str = "auto"
    # CPU linear layers: "auto" (oneDNN for float32, see engine/cpu_linear.py), "onednn", "aten"
    cpu_linear: str = "auto"
    # "auto": compile the decode step (engine/compiled.py) where it serves the model, in the
    # background after load; "off": eager steps only. Off unless asked in code (compiling sets
    # a process-wide compiler stance); `from_env` (the app, the bench) defaults to "auto".
    compile: str = "off"
    # None, "4bit" or "8bit" (bitsandbytes, CUDA only)
    quantization: str | None = None
    # bytes of adapter weights resident next to the base model (batchable slots)
    device_cache_bytes: int = 64 * _MIB
    # bytes of adapter weights kept in host memory as the second tier
    host_cache_bytes: int = 512 * _MIB
    # largest LoRA rank the engine accepts
    max_lora_rank: int = 64
    # hard cap on max_new_tokens per request
    max_new_tokens_limit: int = 512
    # a rendered prompt longer than this many characters is refused
    max_prompt_chars: int = 16_000
    # requests waiting for the engine beyond this are refused with QueueFullError
    max_queue: int = 32
    # largest batch the engine's scheduler forms
    max_batch_size: int = 8
    # operators may allow adapter ids that are local paths or arbitrary Hub repos
    allow_arbitrary_adapters: bool = False
    # operators may allow pickle (.bin) adapter weights; safetensors only otherwise
    allow_pickle_adapters: bool = False
    # OpenAI-compatible endpoint for the GPT-4 reference pane (None: not configured)
    openai_base_url: str | None = None
    # its API key; never shown, never logged
    openai_api_key: str | None = field(default=None, repr=False)
    # the reference model name
    openai_model: str = "gpt-4"
    # seconds before a reference request is abandoned
    openai_timeout_s: float = 30.0
    # JSONL of recorded reference outputs to pre-fill the cache with
    reference_recordings: Path | None = None
    # hand generation to an existing multi-LoRA server (LoRAX or vLLM) at this URL
    remote_url: str | None = None
    # its wire protocol: "lorax" (/generate_stream) or "openai" (/completions, e.g. vLLM)
    remote_protocol: str = "lorax"
    # its API key, if it needs one; never shown, never logged
    remote_api_key: str | None = field(default=None, repr=False)
    # -- serving (issue 8) --
    # seconds a generation may run before it is stopped (HTTP 504); 0 turns it off
    request_timeout_s: float = 300.0
    # bearer keys the HTTP API accepts (comma-separated env); empty: the API is open
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # requests per minute per client (key or address) on the API and the UI's runs; 0: off
    rate_limit_per_min: int = 600
    # largest request body in bytes
    max_body_bytes: int = 1 * _MIB
    # seconds a client may take to send its request body
    body_timeout_s: float = 10.0
    # -- engine speed (issue 12) --
    # prompt tokens a joining row may prefill per decode step (longer prompts go in chunks,
    # so running rows keep streaming); -1: auto (32 on CPU, 512 on CUDA); 0: all at once
    prefill_chunk_tokens: int = -1
    # most rows one adapter may hold in a batch, so a flood for one adapter leaves slots for
    # others (queues are per adapter, admitted round-robin either way); 0: no cap
    max_rows_per_adapter: int = 0
    # "auto" (on a Hugging Face ZeroGPU Space: no resident worker thread, generation streamed
    # from `@spaces.GPU` calls), "on" or "off"
    zerogpu: str = "auto"
    # interface the app binds to
    host: str = "127.0.0.1"
    # port the app binds to
    port: int = 7860
    # --- Arena (votes, ratings) ---
    # directory of the app's own data (the arena's vote database); None: the cache directory
    data_dir: Path | None = None
    # an arena prompt longer than this many characters is refused
    arena_max_prompt_chars: int = 4_000
    # battles one session may start per minute
    arena_battles_per_minute: int = 20
    # votes cast sooner than this after both outputs finished are flagged (left out of ratings)
    arena_min_vote_s: float = 1.0
    # reading speed: a vote sooner than (characters of both outputs / this) is flagged too
    arena_read_chars_per_s: float = 60.0

    @property
    def reference_db(self) -> Path:
        """SQLite file caching GPT-4 reference answers."""
        return self.cache_dir / "reference.sqlite"

    @property
    def arena_db(self) -> Path:
        """SQLite file of arena votes."""
        return (self.data_dir or self.cache_dir) / "arena.sqlite"

    @property
    def models_dir(self) -> Path:
        """Prepared base models (the embedded GGUF turned into safetensors)."""
        return self.cache_dir / "models"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from `LORA_LAND_*` (and `OPENAI_*`) variables, then `overrides`."""
        base = cls()
        adapters_dir = _env("LORA_LAND_ADAPTERS_DIR")
        recordings = _env("LORA_LAND_REFERENCE_RECORDINGS")
        quant = _env("LORA_LAND_QUANTIZATION")
        if quant not in (None, "4bit", "8bit"):
            raise ConfigError(f"LORA_LAND_QUANTIZATION must be 4bit or 8bit, got {quant!r}")
        settings = cls(
            cache_dir=Path(_env("LORA_LAND_CACHE", str(base.cache_dir))).expanduser(),
            leaderboards_dir=Path(_env("LORA_LAND_LEADERBOARDS", str(base.leaderboards_dir))),
            deployment=_env("LORA_LAND_DEPLOYMENT", base.deployment),
            base_override=_env("LORA_LAND_BASE"),
            adapters_dir_override=Path(adapters_dir) if adapters_dir else None,
            device=_env("LORA_LAND_DEVICE", base.device),
            dtype=_env("LORA_LAND_DTYPE", base.dtype),
            cpu_linear=_env("LORA_LAND_CPU_LINEAR", base.cpu_linear),
            compile=_compile_setting(_env("LORA_LAND_COMPILE", "auto")),
            quantization=quant,
            device_cache_bytes=_env_int("LORA_LAND_DEVICE_CACHE_MB", 64) * _MIB,
            host_cache_bytes=_env_int("LORA_LAND_HOST_CACHE_MB", 512) * _MIB,
            max_lora_rank=_env_int("LORA_LAND_MAX_LORA_RANK", base.max_lora_rank),
            max_new_tokens_limit=_env_int("LORA_LAND_MAX_NEW_TOKENS", base.max_new_tokens_limit),
            max_prompt_chars=_env_int("LORA_LAND_MAX_PROMPT_CHARS", base.max_prompt_chars),
            max_queue=_env_int("LORA_LAND_MAX_QUEUE", base.max_queue),
            max_batch_size=_env_int("LORA_LAND_MAX_BATCH", base.max_batch_size),
            allow_arbitrary_adapters=_env_bool("LORA_LAND_ALLOW_ARBITRARY_ADAPTERS", False),
            allow_pickle_adapters=_env_bool("LORA_LAND_ALLOW_PICKLE_ADAPTERS", False),
            openai_base_url=_env("OPENAI_BASE_URL"),
            openai_api_key=_env("OPENAI_API_KEY"),
            openai_model=_env("LORA_LAND_REFERENCE_MODEL", base.openai_model),
            openai_timeout_s=_env_float("LORA_LAND_REFERENCE_TIMEOUT", base.openai_timeout_s),
            reference_recordings=Path(recordings) if recordings else None,
            remote_url=_env("LORA_LAND_REMOTE_URL"),
            remote_protocol=_env("LORA_LAND_REMOTE_PROTOCOL", base.remote_protocol),
            remote_api_key=_env("LORA_LAND_REMOTE_API_KEY"),
            request_timeout_s=_env_float("LORA_LAND_REQUEST_TIMEOUT", base.request_timeout_s),
            api_keys=tuple(
                k.strip() for k in (_env("LORA_LAND_API_KEYS") or "").split(",") if k.strip()
            ),
            rate_limit_per_min=_env_int("LORA_LAND_RATE_LIMIT", base.rate_limit_per_min),
            max_body_bytes=_env_int("LORA_LAND_MAX_BODY_BYTES", base.max_body_bytes),
            body_timeout_s=_env_float("LORA_LAND_BODY_TIMEOUT", base.body_timeout_s),
            prefill_chunk_tokens=_env_int("LORA_LAND_PREFILL_CHUNK", base.prefill_chunk_tokens),
            max_rows_per_adapter=_env_int(
                "LORA_LAND_MAX_ROWS_PER_ADAPTER", base.max_rows_per_adapter
            ),
            zerogpu=_env("LORA_LAND_ZEROGPU", base.zerogpu),
            host=_env("LORA_LAND_HOST", base.host),
            port=_env_int("LORA_LAND_PORT", base.port),
            **_arena_from_env(base),
        )
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown settings: {sorted(unknown)}")
        return replace(settings, **overrides)  # type: ignore[arg-type]


def _compile_setting(value: str) -> str:
    if value not in ("auto", "off"):
        raise ConfigError(f"LORA_LAND_COMPILE must be auto or off, got {value!r}")
    return value
