"""Serving precision check: greedy outputs and zoo scores in float32 vs each candidate
(bfloat16, and bf16-weights: a float32 model whose linears read bf16 weights), and speed.

Run: `.venv/bin/python -m bench.dtype [--rows N] [--tokens N] [--quick] [--no-record]`
(writes `bench/results/dtype.json`, prints a table, and unless `--quick`/`--no-record`
records the verdicts that `LORA_LAND_DTYPE=auto` reads, see `lora_land/engine/dtype_choice.py`).
For every adapter of the embedded zoo, the first N evaluation rows of its task
(`../shared/data/samples`) are rendered with the task's template and decoded greedily with
the adapter in each precision, in batches of 8 through the engine. Reported per candidate:
the fraction of prompts whose text is identical to float32's (`<c>_agreement`, overall and
per task), each task's score (n rows each), and `<c>_over_fp32_throughput` (tokens/s of the
whole pass, same batches). Tests never assert on these numbers.
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
from lora_land.engine.dtype_choice import CANDIDATES, DtypeRecord, cpu_supports_bf16, save_record
from lora_land.engine.engine import Engine
from lora_land.engine.loading import resolve_source
from lora_land.engine.types import GenerationRequest
from lora_land.evaluation.metrics import get_metric
from lora_land.evaluation.tasks import load_task, read_rows

SAMPLES = PROJECT_ROOT.parent / "shared" / "data" / "samples"


def run_dtype(settings: Settings, dtype: str, work: list[tuple[str, str, list[dict]]], tokens):
    """{task: [predictions]} and tokens/s for one dtype."""
    engine = Engine.from_settings(replace(settings, dtype=dtype), load_deployment(settings))
    engine.wait_compiled()  # time what is served once the background compile is done
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


SHORT = {"bfloat16": "bf16", "bf16-weights": "bf16w"}  # result keys per candidate


def _score(task_name: str, predictions: list[str], rows: list[dict]) -> float:
    metric = get_metric(load_task(task_name).metric_fn)
    return sum(
        metric.score(p, str(r["target"]), r) for p, r in zip(predictions, rows, strict=True)
    ) / len(rows)


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
    results["fp32_tok_s"] = fp32_tps
    per_task: dict = {
        task_name: {
            "n": len(rows),
            "score_fp32": _score(task_name, fp32[task_name], rows),
        }
        for task_name, _, rows in work
    }
    records = []
    for candidate in CANDIDATES:
        short = SHORT[candidate]
        got, tps = run_dtype(settings, candidate, work, args.tokens)
        same = total = 0
        for task_name, _, rows in work:
            agree = sum(x == y for x, y in zip(fp32[task_name], got[task_name], strict=True))
            same, total = same + agree, total + len(rows)
            per_task[task_name][f"{short}_agreement"] = agree / len(rows)
            per_task[task_name][f"score_{short}"] = _score(task_name, got[task_name], rows)
        results[f"{short}_agreement"] = same / total if total else float("nan")
        results[f"{short}_tok_s"] = tps
        results[f"{short}_over_fp32_throughput"] = tps / fp32_tps
        records.append(
            DtypeRecord(
                source=resolve_source(deployment.base, settings),
                candidate=candidate,
                agreement=results[f"{short}_agreement"],
                prompts=total,
                speedup=tps / fp32_tps,
                torch_version=torch.__version__,
                cpu_bf16=results["cpu_bf16"],
            )
        )
    results["tasks"] = per_task
    results["prompts"] = sum(len(rows) for _, _, rows in work)
    results["load_after"] = os.getloadavg()
    if not args.quick and not args.no_record and results["prompts"]:
        for record in records:
            saved = save_record(settings.cache_dir, record)
            results[f"record_{SHORT[record.candidate]}"] = str(saved).replace(
                str(Path.home()), "~"
            )  # no machine paths
        accepted = [r for r in records if r.accepted]
        results["auto_chooses"] = (
            max(accepted, key=lambda r: r.speedup).candidate if accepted else "float32"
        )
    write_results("dtype", results)
    return results


if __name__ == "__main__":
    main()
