"""Engine benchmark: adapter switching, cold loads and decode throughput against PEFT.

Run: `.venv/bin/python -m bench.engine` (writes `bench/results/engine.json`, prints a table).
On the embedded SmolLM2-135M-Instruct with 8 rank-8 and 8 rank-16 adapters (q_proj, v_proj,
random non-zero A and B) made with PEFT in a temporary directory, and PEFT in the same run:
- hot switch: what the engine does to serve a resident adapter for the next request
  (resolve + device-tier lookup and pin + per-row grouping + release) vs `set_adapter`;
- cold load: disk -> servable on the device (read + validate + lay out) vs `load_adapter`;
- single-request greedy decode tokens/s with an adapter over the bare base, for the engine
  and for PEFT (`PeftModel.generate` over the plain model's `generate`);
- a batch of 8 rows using 8 different adapters over 8 rows sharing one;
- continuous batching: time to first token of a short request submitted while a 128-token
  request streams, with rows joining at step boundaries vs the old run-to-the-end batches
  (`continuous=False`) and vs the short request alone (`--only continuous` runs just this
  case and merges its keys into the existing results file).
Numbers depend on the machine and its load; tests never assert on them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from bench.common import RESULTS_DIR, machine, print_table, summary_ms, time_ms, write_results
from lora_land.config import Settings
from lora_land.deployment import AdapterSource, BaseSource, Deployment
from lora_land.engine.engine import Engine
from lora_land.engine.prepare import prepare_embedded_model
from lora_land.engine.types import GenerationRequest

BASE = "smollm2-135m-instruct"
PROMPT = "Summarize the following news article in one sentence: The city council voted"
SECOND_PROMPT = "Classify the sentiment of this review: a warm, funny and moving film."


def make_adapters(model_dir: Path, root: Path, per_rank: int) -> dict[str, tuple[Path, int]]:
    """`per_rank` rank-8 and rank-16 PEFT adapters with random non-zero weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    specs = {f"r{r}_{i}": r for r in (8, 16) for i in range(per_rank)}
    model = None
    for name, r in specs.items():
        config = LoraConfig(
            r=r,
            lora_alpha=2 * r,
            target_modules=["q_proj", "v_proj"],
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        )
        if model is None:
            model = get_peft_model(base, config, adapter_name=name)
        else:
            model.add_adapter(name, config)
    model.save_pretrained(root)
    return {f"{BASE}/{name}": (root / name, r) for name, r in specs.items()}


def engine_cold_and_hot(engine: Engine, adapters: dict, reps: int) -> dict:
    store = engine.store
    cold = {8: [], 16: []}
    for _ in range(reps):
        for adapter_id, (_, rank) in adapters.items():
            store.device.remove(adapter_id)
            store.host.remove(adapter_id)
            start = time.perf_counter()
            _, host = store.prepare(adapter_id)
            store.acquire(adapter_id, host)
            cold[rank].append((time.perf_counter() - start) * 1000)
            store.release(adapter_id)
    resident = [a for a in adapters if store.state(a) == "hot"]
    cycle = iter(resident * 200)

    def switch() -> None:
        adapter_id = next(cycle)
        _, _ = store.prepare(adapter_id)
        device = store.acquire(adapter_id, None)
        engine.lora_context.set_rows([device], engine.device)
        store.release(adapter_id)

    hot = time_ms(switch, len(resident) * 200)
    engine.lora_context.clear()
    return {"cold8": cold[8], "cold16": cold[16], "hot": hot, "resident": len(resident)}


def peft_switch_and_load(model_dir: Path, adapters: dict, reps: int) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    items = list(adapters.items())
    model = PeftModel.from_pretrained(base, items[0][1][0], adapter_name="a0").eval()
    for i, (_, (path, _)) in enumerate(items[1:], start=1):
        model.load_adapter(path, adapter_name=f"a{i}")
    cycle = iter([f"a{i}" for i in range(len(items))] * 10)
    switch = time_ms(lambda: model.set_adapter(next(cycle)), len(items) * 10)
    load = {8: [], 16: []}
    for rep in range(reps):
        for i, (_, (path, rank)) in enumerate(items):
            name = f"cold{rep}_{i}"
            start = time.perf_counter()
            model.load_adapter(path, adapter_name=name)
            load[rank].append((time.perf_counter() - start) * 1000)
            model.delete_adapter(name)
    return {"switch": switch, "load8": load[8], "load16": load[16], "model": model}


def decode_pair(fn_a, fn_b, reps: int) -> tuple[float, float, float]:
    """Median tokens/s of a and b (`fn() -> (new_tokens, seconds)`), run alternately so load
    drift on a shared machine hits both, and the median of the per-round ratios a/b."""
    tps_a, tps_b = [], []
    for _ in range(reps):
        n, s = fn_a()
        tps_a.append(n / s)
        n, s = fn_b()
        tps_b.append(n / s)
    ratios = [a / b for a, b in zip(tps_a, tps_b, strict=True)]
    return statistics.median(tps_a), statistics.median(tps_b), statistics.median(ratios)


def engine_tps(engine: Engine, adapter_id: str | None, tokens: int, rows: list | None = None):
    requests = [GenerationRequest(PROMPT, a, max_new_tokens=tokens) for a in (rows or [adapter_id])]

    def run():
        results = engine.generate(requests)
        decode_s = max(r.total_s - r.ttft_s for r in results)
        return sum(r.completion_tokens - 1 for r in results), decode_s

    return run


def hf_tps(model, tokenizer, tokens: int):
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]

    def run():
        with torch.inference_mode():
            start = time.perf_counter()
            model.generate(input_ids=ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)
            first = time.perf_counter() - start
            start = time.perf_counter()
            model.generate(
                input_ids=ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False
            )
            return tokens - 1, time.perf_counter() - start - first

    return run


def second_request_ttft(
    engine: Engine, first_id: str, second_id: str | None, tokens: int, reps: int
):
    """TTFT (s) of an 8-token request submitted once a `tokens`-token request has streamed its
    first chunk: rows joining at step boundaries, the old run-to-the-end batches, and alone."""
    long = GenerationRequest(PROMPT, first_id, max_new_tokens=tokens)
    short = GenerationRequest(SECOND_PROMPT, second_id, max_new_tokens=8)
    ttft: dict[str, list[float]] = {"continuous": [], "run_to_end": [], "alone": []}
    for _ in range(reps):
        ttft["alone"].append(engine.generate([short])[0].ttft_s)
        for mode, continuous in (("continuous", True), ("run_to_end", False)):
            engine.runner.continuous = continuous  # the runner reads it at every step
            ttft[mode].append(_ttft_behind(engine, long, short))
    engine.runner.continuous = True
    return ttft


def _ttft_behind(engine: Engine, long: GenerationRequest, short: GenerationRequest) -> float:
    results = []
    thread = None
    for _ in engine.stream(long):
        if thread is None:  # the long request is generating: send the short one now
            thread = threading.Thread(target=lambda: results.extend(engine.generate([short])))
            thread.start()
    thread.join()
    return results[0].ttft_s


def continuous_results(ttft: dict[str, list[float]], tokens: int) -> dict:
    cont, old, alone = (statistics.median(ttft[k]) for k in ("continuous", "run_to_end", "alone"))
    return {
        "second_request_ttft_continuous_s_p50": cont,
        "second_request_ttft_run_to_end_s_p50": old,
        "second_request_ttft_alone_s_p50": alone,
        "second_request_ttft_run_to_end_over_continuous": old / cont,
        "second_request_ttft_continuous_over_alone": cont / alone,
        "details": {
            "second_request_ttft_s": {
                **{k: summary_ms([v * 1000 for v in vs]) for k, vs in ttft.items()},
                "first_request_tokens": tokens,
                "unit": "ms",
            }
        },
    }


def merge_results(name: str, new: dict) -> None:
    """Update `bench/results/<name>.json` with `new` keys, keeping the others."""
    path = RESULTS_DIR / f"{name}.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    details = {**results.get("details", {}), **new.get("details", {})}
    results.update(new)
    results["details"] = details
    write_results(name, results)


def main_continuous(settings: Settings, model_dir: Path, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        adapters = make_adapters(model_dir, Path(tmp), per_rank=1)
        sources = {
            a: AdapterSource(id=a, task=a.split("/")[1], path=p) for a, (p, _) in adapters.items()
        }
        deployment = Deployment(
            name="bench", base=BaseSource(name=BASE, source="embedded"), adapters=sources
        )
        engine = Engine.from_settings(settings, deployment)
        engine.eos_ids = frozenset()  # the first request runs its full length
        first, second = list(adapters)[:2]
        ttft = second_request_ttft(engine, first, second, args.long_tokens, args.reps)
        engine.close()
    results = continuous_results(ttft, args.long_tokens)
    print_table(
        f"TTFT of a request sent while a {args.long_tokens}-token request runs (p50, s)",
        [
            ("continuous", f"{results['second_request_ttft_continuous_s_p50']:.3f}", ""),
            ("run to end", f"{results['second_request_ttft_run_to_end_s_p50']:.3f}", ""),
            ("alone", f"{results['second_request_ttft_alone_s_p50']:.3f}", ""),
        ],
    )
    merge_results("engine", results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per decode run")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each measure")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: stable numbers on a shared machine)",
    )
    parser.add_argument(
        "--long-tokens", type=int, default=128, help="length of the running request (TTFT case)"
    )
    parser.add_argument(
        "--only",
        choices=["all", "continuous"],
        default="all",
        help="'continuous': only the TTFT case, merged into the existing results",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # the eager decode step: the compile's warm-up would load an adapter (no cold load left
    # to time) and take the CPU from the first measurements; bench.batching times the
    # compiled step
    settings = Settings.from_env(
        device="cpu" if not torch.cuda.is_available() else "auto", compile="off"
    )
    model_dir = prepare_embedded_model(settings.models_dir)
    if args.only == "continuous":
        main_continuous(settings, model_dir, args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        adapters = make_adapters(model_dir, Path(tmp), per_rank=8)
        sources = {
            a: AdapterSource(id=a, task=a.split("/")[1], path=p) for a, (p, _) in adapters.items()
        }
        deployment = Deployment(
            name="bench", base=BaseSource(name=BASE, source="embedded"), adapters=sources
        )
        engine = Engine.from_settings(settings, deployment)
        engine.eos_ids = frozenset()  # decode exactly --tokens tokens in every run
        ours = engine_cold_and_hot(engine, adapters, args.reps)
        first8 = next(a for a, (_, r) in adapters.items() if r == 8)
        lora_tps, base_tps, ratio = decode_pair(
            engine_tps(engine, first8, args.tokens),
            engine_tps(engine, None, args.tokens),
            args.reps,
        )
        mixed_tps, same_tps, mixed_ratio = decode_pair(
            engine_tps(engine, None, args.tokens, rows=list(adapters)[:8]),
            engine_tps(engine, None, args.tokens, rows=[first8] * 8),
            args.reps,
        )
        engine.close()
        from transformers import AutoModelForCausalLM

        plain = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        peft = peft_switch_and_load(model_dir, adapters, args.reps)
        peft["model"].set_adapter("a0")
        peft_tps, plain_tps, peft_ratio = decode_pair(
            hf_tps(peft["model"], engine.tokenizer, args.tokens),
            hf_tps(plain, engine.tokenizer, args.tokens),
            args.reps,
        )
    tps = {
        "base": base_tps,
        "lora": lora_tps,
        "plain": plain_tps,
        "peft": peft_tps,
        "mixed": mixed_tps,
        "same": same_tps,
        "ratio": ratio,
        "peft_ratio": peft_ratio,
        "mixed_ratio": mixed_ratio,
    }
    report(ours, peft, tps, args)
    main_continuous(settings, model_dir, args)


def report(ours: dict, peft: dict, tps: dict, args: argparse.Namespace) -> None:
    hot, cold8 = summary_ms(ours["hot"]), summary_ms(ours["cold8"])
    cold16 = summary_ms(ours["cold16"])
    pswitch, pload8 = summary_ms(peft["switch"]), summary_ms(peft["load8"])
    pload16 = summary_ms(peft["load16"])
    results = {
        "hot_switch_ms_p50": hot["p50"],
        "peft_set_adapter_ms_p50": pswitch["p50"],
        "cold_load_ms_p50": cold8["p50"],
        "peft_load_adapter_ms_p50": pload8["p50"],
        "cold_load_rank16_ms_p50": cold16["p50"],
        "peft_load_adapter_rank16_ms_p50": pload16["p50"],
        "adapter_over_base_throughput": tps["ratio"],
        "peft_adapter_over_base_throughput": tps["peft_ratio"],
        "engine_base_tokens_per_s": tps["base"],
        "engine_adapter_tokens_per_s": tps["lora"],
        "hf_base_tokens_per_s": tps["plain"],
        "peft_adapter_tokens_per_s": tps["peft"],
        "mixed8_over_same8_throughput": tps["mixed_ratio"],
        "details": {
            "hot_ms": hot,
            "cold_rank8_ms": cold8,
            "cold_rank16_ms": cold16,
            "peft_set_adapter_ms": pswitch,
            "peft_load_rank8_ms": pload8,
            "peft_load_rank16_ms": pload16,
            "tokens": args.tokens,
            "reps": args.reps,
            "torch_threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "machine": machine(),
        },
    }
    print_table(
        "engine vs PEFT (targets: hot <= 1 ms, cold r8 <= 50 ms, ratio >= 0.9)",
        [
            ("hot switch p50 (ms)", f"{hot['p50']:.4f}", f"PEFT set_adapter {pswitch['p50']:.4f}"),
            ("cold load r8 p50 (ms)", f"{cold8['p50']:.2f}", f"PEFT {pload8['p50']:.2f}"),
            ("cold load r16 p50 (ms)", f"{cold16['p50']:.2f}", f"PEFT {pload16['p50']:.2f}"),
            (
                "adapter/base tok/s",
                f"{tps['ratio']:.3f}",
                f"{tps['lora']:.1f} / {tps['base']:.1f}; PEFT {tps['peft_ratio']:.3f}",
            ),
            (
                "mixed 8 / same 8 tok/s",
                f"{tps['mixed_ratio']:.3f}",
                f"{tps['mixed']:.1f} / {tps['same']:.1f}",
            ),
        ],
    )
    write_results("engine", results)


if __name__ == "__main__":
    main()
