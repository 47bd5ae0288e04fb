"""The adapter store's tiers with a fake loader: states, counters, pins, one load per id."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lora_land.deployment import AdapterSource, BaseSource, Deployment
from lora_land.engine.cache import CacheFullError
from lora_land.engine.lora import DeviceAdapter
from lora_land.engine.store import AdapterStore
from lora_land.engine.validation import HostAdapter
from lora_land.errors import AdapterValidationError, UnknownAdapterError

SIZES = {"b/one": 10, "b/two": 10, "b/three": 10, "b/big": 40, "b/bad": 10}


def _deployment(pinned: tuple[str, ...] = ()) -> Deployment:
    adapters = {
        i: AdapterSource(id=i, task=i[2:], path=Path("/nowhere") / i, pinned=i in pinned)
        for i in SIZES
    }
    return Deployment(name="t", base=BaseSource(name="b", source="x"), adapters=adapters)


class FakeLoader:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[str] = []
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, source: AdapterSource) -> HostAdapter:
        with self._lock:
            self.calls.append(source.id)
        time.sleep(self.delay)
        if source.id == "b/bad":
            raise AdapterValidationError(f"adapter {source.id!r} cannot be served: broken")
        return HostAdapter(source.id, {}, {}, 8, SIZES[source.id], Path("/nowhere"))


def _promote(host: HostAdapter) -> DeviceAdapter:
    return DeviceAdapter(host.id, {}, host.nbytes, host.rank)


def _store(loader: FakeLoader, device: int = 20, host: int = 30, pinned=()) -> AdapterStore:
    return AdapterStore(_deployment(pinned), loader, _promote, device, host)


def test_states_go_cold_warm_hot_and_counters_follow():
    store = _store(FakeLoader())
    assert store.state("b/one") == "cold" and store.state(None) == "base"
    state, host = store.prepare("b/one")
    assert state == "cold" and host is not None and store.state("b/one") == "warm"
    assert store.prepare("b/one")[0] == "warm"
    store.acquire("b/one", host)
    store.release("b/one")
    assert store.state("b/one") == "hot"
    assert store.prepare("b/one") == ("hot", None)
    assert store.misses == 1 and store.hits == {"device": 1, "host": 1}
    assert store.device.bytes_used == 10 and store.host.bytes_used == 10


def test_device_eviction_leaves_the_host_copy_warm():
    store = _store(FakeLoader(), device=20)
    for adapter_id in ("b/one", "b/two", "b/three"):
        _, host = store.prepare(adapter_id)
        store.acquire(adapter_id, host)
        store.release(adapter_id)
    assert store.resident() == ["b/two", "b/three"]
    assert store.state("b/one") == "warm" and store.device.evictions == 1


def test_adapters_held_by_a_batch_are_not_evicted():
    store = _store(FakeLoader(), device=20)
    for adapter_id in ("b/one", "b/two"):
        store.acquire(adapter_id, store.prepare(adapter_id)[1])  # held, not released
    with pytest.raises(CacheFullError):
        store.acquire("b/three", store.prepare("b/three")[1])
    store.release("b/one")
    store.acquire("b/three", None)
    assert store.resident() == ["b/two", "b/three"]


def test_an_adapter_larger_than_the_device_budget_is_a_clear_error():
    store = _store(FakeLoader(), device=20, host=100)
    with pytest.raises(AdapterValidationError, match=r"needs 40 bytes.*holds 20 bytes"):
        store.acquire("b/big", store.prepare("b/big")[1])


def test_concurrent_requests_for_a_cold_adapter_load_it_once():
    loader = FakeLoader(delay=0.2)
    store = _store(loader)
    results: list = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        results.append(store.prepare("b/one"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loader.calls == ["b/one"]
    assert len({id(host) for _, host in results}) == 1
    assert store.host.bytes_used == 10


def test_a_failed_load_reaches_every_waiter_and_is_retried_later():
    loader = FakeLoader(delay=0.1)
    store = _store(loader)
    errors: list[Exception] = []

    def ask() -> None:
        try:
            store.prepare("b/bad")
        except AdapterValidationError as e:
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 4 and loader.calls == ["b/bad"]
    with pytest.raises(AdapterValidationError, match="broken"):
        store.prepare("b/bad")
    assert loader.calls == ["b/bad", "b/bad"]


def test_pinned_adapters_are_preloaded_and_survive_pressure():
    store = _store(FakeLoader(), device=20, host=20, pinned=("b/two",))
    assert store.preload_pinned() == ["b/two"]
    assert store.state("b/two") == "hot"
    for adapter_id in ("b/one", "b/three", "b/one", "b/three"):
        store.acquire(adapter_id, store.prepare(adapter_id)[1])
        store.release(adapter_id)
    assert "b/two" in store.resident() and "b/two" in store.host


def test_a_broken_pinned_adapter_does_not_stop_the_start():
    store = _store(FakeLoader(), pinned=("b/bad", "b/one"))
    assert store.preload_pinned() == ["b/one"]


def test_unknown_ids_are_refused_before_any_load():
    loader = FakeLoader()
    with pytest.raises(UnknownAdapterError, match="not served"):
        _store(loader).prepare("/etc/passwd")
    assert loader.calls == []
