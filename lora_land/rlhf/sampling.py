"""Sampling K answers per prompt from the current policy through our own engine, batched.

RLHFlow draws half the answers at temperature 0.7 and half at 1.0; every answer gets its own
seed (recorded with it), so a sample set can be reproduced. The policy is served by a
`Deployment` built here in code from the loop's own adapter directory under a variant id
(`<base>/<task>@pi<t>`): users never pass paths. This module samples; it scores nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from lora_land.catalog import Task
from lora_land.config import EMBEDDED_BASE, Settings
from lora_land.deployment import AdapterSource, BaseSource, Deployment
from lora_land.engine.types import GenerationRequest, TextEngine
from lora_land.evaluation.bases import ResolvedBase
from lora_land.rlhf.pairing import Sample

TEMPERATURES = (0.7, 1.0)  # the first half of the K answers at 0.7, the rest at 1.0


def policy_deployment(base: ResolvedBase, task: str, adapters: Mapping[str, Path]) -> Deployment:
    """A deployment serving the loop's adapters: `{"pi0": dir, ...}` -> `<base>/<task>@pi0`."""
    source = "embedded" if base.name == EMBEDDED_BASE else base.source
    served = {}
    for variant, path in adapters.items():
        adapter_id = f"{base.name}/{task}@{variant}"
        served[adapter_id] = AdapterSource(id=adapter_id, task=task, path=Path(path))
    return Deployment("rlhf", BaseSource(base.name, source, base.name, base.hub_id), served)


def open_engine(settings: Settings, deployment: Deployment, max_batch: int = 16):
    """The real engine for the loop (queue sized for whole sample chunks; no compiled decode
    step: it serves batches of one or two rows, and the loop decodes in batches of 16)."""
    from lora_land.engine.engine import Engine

    tuned = dataclasses.replace(
        settings,
        max_batch_size=max_batch,
        max_queue=max(settings.max_queue, 4096),
        compile="off",
    )
    return Engine.from_settings(tuned, deployment)


def sample_seed(seed: int, iteration: int, prompt_index: int, j: int, k: int) -> int:
    """A distinct, reproducible seed per (run seed, iteration, prompt, answer)."""
    return (seed * 1_000_003 + iteration * 100_003 + prompt_index) * k + j


def sample_answers(
    engine: TextEngine,
    task: Task,
    rows: Sequence[Mapping],
    adapter_id: str,
    *,
    k: int,
    iteration: int,
    seed: int = 0,
    max_new_tokens: int = 128,
    temperatures: Sequence[float] = TEMPERATURES,
    chunk_prompts: int = 8,
    progress: bool = True,
) -> list[Sample]:
    """K answers per row, in chunks of `chunk_prompts` prompts (chunk x K requests at once)."""
    samples: list[Sample] = []
    bar = tqdm(
        total=len(rows) * k,
        desc=f"sample {task.name} t={iteration}",
        unit="answer",
        disable=not progress,
    )
    for start in range(0, len(rows), chunk_prompts):
        batch: list[tuple[int, str, float, int]] = []
        for index in range(start, min(start + chunk_prompts, len(rows))):
            prompt = task.render(rows[index], allow_blank=True)
            for j in range(k):
                temperature = temperatures[min(j * len(temperatures) // k, len(temperatures) - 1)]
                s = sample_seed(seed, iteration, index, j, k)
                batch.append((index, prompt, temperature, s))
        requests = [
            GenerationRequest(
                prompt=prompt,
                adapter_id=adapter_id,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                seed=s,
                truncate="left",
            )
            for _, prompt, temperature, s in batch
        ]
        for (index, prompt, temperature, s), result in zip(
            batch, engine.generate(requests), strict=True
        ):
            samples.append(
                Sample(
                    index,
                    prompt,
                    result.text,
                    temperature,
                    s,
                    result.finish_reason,
                    result.completion_tokens,
                )
            )
        bar.update(len(batch))
    bar.close()
    return samples


def score_samples(samples: Sequence[Sample], rows: Sequence[Mapping], reward) -> list[Sample]:
    """The samples with `reward` filled in by a `lora_land.rlhf.rewards.Reward`."""
    prompts, texts = [s.prompt for s in samples], [s.text for s in samples]
    values = reward.score(prompts, texts, [rows[s.prompt_index] for s in samples])
    return [dataclasses.replace(s, reward=float(v)) for s, v in zip(samples, values, strict=True)]
