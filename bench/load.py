"""Load test: the real app (`app.py`, real engine, embedded model) on loopback, real clients.

Run: `.venv/bin/python -m bench.load` (or `make load`; writes `bench/results/load.json`).
Phases, all against one app process started here on a free port:
1. idle: a small request alone, a few times (the baseline for the ratios below);
2. mix: `--requests` (200) requests from `--clients` (32) concurrent clients across the
   base and every served adapter, mixing the official `openai` client (completions, chat,
   streamed and not) and `httpx` on LoRAX's `/generate` and `/generate_stream`, while a
   prober times `GET /health`;
3. burst: `--burst` (64) requests at once, past the queue: each is answered or refused with
   a 429 that carries a message;
4. abandon: `--abandon` (12) clients send 256-token requests and give up after 0.5 s; then
   one small request, timed against the idle baseline measured just before.
Keys: requests, answered, refused, lost (neither answered nor a proper 429), p50_ms, p95_ms,
ttft_p50_ms, tokens_per_s, health_ms_under_load (p95), after_abandon_over_idle_latency,
plus the machine's load average (the machine may be shared). Numbers depend on the
machine; tests never assert on them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import openai

from bench.common import machine, percentile, write_results
from lora_land.config import PROJECT_ROOT

BASE = "smollm2-135m-instruct"
PROMPTS = [
    "1, 2, 3, 4, 5,",
    "Classify the sentiment of this review: a warm, funny and moving film.",
    "Extract the named entities: Angela Merkel met Emmanuel Macron in Berlin.",
    "Once upon a time, in a lighthouse by the sea,",
]


@dataclass
class Outcome:
    kind: str  # "answered" | "refused" | "lost"
    ms: float
    ttft_ms: float | None = None
    tokens: int = 0
    note: str = ""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int) -> subprocess.Popen:
    env = dict(os.environ, LORA_LAND_PORT=str(port), LORA_LAND_RATE_LIMIT="0")
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit("the app exited before it was ready")
        time.sleep(0.5)
    process.kill()
    raise SystemExit("the app was not ready within 300 s")


def refused(status: int, body: str) -> bool:
    """A proper refusal: 429 with a message in it."""
    return status == 429 and ("queue" in body or "try again" in body)


def one_request(url: str, i: int, models: list[str], tokens: int) -> Outcome:
    model = models[i % len(models)]
    prompt = PROMPTS[i % len(PROMPTS)]
    kind = i % 4
    start = time.perf_counter()
    first: float | None = None
    try:
        if kind in (0, 1):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="-", max_retries=0, timeout=300)
            if kind == 0:
                out = client.completions.create(
                    model=model, prompt=prompt, max_tokens=tokens, temperature=0
                )
                n = out.usage.completion_tokens
            else:
                stream = client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=tokens,
                    temperature=0,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                n = 0
                for chunk in stream:
                    if first is None and chunk.choices and chunk.choices[0].delta.content:
                        first = time.perf_counter()
                    if chunk.usage is not None:
                        n = chunk.usage.completion_tokens
        else:
            adapter = None if model == BASE else model
            body = {
                "inputs": prompt,
                "parameters": {"adapter_id": adapter, "max_new_tokens": tokens},
            }
            if kind == 2:
                body["parameters"]["details"] = True
                r = httpx.post(f"{url}/generate", json=body, timeout=300)
                if r.status_code != 200:
                    return _http_failure(r.status_code, r.text, start)
                n = r.json()["details"]["generated_tokens"]
            else:
                n = 0
                with httpx.stream("POST", f"{url}/generate_stream", json=body, timeout=300) as r:
                    if r.status_code != 200:
                        r.read()
                        return _http_failure(r.status_code, r.text, start)
                    for line in r.iter_lines():
                        if line.startswith("data:"):
                            event = json.loads(line[5:])
                            if first is None and event["token"]["text"]:
                                first = time.perf_counter()
                            if event.get("details"):
                                n = event["details"]["generated_tokens"]
    except openai.APIStatusError as e:
        return _http_failure(e.status_code, json.dumps(e.body), start)
    except Exception as e:  # a transport error or a broken reply: lost
        return Outcome("lost", _ms(start), note=f"{type(e).__name__}: {e}"[:200])
    ttft = (first - start) * 1000 if first is not None else None
    return Outcome("answered", _ms(start), ttft, n)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _http_failure(status: int, body: str, start: float) -> Outcome:
    kind = "refused" if refused(status, body) else "lost"
    return Outcome(kind, _ms(start), note=f"{status}: {body[:160]}")


def small(url: str) -> float:
    start = time.perf_counter()
    body = {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 4}}
    r = httpx.post(f"{url}/generate", json=body, timeout=300)
    r.raise_for_status()
    return _ms(start)


def probe_health(url: str, stop: threading.Event, samples: list[float]) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            start = time.perf_counter()
            client.get(f"{url}/health").raise_for_status()
            samples.append(_ms(start))
            stop.wait(0.2)


def run_many(url: str, count: int, clients: int, models: list[str], tokens: int, offset=0):
    with ThreadPoolExecutor(clients) as pool:
        return list(
            pool.map(lambda i: one_request(url, i, models, tokens), range(offset, offset + count))
        )


def abandon(url: str, count: int) -> None:
    def give_up(i: int) -> None:
        body = {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 256}}
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(f"{url}/generate", json=body, timeout=0.5)

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(give_up, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--burst", type=int, default=64)
    parser.add_argument("--abandon", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=16, help="max new tokens per request")
    args = parser.parse_args()
    port = free_port()
    load_before = os.getloadavg()
    app = start_app(port)
    url = f"http://127.0.0.1:{port}"
    try:
        models = [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
        idle = [small(url) for _ in range(3)]
        stop, health = threading.Event(), []
        prober = threading.Thread(target=probe_health, args=(url, stop, health), daemon=True)
        prober.start()
        start = time.perf_counter()
        mix = run_many(url, args.requests, args.clients, models, args.tokens)
        mix_s = time.perf_counter() - start
        burst = run_many(url, args.burst, args.burst, models, args.tokens, offset=args.requests)
        stop.set()
        prober.join()
        idle_again = statistics.median(small(url) for _ in range(3))
        abandon(url, args.abandon)
        after = small(url)
    finally:
        app.terminate()
        app.wait(30)
    everything = mix + burst
    answered = [o for o in everything if o.kind == "answered"]
    lost = [o for o in everything if o.kind == "lost"]
    mix_answered = [o for o in mix if o.kind == "answered"]
    ttfts = [o.ttft_ms for o in answered if o.ttft_ms is not None]
    results = {
        "requests": len(everything),
        "answered": len(answered),
        "refused": sum(o.kind == "refused" for o in everything),
        "lost": len(lost),
        "lost_examples": [o.note for o in lost[:5]],
        "refusal_examples": [o.note for o in everything if o.kind == "refused"][:2],
        "p50_ms": percentile([o.ms for o in mix_answered], 50),
        "p95_ms": percentile([o.ms for o in mix_answered], 95),
        "ttft_p50_ms": percentile(ttfts, 50),
        "tokens_per_s": sum(o.tokens for o in mix_answered) / mix_s,
        "health_ms_under_load": percentile(health, 95),
        "health_ms_max": max(health) if health else float("nan"),
        "health_probes": len(health),
        "idle_small_ms": statistics.median(idle),
        "idle_small_ms_before_abandon": idle_again,
        "after_abandon_small_ms": after,
        "after_abandon_over_idle_latency": after / idle_again,
        "mix_seconds": mix_s,
        "sizes": vars(args),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "machine": machine(),
        "models": len(models),
        "route_mix": "a quarter each: openai completions, openai chat (streamed), LoRAX "
        "/generate, LoRAX /generate_stream",
    }
    write_results("load", results)


if __name__ == "__main__":
    main()
