"""The on-disk audio cache: content addresses, round trips, LRU bound."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from loaxa.speech.cache import AudioCache, cache_key


def tone(n: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(np.arange(n) / 5.0)).astype(np.float32)


def test_key_changes_with_text_voice_rate_and_engine_version() -> None:
    base = cache_key("Xin chào.", "piper:v", 1.0, "1")
    assert base == cache_key("Xin chào.", "piper:v", 1.0, "1")
    others = {
        cache_key("Xin chào!", "piper:v", 1.0, "1"),
        cache_key("Xin chào.", "piper:w", 1.0, "1"),
        cache_key("Xin chào.", "piper:v", 1.2, "1"),
        cache_key("Xin chào.", "piper:v", 1.0, "2"),
    }
    assert base not in others and len(others) == 4


def test_round_trip_keeps_the_samples(tmp_path: Path) -> None:
    cache = AudioCache(tmp_path, 10_000_000)
    samples = tone(5000)
    cache.put("ab" * 32, samples)
    got = cache.get("ab" * 32)
    assert got is not None and got.dtype == np.float32
    assert np.max(np.abs(got - samples)) < 1e-4
    assert "ab" * 32 in cache and cache.hits == 1
    assert cache.get("cd" * 32) is None and cache.misses == 1


def test_entries_survive_a_restart(tmp_path: Path) -> None:
    AudioCache(tmp_path, 10_000_000).put("ef" * 32, tone(1000))
    again = AudioCache(tmp_path, 10_000_000)
    assert again.get("ef" * 32) is not None
    assert again.size_bytes > 2000


def test_least_recently_used_entries_go_first(tmp_path: Path) -> None:
    one = tone(10_000)  # ~20 kB each as int16
    cache = AudioCache(tmp_path, 50_000)
    cache.put("a" * 64, one)
    cache.put("b" * 64, one)
    # make the order unambiguous whatever the file system's time resolution
    os.utime(cache.path_of("a" * 64), ns=(1_000_000_000, 1_000_000_000))
    os.utime(cache.path_of("b" * 64), ns=(2_000_000_000, 2_000_000_000))
    assert cache.get("a" * 64) is not None  # touched: now the most recent
    cache.put("c" * 64, one)
    assert "a" * 64 in cache and "c" * 64 in cache
    assert "b" * 64 not in cache
    assert cache.size_bytes <= 50_000


def test_an_unreadable_entry_is_a_miss_and_is_dropped(tmp_path: Path) -> None:
    cache = AudioCache(tmp_path, 10_000_000)
    cache.put("d" * 64, tone(100))
    cache.path_of("d" * 64).write_bytes(b"garbage")
    assert cache.get("d" * 64) is None
    assert "d" * 64 not in cache


def test_a_zero_bound_disables_the_cache(tmp_path: Path) -> None:
    cache = AudioCache(tmp_path / "c", 0)
    cache.put("e" * 64, tone(100))
    assert cache.get("e" * 64) is None
    assert not (tmp_path / "c").exists()
