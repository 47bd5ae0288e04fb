"""Batching benchmark: decode speed against the memory-bandwidth roofline, many adapters per
batch, concurrency, fairness under a flood, and a long prompt joining a running batch.

Run: `.venv/bin/python -m bench.batching [--quick]` (writes `bench/results/batching.json`,
prints a table). Everything runs on the embedded SmolLM2-135M-Instruct in the serving dtype
(`LORA_LAND_DTYPE`, `--dtype`), with random rank-8 / rank-16 PEFT adapters on q_proj and
v_proj made in a temporary directory. Every headline figure is a ratio of two measurements
taken in this run, so a busy machine still gives meaningful numbers; the JSON also records
the load average and thread counts it ran under.

- `decode_tok_s_batch1` (one request with an adapter, greedy, EOS ignored) over
  `roofline_tok_s_batch1` (weight bytes in the serving dtype / read bandwidth measured
  here): `decode_over_roofline` (target >= 0.6); `hf_generate_tok_s_batch1` (transformers'
  `generate`, stock linears) for reference; on a CPU, `onednn_over_aten_decode`: the same
  decode through oneDNN's linears over PyTorch's stock (BLAS) ones, runs alternating (the
  engine serves float32 through whichever it measured faster at load, see
  `lora_land/engine/cpu_linear.py`; `cpu_linear` says which); `linears_only_tok_s_batch1`
  runs only the model's linear layers in order on one token (`linears_only_over_roofline`:
  how close the matmuls come to the bandwidth limit; `decode_over_linears_only`: what the
  rest of a step costs); `gemv_read_gb_s_<in>x<out>`: the read rate of one token through
  each linear shape alone (small matrices pay a fixed cost per call that big ones amortise;
  q/k/v and gate/up are read as one matrix each, see `lora_land/engine/packed.py`), and
  `packed_over_unpacked_decode`: the same decode with every projection read on its own;
  `lean_over_full_forward_decode`: decode steps as served (the lean decoder,
  `lora_land/engine/decoder.py`, compiled or not) over transformers' full forward;
  `compiled_over_eager_decode`: the compiled step (`lora_land/engine/compiled.py`,
  `decode_step`, its background warm-up `compile_s`) over the eager lean step, alternating;
- `mixed32_over_same32_throughput`: decode tokens/s of 32 rows over 32 distinct adapters vs
  32 rows on one adapter (target >= 0.85); `mixed8_over_same8_throughput` likewise;
- `concurrent_over_sequential_throughput`: 16 streaming clients over 8 adapters, 64 new
  tokens each, aggregate tokens/s vs the same requests one at a time (target >= 4), with
  `ttft_ms_p50` / `ttft_ms_p95` of the concurrent run;
- `flood_ttft_over_idle`: p95 time to first token of requests for a quiet adapter while 24
  requests flood another adapter, over its idle p95 (target <= 2); the flood runs with a
  16-row budget and at most 12 rows per adapter, so it queues and fairness matters;
- `long_join_max_step_ms_over_median`: the longest gap between tokens of a running row while
  a 4,000-token prompt joins (prefilled `prefill_chunk_tokens` per step), over the median
  gap (target <= 3).
`--quick` shrinks every size (a smoke test runs it); its figures mean little.
Tests never assert on these numbers.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from bench.common import percentile, write_results
from bench.engine import make_adapters
from lora_land.config import Settings
from lora_land.deployment import AdapterSource, BaseSource, Deployment
from lora_land.engine.batch import Row, RunningBatch
from lora_land.engine.compiled import CompiledDecoder
from lora_land.engine.cpu_linear import (
    OneDnnBf16Linear,
    OneDnnLinear,
    aten_linears,
    linear_kind,
    onednn_available,
    pack_bf16,
)
from lora_land.engine.decoder import full_forward, lean_decoder, use_step
from lora_land.engine.engine import Engine, in_passing_thread
from lora_land.engine.packed import PackedLinear, packs, unpacked
from lora_land.engine.prepare import prepare_embedded_model
from lora_land.engine.types import GenerationRequest

BASE = "smollm2-135m-instruct"
PROMPT = "Summarize the following news article in one sentence: The city council voted"
FILLER = "The committee reviewed the budget, the schedule and the public comments again. "


@dataclass(frozen=True)
class Sizes:
    adapters: int  # distinct adapters made (half rank 8, half rank 16)
    decode_tokens: int  # batch-1 decode length
    mixed_rows: int  # rows of the mixed-vs-same comparison (32)
    mixed_steps: int
    clients: int  # concurrent clients (16)
    client_adapters: int  # over this many adapters (8)
    client_tokens: int  # new tokens per client (64)
    flood: int  # flood requests (24)
    quiet: int  # quiet requests measured (idle, then during the flood)
    long_prompt_tokens: int  # the joining prompt (4,000)
    repeats: int  # interleaved repeats of the mixed-vs-same comparison (median)

    @classmethod
    def pick(cls, quick: bool) -> Sizes:
        if quick:
            return cls(4, 8, 4, 3, 4, 2, 6, 6, 2, 200, 1)
        return cls(32, 64, 32, 16, 16, 8, 64, 24, 16, 4000, 3)


def read_bandwidth_gb_s(megabytes: int = 512, repeat: int = 5) -> tuple[float, float]:
    """(median, best) GB/s of summing a buffer far larger than the caches."""
    data = torch.ones(megabytes * 1024 * 1024 // 4, dtype=torch.float32)
    data.sum()  # touch it once
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        data.sum()
        rates.append(data.numel() * 4 / (time.perf_counter() - start) / 1e9)
    del data
    return statistics.median(rates), max(rates)


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes read per decode step: every parameter once (tied embeddings counted once); a
    linear serving bf16 weights (`bf16-weights`) reads its bf16 copy, not its float32 weight
    (a tied embedding then reads one row per token: not counted)."""
    seen: set[int] = set()
    total = 0
    for m in model.modules():
        if _weight_itemsize(m) == 2 and m.weight.data_ptr() not in seen:
            seen.add(m.weight.data_ptr())
            total += m.weight.numel() * 2
    for param in model.parameters():
        if param.data_ptr() not in seen:
            seen.add(param.data_ptr())
            total += param.numel() * param.element_size()
    return total


def linears_only_tok_s(model: torch.nn.Module, reps: int = 10) -> tuple[float, float]:
    """(tokens/s, GB/s) of running only the model's linear layers, in model order, on one
    token: the decode rate if attention, norms and Python cost nothing. Set against the
    roofline it says how far the matmuls themselves are from the bandwidth limit; set
    against the real decode, what the rest of a step costs."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]  # LoRA's bases
    dtype = next(model.parameters()).dtype
    inputs = {n: torch.randn(1, 1, n, dtype=dtype) for n in {m.in_features for m in linears}}
    nbytes = sum(m.weight.numel() * _weight_itemsize(m) for m in linears)
    with torch.inference_mode():
        for m in linears:  # warm: oneDNN primitives made
            m(inputs[m.in_features])
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            for m in linears:
                m(inputs[m.in_features])
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return 1.0 / seconds, nbytes / seconds / 1e9


def _weight_itemsize(m: torch.nn.Module) -> int:
    """Bytes per weight a forward reads (a `bf16-weights` linear reads its bf16 copy)."""
    if isinstance(m, OneDnnBf16Linear) or (isinstance(m, PackedLinear) and m._pack.bf16):
        return 2
    return m.weight.element_size() if isinstance(m, torch.nn.Linear) else 4


def _reads(model: torch.nn.Module) -> set[tuple[type, int, int]]:
    """(standalone class, in, out) of each matrix a decode step reads: a packed group's
    (`lora_land/engine/packed.py`) as one matrix."""
    shapes = set()
    for m in model.modules():
        if isinstance(m, PackedLinear):
            kind = OneDnnBf16Linear if m._pack.bf16 else OneDnnLinear
            shapes.add((kind, m._pack.in_features, m._pack.out_features))
        elif isinstance(m, torch.nn.Linear):
            shapes.add((type(m), m.in_features, m.out_features))
    return shapes


def gemv_read_gb_s(model: torch.nn.Module, budget_bytes: int = 200_000_000) -> dict[str, float]:
    """GB/s of one token through each distinct linear shape of the model, on the path the
    model serves (its linear class): enough copies of each shape that the weights come from
    memory, not cache, as they do in a 30-layer decode. Small matrices pay a fixed cost per
    call (dispatch, thread fork/join) that big ones amortise, so this says which shapes keep
    the decode below the roofline."""
    dtype = next(model.parameters()).dtype
    out: dict[str, float] = {}
    with torch.inference_mode():
        for cls, i, o in sorted(_reads(model), key=lambda k: (k[1] * k[2], k[1])):
            copies = [cls(i, o, bias=False, dtype=dtype)]
            nbytes = i * o * _weight_itemsize(copies[0])
            copies += [cls(i, o, bias=False, dtype=dtype) for _ in range(budget_bytes // nbytes)]
            for m in copies:
                if isinstance(m, OneDnnBf16Linear):
                    m._packed = pack_bf16(m.weight)
            x = torch.randn(1, 1, i, dtype=dtype)
            for m in copies[:3]:
                m(x)
            rounds = max(1, 20 * budget_bytes // (nbytes * len(copies)) // 10)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(rounds):
                    for m in copies:
                        m(x)
                times.append((time.perf_counter() - start) / (rounds * len(copies)))
            out[f"{i}x{o}"] = nbytes / statistics.median(times) / 1e9
            del copies
    return out


def decode_batch1_vs_other_linears(
    engine: Engine, adapter_id: str, tokens: int, reps: int = 3
) -> tuple[float, float | None, float | None, float | None, float | None]:
    """Median batch-1 decode tokens/s as served; through the other float32 linear (PyTorch's
    stock linears when the engine serves oneDNN's, oneDNN's when it serves the stock ones, see
    `cpu_linear.keep_faster_float32`); with sibling projections unpacked; and with decode
    steps through transformers' full forward instead of the lean decoder; and through the
    eager lean step when the compiled one is served (each None when there is no such
    alternative; the linear and packing alternatives run the eager step, whose projections
    are modules). Runs alternate, so drifts in the machine's speed hit all alike."""
    request = GenerationRequest(PROMPT, adapter_id, max_new_tokens=tokens)
    served, other, separate, full, eager = [], [], [], [], []
    packed = bool(packs(engine.model))
    step = lean_decoder(engine.model)
    lean = step is not None
    eager_step = step.lean if isinstance(step, CompiledDecoder) else None
    serves_aten = linear_kind(engine.model) == "aten"
    for _ in range(reps):
        served.append(engine.generate([request])[0].tokens_per_s)
        if eager_step is not None:
            with use_step(engine.model, eager_step):
                eager.append(engine.generate([request])[0].tokens_per_s)
        swap = onednn_float32 if serves_aten and onednn_available() else aten_linears
        with use_step(engine.model, eager_step or step), swap(engine.model) as swapped:
            if swapped:
                other.append(engine.generate([request])[0].tokens_per_s)
        if packed:  # packing bf16 copies is torch work: in a passing thread, as below
            block = unpacked(engine.model)
            in_passing_thread(block.__enter__)
            try:
                separate.append(engine.generate([request])[0].tokens_per_s)
            finally:
                in_passing_thread(lambda b=block: b.__exit__(None, None, None))
        if lean:
            with full_forward(engine.model):
                full.append(engine.generate([request])[0].tokens_per_s)
    median = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    return (
        statistics.median(served),
        median(other),
        median(separate),
        median(full),
        median(eager),
    )


@contextmanager
def onednn_float32(model: torch.nn.Module):
    """Within the block the model's stock float32 linears compute through oneDNN (the
    alternative to an engine that measured BLAS faster); restored on exit."""
    linears = [
        m for m in model.modules() if type(m) is torch.nn.Linear and m.weight.dtype == torch.float32
    ]
    for m in linears:
        m.__class__ = OneDnnLinear
    try:
        yield len(linears)
    finally:
        for m in linears:
            m.__class__ = torch.nn.Linear


def hf_generate_batch1(engine: Engine, tokens: int, reps: int = 3) -> float:
    """Decode tokens/s of transformers' own `generate` on the same weights (no adapter)."""
    ids = torch.tensor([engine._encode(PROMPT)], device=engine.device)
    kwargs = {"do_sample": False, "pad_token_id": engine.pad_id, "eos_token_id": None}

    def timed(n: int) -> float:
        start = time.perf_counter()
        with engine._model_lock, torch.inference_mode():
            engine.model.generate(input_ids=ids, max_new_tokens=n, min_new_tokens=n, **kwargs)
        return time.perf_counter() - start

    rates = []
    for _ in range(reps):
        first, full = timed(1), timed(tokens)
        rates.append((tokens - 1) / max(full - first, 1e-9))
    return statistics.median(rates)


def decode_throughput(engine: Engine, adapter_ids: list[str], steps: int) -> float:
    """Decode tokens/s of one running batch whose row i uses adapter_ids[i]."""
    store = engine.store
    adapters = [store.acquire(a, store.prepare(a)[1]) for a in adapter_ids]
    try:
        prompt = engine._encode(PROMPT)
        rows = [
            Row(
                prompt_ids=list(prompt),
                adapter=adapter,
                max_new_tokens=steps + 10,
                temperature=0.0,
                top_p=1.0,
                stop=(),
                eos_ids=frozenset(),
                decode=engine._decode,
            )
            for adapter in adapters
        ]
        batch = RunningBatch(
            engine.model, engine.lora_context, engine.pad_id, engine.device, engine._model_lock
        )
        batch.add(rows)
        batch.step()  # warm
        start = time.perf_counter()
        for _ in range(steps):
            batch.step()
        return len(rows) * steps / (time.perf_counter() - start)
    finally:
        for adapter_id in adapter_ids:
            store.release(adapter_id)


def stream_all(engine: Engine, requests: list[GenerationRequest]) -> tuple[float, list]:
    """Stream every request from its own thread at once; (seconds, results)."""
    results: list = [None] * len(requests)
    streams = [engine.stream(r) for r in requests]  # all queued before any is read
    start = time.perf_counter()

    def read(i: int) -> None:
        for chunk in streams[i]:
            if chunk.result is not None:
                results[i] = chunk.result

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, results


def concurrent_vs_sequential(engine: Engine, adapter_ids: list[str], sizes: Sizes) -> dict:
    requests = [
        GenerationRequest(
            f"{PROMPT} (client {i})",
            adapter_ids[i % sizes.client_adapters],
            max_new_tokens=sizes.client_tokens,
        )
        for i in range(sizes.clients)
    ]
    seconds, results = stream_all(engine, requests)
    concurrent = sum(r.completion_tokens for r in results) / seconds
    start = time.perf_counter()
    sequential_results = [engine.generate([r])[0] for r in requests]
    sequential = sum(r.completion_tokens for r in sequential_results) / (
        time.perf_counter() - start
    )
    ttft = [r.ttft_s * 1000 for r in results]
    return {
        "concurrent_tok_s": concurrent,
        "sequential_tok_s": sequential,
        "concurrent_over_sequential_throughput": concurrent / sequential,
        "ttft_ms_p50": percentile(ttft, 50),
        "ttft_ms_p95": percentile(ttft, 95),
    }


def flood(engine: Engine, flood_id: str, quiet_id: str, sizes: Sizes) -> dict:
    """Quiet-adapter TTFT while a flood for another adapter exceeds the slot budget (16 rows,
    at most 12 per adapter: the flood queues, and fairness decides who gets freed slots)."""
    runner = engine.runner
    saved = runner.max_batch, runner.max_rows_per_adapter
    runner.max_batch = max(2, min(16, sizes.flood * 2 // 3))
    runner.max_rows_per_adapter = max(1, runner.max_batch * 3 // 4)
    try:
        return {
            **_flood(engine, flood_id, quiet_id, sizes),
            "flood_max_batch": runner.max_batch,
            "flood_max_rows_per_adapter": runner.max_rows_per_adapter,
        }
    finally:
        runner.max_batch, runner.max_rows_per_adapter = saved


def _flood(engine: Engine, flood_id: str, quiet_id: str, sizes: Sizes) -> dict:
    quiet = GenerationRequest("Say hello to the team.", quiet_id, max_new_tokens=4)
    engine.generate([quiet])  # warm: its adapter loaded, first-call costs paid
    idle = [engine.generate([quiet])[0].ttft_s * 1000 for _ in range(sizes.quiet)]
    flood_requests = [
        GenerationRequest(f"{PROMPT} (flood {i})", flood_id, max_new_tokens=sizes.client_tokens)
        for i in range(sizes.flood)
    ]
    done = threading.Event()

    def run_flood() -> None:
        stream_all(engine, flood_requests)
        done.set()

    flooder = threading.Thread(target=run_flood)
    flooder.start()
    time.sleep(0.05)  # the flood is queued and running
    during = []
    while len(during) < sizes.quiet and not done.is_set():
        during.append(engine.generate([quiet])[0].ttft_s * 1000)
    flooder.join()
    idle_p95 = percentile(idle, 95)
    during_p95 = percentile(during, 95)
    return {
        "idle_ttft_ms_p95": idle_p95,
        "flood_ttft_ms_p95": during_p95,
        "flood_ttft_n": len(during),
        "idle_ttft_ms_p50": percentile(idle, 50),
        "flood_ttft_ms_p50": percentile(during, 50),
        "flood_ttft_over_idle": during_p95 / idle_p95,
    }


def long_join(engine: Engine, adapter_ids: list[str], sizes: Sizes) -> dict:
    """Gaps between the tokens of running rows while a long prompt joins."""
    running = [
        GenerationRequest(f"{PROMPT} (running {i})", a, max_new_tokens=1024)
        for i, a in enumerate(adapter_ids[:2])
    ]
    cancel = threading.Event()
    stamps: list[tuple[float, int]] = []
    streams = [engine.stream(r, cancel) for r in running]
    joined = threading.Event()

    def follow(i: int) -> None:
        for chunk in streams[i]:
            if i == 0:
                stamps.append((time.perf_counter(), chunk.completion_tokens))
            if cancel.is_set():
                break

    threads = [threading.Thread(target=follow, args=(i,)) for i in range(len(streams))]
    for thread in threads:
        thread.start()
    while len(stamps) < 12:
        time.sleep(0.01)
    words = FILLER.split()
    text = " ".join(words[i % len(words)] for i in range(int(sizes.long_prompt_tokens * 0.9)))
    long_request = GenerationRequest(f"{text}\nSummarize:", adapter_ids[2], max_new_tokens=4)
    prompt_tokens = engine.count_tokens(long_request.prompt)
    joined_at = time.perf_counter()
    long_result = engine.generate([long_request])[0]
    joined.set()
    after = len(stamps)
    while len(stamps) < after + 8:
        time.sleep(0.01)
    cancel.set()
    for thread in threads:
        thread.join(30)
    gaps = []  # per token: time since the previous chunk over the tokens it brought
    for (t0, n0), (t1, n1) in itertools.pairwise(stamps):
        if n1 > n0:
            gaps.append(((t1 - t0) * 1000 / (n1 - n0), t1))
    window = [g for g, t in gaps if joined_at <= t <= joined_at + long_result.total_s + 1]
    median = statistics.median(g for g, _ in gaps)
    worst = max(window) if window else max(g for g, _ in gaps)
    return {
        "long_prompt_tokens": prompt_tokens,
        "long_join_step_ms_median": median,
        "long_join_step_ms_max": worst,
        "long_join_max_step_ms_over_median": worst / median,
        "long_join_ttft_ms": long_result.ttft_s * 1000,
    }


def make_engine(settings: Settings, adapters: dict) -> Engine:
    deployment = Deployment(
        name="bench",
        base=BaseSource(name=BASE, source="embedded"),
        adapters={  # sorted: the first (the compile's warm-up adapter) is the decode's
            adapter_id: AdapterSource(id=adapter_id, task=adapter_id.split("/")[-1], path=path)
            for adapter_id, (path, _) in sorted(adapters.items())
        },
    )
    engine = Engine.from_settings(settings, deployment)
    engine.eos_ids = frozenset()  # every request decodes exactly its max_new_tokens
    engine.wait_compiled()  # measure what is served once the background compile is done
    return engine


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--dtype", default=None, help="serving dtype (default: settings)")
    parser.add_argument("--name", default="batching", help="results file name")
    args = parser.parse_args(argv)
    sizes = Sizes.pick(args.quick)
    overrides: dict = {
        "max_batch_size": max(sizes.mixed_rows, sizes.clients),
        "max_queue": 4 * max(sizes.mixed_rows, sizes.flood + sizes.quiet),
        "device_cache_bytes": 1024 * 1024 * 1024,
        "max_prompt_chars": 64_000,
        "max_new_tokens_limit": 1024,
    }
    if args.dtype:
        overrides["dtype"] = args.dtype
    settings = Settings.from_env(**overrides)
    model_dir = prepare_embedded_model(settings.models_dir)
    results: dict = {"quick": args.quick, "sizes": sizes.__dict__}
    results["load_before"] = os.getloadavg()
    results["torch_threads"] = torch.get_num_threads()
    results["cpu_count"] = os.cpu_count()
    results["prefill_chunk_tokens"] = settings.prefill_chunk_tokens  # -1: auto
    with tempfile.TemporaryDirectory() as tmp:
        adapters = in_passing_thread(
            lambda: make_adapters(model_dir, Path(tmp), per_rank=sizes.adapters // 2)
        )
        ids = sorted(adapters)
        engine = make_engine(settings, adapters)
        try:
            results["dtype"] = str(next(engine.model.parameters()).dtype).replace("torch.", "")
            if linear_kind(engine.model) == "onednn-bf16":
                results["dtype"] = "bf16-weights"  # float32 model, linears read bf16 copies
            results["device"] = str(engine.device)
            results["prefill_chunk_tokens"] = engine.runner.prefill_chunk_tokens
            results.update(measure(engine, ids, sizes))
        finally:
            engine.close()
    results["load_after"] = os.getloadavg()
    write_results(args.name, results)
    return results


def measure(engine: Engine, ids: list[str], sizes: Sizes) -> dict:
    out: dict = {}
    # torch work of this thread runs in passing threads: a long-lived second OpenMP pool
    # beside the engine worker's would slow the engine (see `engine.in_passing_thread`)
    median_bw, best_bw = in_passing_thread(
        lambda: read_bandwidth_gb_s(64 if sizes.adapters <= 4 else 512)
    )
    nbytes = weight_bytes(engine.model)
    out["read_bandwidth_gb_s"] = median_bw
    out["read_bandwidth_gb_s_best"] = best_bw
    out["weight_bytes"] = nbytes
    out["roofline_tok_s_batch1"] = median_bw * 1e9 / nbytes
    linears_tok_s, linears_gb_s = in_passing_thread(lambda: linears_only_tok_s(engine.model))
    out["linears_only_tok_s_batch1"] = linears_tok_s
    out["linears_only_read_gb_s"] = linears_gb_s
    out["linears_only_over_roofline"] = linears_tok_s / out["roofline_tok_s_batch1"]
    budget = 4_000_000 if sizes.adapters <= 4 else 200_000_000  # --quick: a smoke run
    for shape, rate in in_passing_thread(lambda: gemv_read_gb_s(engine.model, budget)).items():
        out[f"gemv_read_gb_s_{shape}"] = rate  # in over out features, batch 1
    fast, other, separate, full, eager = decode_batch1_vs_other_linears(
        engine, ids[0], sizes.decode_tokens
    )
    out["cpu_linear"] = linear_kind(engine.model)
    out["decode_step"] = engine.decode_step  # "compiled" (engine/compiled.py) or "eager"
    step = lean_decoder(engine.model)
    if isinstance(step, CompiledDecoder):
        out["compile_s"] = step.compile_s  # the warm-up, in the background after load
        out["compiled_graphs"] = step.compiles()
    if eager is not None:  # the same decode through the eager lean step
        out["decode_tok_s_batch1_eager"] = eager
        out["compiled_over_eager_decode"] = fast / eager
    out["decode_tok_s_batch1"] = fast
    out["decode_over_roofline"] = out["decode_tok_s_batch1"] / out["roofline_tok_s_batch1"]
    out["decode_over_linears_only"] = fast / linears_tok_s
    if other is not None and out["cpu_linear"] == "aten":  # served BLAS; oneDNN's instead
        out["decode_tok_s_batch1_onednn_linear"] = other
        out["onednn_over_aten_decode"] = other / fast
    elif other is not None:  # served oneDNN; PyTorch's stock (BLAS) linears instead
        out["decode_tok_s_batch1_aten_linear"] = other
        out["onednn_over_aten_decode"] = fast / other
    if full is not None:  # decode steps through transformers' whole forward
        out["decode_tok_s_batch1_full_forward"] = full
        out["lean_over_full_forward_decode"] = fast / full
    if separate is not None:  # q/k/v and gate/up read one matrix each vs one per projection
        out["decode_tok_s_batch1_unpacked"] = separate
        out["packed_over_unpacked_decode"] = fast / separate
    with aten_linears(engine.model):  # transformers' generate as users run it
        out["hf_generate_tok_s_batch1"] = in_passing_thread(
            lambda: hf_generate_batch1(engine, sizes.decode_tokens)
        )
    for rows, key in ((sizes.mixed_rows, "mixed32"), (min(8, sizes.mixed_rows), "mixed8")):
        # interleaved repeats, median of each: this VM's speed drifts by tens of percent
        runs = [
            (
                in_passing_thread(
                    partial(decode_throughput, engine, [ids[0]] * rows, sizes.mixed_steps)
                ),
                in_passing_thread(
                    partial(decode_throughput, engine, ids[:rows], sizes.mixed_steps)
                ),
            )
            for _ in range(sizes.repeats)
        ]
        same = statistics.median(s for s, _ in runs)
        mixed = statistics.median(m for _, m in runs)
        out[f"{key}_tok_s"] = mixed
        out[f"same{key[5:]}_tok_s"] = same
        out[f"{key}_over_same{key[5:]}_throughput"] = mixed / same
    out.update(concurrent_vs_sequential(engine, ids, sizes))
    out.update(flood(engine, ids[0], ids[1], sizes))
    out.update(long_join(engine, ids, sizes))
    return out


if __name__ == "__main__":
    main()
