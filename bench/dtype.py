"""Serving dtype check: greedy outputs and zoo scores in float32 vs bfloat16, and speed.

Run: `.venv/bin/python -m bench.dtype [--rows N] [--tokens N] [--quick] [--no-record]`
(writes `bench/results/dtype.json`, prints a table, and unless `--quick`/`--no-record`
records the verdict that `LORA_LAND_DTYPE=auto` reads, see `lora_land/engine/dtype_choice.py`).
For every adapter of the embedded zoo, the first N evaluation rows of its task
(`../shared/data/samples`) are rendered with the task's template and decoded greedily with
the adapter in both dtypes, in batches of 8 through the engine. Reported: the fraction of
prompts whose text is identical (`agreement`, overall and per task), each task's score in
both dtypes (n rows each), and `bf16_over_fp32_throughput` (tokens/s of the whole pass, same
batches). Tests never assert on these numbers.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench.common import write_results
from lora_land.config import PROJECT_ROOT, Settings
from lora_land.deployment import load_deployment
from lora_land.engine.dtype_choice import DtypeRecord, cpu_supports_bf16, save_record
from lora_land.engine.engine import Engine
from lora_land.engine.loading import resolve_source
from lora_land.engine.types import GenerationRequest
from lora_land.evaluation.metrics import get_metric
from lora_land.evaluation.tasks import load_task, read_rows

SAMPLES = PROJECT_ROOT.parent / "shared" / "data" / "samples"


def run_dtype(settings: Settings, dtype: str, work: list[tuple[str, str, list[dict]]], tokens):
    """{task: [predictions]} and tokens/s for one dtype."""
    engine = Engine.from_settings(replace(settings, dtype=dtype), load_deployment(settings))
    predictions: dict[str, list[str]] = {}
    generated = 0
    start = time.perf_counter()
    try:
        for task_name, adapter_id, rows in work:
            task = load_task(task_name)
            out: list[str] = []
            for i in range(0, len(rows), 8):
                requests = [
                    GenerationRequest(
                        task.render_eval(row), adapter_id, max_new_tokens=tokens, truncate="left"
                    )
                    for row in rows[i : i + 8]
                ]
                results = engine.generate(requests)
                out += [r.text for r in results]
                generated += sum(r.completion_tokens for r in results)
            predictions[task_name] = out
    finally:
        engine.close()
    return predictions, generated / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12, help="evaluation rows per task")
    parser.add_argument("--tokens", type=int, default=64, help="max new tokens per row")
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--quick", action="store_true", help="2 tasks x 2 rows; no record")
    parser.add_argument(
        "--no-record", action="store_true", help="report only; leave what auto uses alone"
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env(device="cpu", max_batch_size=8)
    deployment = load_deployment(settings)
    work = []
    for adapter_id, source in sorted(deployment.adapters.items()):
        if "@" in adapter_id:  # variants share their task's prompts; the SFT adapter is enough
            continue
        path = args.samples / f"{source.task}.jsonl"
        if path.is_file():
            work.append((source.task, adapter_id, read_rows(path)[: args.rows]))
    if args.quick:
        work = [(t, a, rows[:2]) for t, a, rows in work[:2]]
    results: dict = {
        "rows_per_task": len(work[0][2]) if work else 0,
        "tokens": args.tokens,
        "cpu_bf16": cpu_supports_bf16(),
        "load_before": os.getloadavg(),
        "torch_threads": torch.get_num_threads(),
    }
    fp32, fp32_tps = run_dtype(settings, "float32", work, args.tokens)
    bf16, bf16_tps = run_dtype(settings, "bfloat16", work, args.tokens)
    same = total = 0
    per_task = {}
    for task_name, _, rows in work:
        metric = get_metric(load_task(task_name).metric_fn)
        a, b = fp32[task_name], bf16[task_name]
        agree = sum(x == y for x, y in zip(a, b, strict=True))
        same, total = same + agree, total + len(rows)
        targets = [str(r["target"]) for r in rows]
        per_task[task_name] = {
            "n": len(rows),
            "agreement": agree / len(rows),
            "score_fp32": sum(
                metric.score(p, t, r) for p, t, r in zip(a, targets, rows, strict=True)
            )
            / len(rows),
            "score_bf16": sum(
                metric.score(p, t, r) for p, t, r in zip(b, targets, rows, strict=True)
            )
            / len(rows),
        }
    results["tasks"] = per_task
    results["agreement"] = same / total if total else float("nan")
    results["prompts"] = total
    results["fp32_tok_s"] = fp32_tps
    results["bf16_tok_s"] = bf16_tps
    results["bf16_over_fp32_throughput"] = bf16_tps / fp32_tps
    results["load_after"] = os.getloadavg()
    if not args.quick and not args.no_record and total:
        source = resolve_source(deployment.base, settings)
        record = DtypeRecord(
            source=source,
            candidate="bfloat16",
            agreement=results["agreement"],
            prompts=total,
            speedup=results["bf16_over_fp32_throughput"],
            torch_version=torch.__version__,
            cpu_bf16=results["cpu_bf16"],
        )
        saved = save_record(settings.cache_dir, record)
        results["record"] = str(saved).replace(str(Path.home()), "~")  # no machine paths
        results["auto_chooses"] = "bfloat16" if record.accepted else "float32"
    write_results("dtype", results)
    return results


if __name__ == "__main__":
    main()
