"""Helpers shared by the benchmarks: percentiles, a timer, a printed table and a JSON file.

Generic on purpose (any benchmark may use them); no torch import.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def time_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds taken by each of `repeat` calls of `fn`."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary_ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(samples, 50),
        "p90": percentile(samples, 90),
        "mean": statistics.fmean(samples),
        "n": len(samples),
    }


def machine() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    """Rows of (measure, value, note)."""
    widths = [max(len(str(r[i])) for r in [("measure", "value", "note"), *rows]) for i in range(3)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}\n{line}")
    for row in [("measure", "value", "note"), *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(line)


def write_results(name: str, results: dict) -> Path:
    """Write `bench/results/<name>.json` and print a table of its top-level numbers."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    rows = [
        (key, f"{value:.4g}" if isinstance(value, float) else str(value), "")
        for key, value in results.items()
        if isinstance(value, int | float | str)
    ]
    print_table(f"{name} -> {path}", rows)
    return path
