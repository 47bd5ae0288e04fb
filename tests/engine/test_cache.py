"""The byte-budgeted LRU tier, step by step (after vLLM's LoRA manager test)."""

from __future__ import annotations

import pytest

from lora_land.engine.cache import CacheFullError, LruCache


def test_capacity_is_in_bytes_not_adapters():
    evicted: list[str] = []
    cache = LruCache(100, on_evict=lambda key, value: evicted.append(key))
    assert cache.add("r8", "w8", 25) == []
    assert cache.add("r8b", "w8b", 25) == []
    assert cache.add("r16", "w16", 50) == []  # three adapters, 100 bytes: all fit
    assert cache.bytes_used == 100
    assert cache.add("r64", "w64", 60) == ["r8", "r8b", "r16"]
    assert cache.lru_order() == ["r64"]
    assert evicted == ["r8", "r8b", "r16"]
    assert cache.bytes_used == 60


def test_add_is_idempotent_and_touches():
    cache = LruCache(3)
    cache.add("a", 1, 1)
    cache.add("b", 2, 1)
    assert cache.add("a", 99, 1) == []
    assert cache.get("a") == 1  # the first value stays
    assert cache.lru_order() == ["b", "a"]
    assert cache.bytes_used == 2


def test_eviction_order_is_least_recently_used():
    evicted: list[str] = []
    cache = LruCache(2, on_evict=lambda key, value: evicted.append(key))
    cache.add("1", "one", 1)
    cache.add("2", "two", 1)
    cache.touch("1")
    cache.add("3", "three", 1)  # 2 was least recently used
    assert evicted == ["2"] and cache.lru_order() == ["1", "3"]
    cache.get("1")
    cache.add("4", "four", 1)
    assert evicted == ["2", "3"] and cache.lru_order() == ["1", "4"]
    assert cache.evictions == 2


def test_pinned_entries_are_never_evicted():
    cache = LruCache(2)
    cache.add("featured", 0, 1)
    cache.pin("featured")
    cache.add("x", 1, 1)
    cache.add("y", 2, 1)
    assert cache.lru_order() == ["featured", "y"]
    cache.add("z", 3, 1)
    assert "featured" in cache and "z" in cache and "y" not in cache


def test_full_of_pins_refuses_without_evicting():
    cache = LruCache(2)
    cache.add("a", 0, 1)
    cache.add("b", 0, 1)
    cache.pin("a")
    cache.pin("b")
    with pytest.raises(CacheFullError, match="pinned"):
        cache.add("c", 0, 1)
    assert cache.lru_order() == ["a", "b"] and cache.evictions == 0
    cache.unpin("b")
    assert cache.add("c", 0, 1) == ["b"]


def test_pins_count_and_unpin_releases():
    cache = LruCache(1)
    cache.add("a", 0, 1)
    cache.pin("a")
    cache.pin("a")
    cache.unpin("a")
    assert cache.is_pinned("a")
    cache.unpin("a")
    assert not cache.is_pinned("a")


def test_an_item_larger_than_the_budget_is_refused():
    cache = LruCache(10)
    with pytest.raises(CacheFullError, match="11 bytes exceeds the cache budget of 10"):
        cache.add("huge", 0, 11)


def test_pin_of_a_missing_key_is_a_key_error():
    with pytest.raises(KeyError, match="missing"):
        LruCache(1).pin("missing")
