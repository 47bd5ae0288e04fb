"""Prometheus metrics for one app instance (`/metrics`), on a registry of its own.

Requests by route, adapter and outcome; histograms of queue time, time to first token, time
per output token, latency, prompt and generated tokens; and, read from the engine at scrape
time, the adapter cache (hits, misses = loads, load time, evictions, bytes per tier), the
queue depth and the running rows. Tests build several apps, so nothing here is global.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from lora_land.engine.types import GenerationResult, TextEngine

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TOKENS = (1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class _EngineCollector:
    def __init__(self, engine: TextEngine) -> None:
        self.engine = engine

    def collect(self):
        stats = self.engine.stats()
        hits = CounterMetricFamily(
            "lora_land_adapter_cache_hits", "Adapter cache hits by tier", labels=["tier"]
        )
        for tier, n in sorted(stats.hits.items()):
            hits.add_metric([tier], n)
        yield hits
        yield CounterMetricFamily(
            "lora_land_adapter_cache_misses",
            "Adapter loads from disk or the Hub (cache misses)",
            value=stats.misses,
        )
        yield CounterMetricFamily(
            "lora_land_adapter_load_seconds", "Time spent loading adapters", value=stats.load_time_s
        )
        evictions = CounterMetricFamily(
            "lora_land_adapter_cache_evictions", "Adapter evictions by tier", labels=["tier"]
        )
        for tier, n in sorted(stats.evictions.items()):
            evictions.add_metric([tier], n)
        yield evictions
        used = GaugeMetricFamily(
            "lora_land_adapter_cache_bytes", "Adapter bytes held by tier", labels=["tier"]
        )
        for tier, n in sorted(stats.bytes_used.items()):
            used.add_metric([tier], n)
        yield used
        yield GaugeMetricFamily(
            "lora_land_adapters_resident", "Adapters on the device tier", value=len(stats.resident)
        )
        yield GaugeMetricFamily(
            "lora_land_queue_depth", "Requests waiting for the engine", value=stats.queue_depth
        )
        yield GaugeMetricFamily(
            "lora_land_running_rows",
            "Rows decoding in the engine's batch",
            value=getattr(stats, "running", 0),
        )


class Metrics:
    """The app's metrics; `observe` one finished request, `render` for `/metrics`."""

    def __init__(self, engine: TextEngine) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "lora_land_requests",
            "Generation requests by route, adapter and outcome",
            ["route", "adapter", "outcome"],
            registry=r,
        )
        self.queue_s = Histogram(
            "lora_land_queue_seconds",
            "Time waiting before the first prefill",
            buckets=_SECONDS,
            registry=r,
        )
        self.ttft_s = Histogram(
            "lora_land_ttft_seconds", "Time to first token", buckets=_SECONDS, registry=r
        )
        self.tpot_s = Histogram(
            "lora_land_time_per_output_token_seconds",
            "Decode time per output token after the first",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.latency_s = Histogram(
            "lora_land_request_latency_seconds",
            "Time from submission to the end",
            buckets=_SECONDS,
            registry=r,
        )
        self.prompt_tokens = Histogram(
            "lora_land_prompt_tokens", "Prompt tokens per request", buckets=_TOKENS, registry=r
        )
        self.generated_tokens = Histogram(
            "lora_land_generated_tokens",
            "Generated tokens per request",
            buckets=_TOKENS,
            registry=r,
        )
        r.register(_EngineCollector(engine))

    def outcome(self, route: str, adapter: str | None, outcome: str) -> None:
        self.requests.labels(route, adapter or "base", outcome).inc()

    def observe(self, route: str, result: GenerationResult) -> None:
        self.outcome(route, result.adapter_id, result.finish_reason)
        self.queue_s.observe(max(0.0, getattr(result, "queue_s", 0.0)))
        self.ttft_s.observe(max(0.0, result.ttft_s))
        self.latency_s.observe(max(0.0, result.total_s))
        if result.tokens_per_s > 0:
            self.tpot_s.observe(1.0 / result.tokens_per_s)
        self.prompt_tokens.observe(result.prompt_tokens)
        self.generated_tokens.observe(result.completion_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
