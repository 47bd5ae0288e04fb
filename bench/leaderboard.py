"""Benchmark: how fast the leaderboard answers a filter or a sort over the 310 rows.

Run `.venv/bin/python -m bench.leaderboard [--reps N]`. It times, server-side and in one run:
- `catalog.leaderboard(...)` for several filter combinations and for a sort by each column;
- the tab's whole handler (`leaderboard_view`: query, styling) plus Gradio's own
  `Dataframe.postprocess`, i.e. everything the server does before sending the table;
- two baselines over the same rows: a naive pure-Python list filter + `sorted`, and
  `pandas.DataFrame.query` with a string expression.
It prints a table of p50/p95 in milliseconds, the ratio of each to the pure-Python baseline,
and writes `bench/results/leaderboard.json` (`filter_ms_p50`, `sort_ms_p50`, ...). The target
is < 100 ms. Tests never assert on these timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from bench.common import time_ms
from lora_land.catalog import SORTABLE, load_catalog
from lora_land.ui.leaderboard import ALL, leaderboard_view

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 100.0
FILTERS: list[dict[str, Any]] = [
    {},
    {"task": "glue_sst2"},
    {"category": "Reasoning", "beats_gpt4": True},
    {"base": "mistral-7b", "search": "glue"},
    {"search": "zephyr sentiment"},
]


def timings(fn: Callable[[], object], reps: int) -> list[float]:
    """Milliseconds of `reps` calls of `fn` after 3 warm-up calls."""
    time_ms(fn, 3)
    return time_ms(fn, reps)


def p50_p95(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples), cuts[18]


def _python_query(rows: list[dict], f: dict[str, Any], sort_by: str) -> list[dict]:
    words = f.get("search", "").lower().split()
    kept = [
        r
        for r in rows
        if (not f.get("task") or r["task"] == f["task"])
        and (not f.get("category") or r["category"] == f["category"])
        and (not f.get("base") or r["base"] == f["base"])
        and (not f.get("beats_gpt4") or r["beats_gpt4"])
        and all(w in r["_text"] for w in words)
    ]
    return sorted(kept, key=lambda r: r[sort_by], reverse=True)


def _pandas_query(frame, f: dict[str, Any], sort_by: str):
    parts = [f"{k} == {f[k]!r}" for k in ("task", "category", "base") if f.get(k)]
    if f.get("beats_gpt4"):
        parts.append("beats_gpt4")
    for word in f.get("search", "").lower().split():
        parts.append(f"_text.str.contains({word!r}, regex=False)")
    subset = frame.query(" and ".join(parts)) if parts else frame
    return subset.sort_values(sort_by, ascending=False)


def run(reps: int) -> tuple[dict[str, Any], list[tuple[str, float, float]]]:
    catalog = load_catalog()
    frame = catalog.leaderboard()
    frame["_text"] = (
        frame["id"] + " " + frame["task_ui_name"] + " " + frame["base_display"]
    ).str.lower()
    rows = frame.to_dict("records")
    component = gr.Dataframe(interactive=False, render=False)

    def handler(f: dict[str, Any]) -> Callable[[], object]:
        args = (f.get("search", ""), f.get("category", ALL), f.get("task", ALL), f.get("base", ALL))
        return lambda: component.postprocess(
            leaderboard_view(catalog, *args, f.get("beats_gpt4", False), "lift", True)[0]
        )

    cases: dict[str, list[float]] = {
        "filter": [],
        "sort": [],
        "handler": [],
        "python": [],
        "pandas_query": [],
    }
    for f in FILTERS:
        cases["filter"] += timings(lambda f=f: catalog.leaderboard(**f), reps)
        cases["handler"] += timings(handler(f), reps)
        cases["python"] += timings(lambda f=f: _python_query(rows, f, "lift"), reps)
        cases["pandas_query"] += timings(lambda f=f: _pandas_query(frame, f, "lift"), reps)
    for column in SORTABLE:
        cases["sort"] += timings(lambda c=column: catalog.leaderboard(sort_by=c), reps // 2 or 1)
    return _summarise(cases, reps)


def _summarise(cases: dict[str, list[float]], reps: int) -> tuple[dict[str, Any], list]:
    stats = {name: p50_p95(samples) for name, samples in cases.items()}
    baseline = stats["python"][0]
    table = [(name, p50, p95) for name, (p50, p95) in stats.items()]
    results: dict[str, Any] = {
        f"{n}_ms_{q}": round(v, 4) for n, p50, p95 in table for q, v in (("p50", p50), ("p95", p95))
    }
    results |= {
        "ratio_filter_vs_python": round(stats["filter"][0] / baseline, 2),
        "ratio_filter_vs_pandas_query": round(stats["filter"][0] / stats["pandas_query"][0], 2),
        "rows": 310,
        "filter_cases": len(FILTERS),
        "repetitions_per_case": reps,
        "target_ms": TARGET_MS,
        "meets_target": max(stats["filter"][1], stats["sort"][1], stats["handler"][1]) < TARGET_MS,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}",
        "python": platform.python_version(),
    }
    return results, table


def write_results(name: str, results: dict[str, Any], rows: list[tuple[str, float, float]]) -> Path:
    """Print a table and write `bench/results/<name>.json`."""
    baseline = next(p50 for n, p50, _ in rows if n == "python")
    print(f"{'case':<14}{'p50 ms':>10}{'p95 ms':>10}{'x python':>10}")
    for case, p50, p95 in rows:
        print(f"{case:<14}{p50:>10.3f}{p95:>10.3f}{p50 / baseline:>10.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    verdict = "met" if results["meets_target"] else "NOT met"
    print(f"target < {TARGET_MS:.0f} ms (p95 of filter, sort, handler): {verdict}; wrote {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="timed calls per case")
    args = parser.parse_args()
    results, rows = run(args.reps)
    write_results("leaderboard", results, rows)


if __name__ == "__main__":
    main()
