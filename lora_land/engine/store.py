"""The adapter store: ids in, servable adapters out, through a tiered byte-budgeted cache.

Tiers: **device** (laid out for compute next to the base; what a batch can use; budget
`settings.device_cache_bytes`), **host** (validated CPU tensors; `settings.host_cache_bytes`),
then **disk** (a local directory, or a Hub snapshot downloaded once into the cache dir).
Both memory tiers are `LruCache`s; pinned adapters (`AdapterSource.pinned`) are preloaded
and never evicted. Concurrent requests for the same cold adapter share one load (a per-id
future). Users pass ids; `Deployment.resolve` turns them into sources (never user paths).

The store does not run models; the engine calls `prepare` (in the caller's thread, so slow
loads and validation errors stay out of the scheduler) and `acquire`/`release` around batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import torch

from lora_land.deployment import AdapterSource, Deployment
from lora_land.engine.cache import CacheFullError, LruCache
from lora_land.engine.lora import DeviceAdapter, to_device_adapter
from lora_land.engine.types import AdapterState
from lora_land.engine.validation import HostAdapter, read_adapter
from lora_land.errors import AdapterValidationError

log = logging.getLogger(__name__)

HUB_PATTERNS = ["adapter_config.json", "*.safetensors", "README.md"]
Loader = Callable[[AdapterSource], HostAdapter]


class AdapterStore:
    """Adapter ids -> `HostAdapter` / `DeviceAdapter`, with per-tier counters."""

    def __init__(
        self,
        deployment: Deployment,
        loader: Loader,
        promote: Callable[[HostAdapter], DeviceAdapter],
        device_bytes: int,
        host_bytes: int,
    ) -> None:
        self.deployment = deployment
        self._loader = loader
        self._promote = promote
        self._lock = threading.Lock()
        self.device = LruCache(device_bytes)
        self.host = LruCache(host_bytes)
        self._inflight: dict[str, Future] = {}
        self.hits = {"device": 0, "host": 0}
        self.misses = 0
        self.load_time_s = 0.0

    # -- state -------------------------------------------------------------------------------
    def state(self, adapter_id: str | None) -> AdapterState:
        if adapter_id is None:
            return "base"
        with self._lock:
            if adapter_id in self.device:
                return "hot"
            return "warm" if adapter_id in self.host else "cold"

    def resident(self) -> list[str]:
        with self._lock:
            return [str(k) for k in self.device.lru_order()]

    # -- caller side: make sure it is at least in host memory --------------------------------
    def prepare(self, adapter_id: str) -> tuple[AdapterState, HostAdapter | None]:
        """Resolve, load and validate if needed (once per id even when called concurrently).

        Returns the state it was found in and the host copy (None when already resident).
        Raises `UnknownAdapterError` / `AdapterValidationError`.
        """
        source = self.deployment.resolve(adapter_id)
        with self._lock:
            if adapter_id in self.device:
                self.device.touch(adapter_id)
                self.hits["device"] += 1
                return "hot", None
            host = self.host.get(adapter_id)
            if host is not None:
                self.hits["host"] += 1
                return "warm", host
            self.misses += 1
            future = self._inflight.get(adapter_id)
            owner = future is None
            if owner:
                future = self._inflight[adapter_id] = Future()
        if owner:
            self._load_into_host(source, future)
        return "cold", future.result()

    def _load_into_host(self, source: AdapterSource, future: Future) -> None:
        start = time.perf_counter()
        try:
            host = self._loader(source)
        except BaseException as e:
            with self._lock:
                self._inflight.pop(source.id, None)
            future.set_exception(e)
            return
        with self._lock:
            self.load_time_s += time.perf_counter() - start
            try:
                self.host.add(source.id, host, host.nbytes)
            except CacheFullError:
                log.warning(
                    "adapter %s (%d bytes) does not fit the host tier", source.id, host.nbytes
                )
            self._inflight.pop(source.id, None)
        future.set_result(host)

    # -- scheduler side: resident on the device for the duration of a batch ------------------
    def acquire(self, adapter_id: str, host: HostAdapter | None) -> DeviceAdapter:
        """The device copy of `adapter_id`, pinned until `release`. May raise CacheFullError
        (room held by other batches' adapters: retry later) or AdapterValidationError (the
        adapter alone exceeds the device budget)."""
        with self._lock:
            device = self.device.get(adapter_id)
            if device is not None:
                self.device.pin(adapter_id)
                return device
            host = host or self.host.get(adapter_id)
        if host is None:  # evicted from both tiers since `prepare`: reload from disk
            _, host = self.prepare(adapter_id)
            if host is None:
                return self.acquire(adapter_id, None)
        start = time.perf_counter()
        device = self._promote(host)
        with self._lock:
            if adapter_id in self.device:  # someone else promoted it meanwhile
                self.device.pin(adapter_id)
                return self.device.get(adapter_id)
            if device.nbytes > self.device.capacity_bytes:
                raise AdapterValidationError(
                    f"adapter {adapter_id!r} needs {device.nbytes} bytes on the device but the "
                    f"device adapter cache holds {self.device.capacity_bytes} bytes "
                    "(raise LORA_LAND_DEVICE_CACHE_MB)"
                )
            self.device.add(adapter_id, device, device.nbytes)
            self.device.pin(adapter_id)
            self.load_time_s += time.perf_counter() - start
        return device

    def release(self, adapter_id: str) -> None:
        with self._lock:
            self.device.unpin(adapter_id)

    # -- start-up ----------------------------------------------------------------------------
    def preload_pinned(self) -> list[str]:
        """Load every pinned adapter into both tiers and pin it; failures are logged, skipped."""
        loaded: list[str] = []
        for source in self.deployment.adapters.values():
            if not source.pinned:
                continue
            try:
                _, host = self.prepare(source.id)
                self.acquire(source.id, host)  # the acquire pin is never released
                with self._lock:
                    if source.id in self.host:
                        self.host.pin(source.id)
                loaded.append(source.id)
            except (AdapterValidationError, CacheFullError) as e:
                log.error("pinned adapter %s not preloaded: %s", source.id, e)
        return loaded


def download_hub_adapter(
    repo: str, revision: str | None, cache_dir: Path, allow_pickle: bool = False
) -> Path:
    """A snapshot of the adapter files only (config, safetensors, README) in `cache_dir`."""
    from huggingface_hub import snapshot_download

    patterns = [*HUB_PATTERNS, "adapter_model.bin"] if allow_pickle else HUB_PATTERNS
    return Path(
        snapshot_download(
            repo_id=repo, revision=revision, allow_patterns=patterns, cache_dir=str(cache_dir)
        )
    )


def make_loader(
    base_shapes: dict[str, tuple[int, int]],
    max_rank: int,
    allow_pickle: bool,
    hub_cache_dir: Path,
) -> Loader:
    """Disk (or Hub) -> validated `HostAdapter`."""

    def load(source: AdapterSource) -> HostAdapter:
        directory = source.path
        if directory is None:
            try:
                directory = download_hub_adapter(
                    str(source.repo), source.revision, hub_cache_dir, allow_pickle
                )
            except Exception as e:  # network, auth, missing repo: all unservable for now
                raise AdapterValidationError(
                    f"adapter {source.id!r}: could not fetch {source.repo!r} from the Hub ({e})"
                ) from e
        log.debug("loading adapter %s from %s", source.id, directory)
        return read_adapter(directory, source.id, base_shapes, max_rank, allow_pickle)

    return load


def make_promoter(
    device: torch.device, dtype: torch.dtype, attach: Callable[[list[str]], None]
) -> Callable[[HostAdapter], DeviceAdapter]:
    """Host -> device layout; wraps any base module the adapter targets for the first time."""

    def promote(host: HostAdapter) -> DeviceAdapter:
        attach(list(host.tensors))
        return to_device_adapter(host.id, host.tensors, host.scalings, device, dtype)

    return promote
