"""Running one batch of rows to completion: left-padded prefill, then token-by-token decode.

Each `Row` carries its prompt ids, its adapter (or None for the base), its sampling settings
and its own text state: incremental decoding (multi-byte characters are only emitted once
complete), stop sequences (never emitted, and text that could still become a stop sequence
is held back while streaming), EOS and length limits, cancellation. Rows that finish leave
the batch (their KV-cache rows are dropped) so the others keep decoding at full speed.

This module runs the model; it does not queue, schedule or load adapters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from lora_land.engine.lora import DeviceAdapter, LoraContext
from lora_land.engine.sampling import next_token
from lora_land.engine.types import FinishReason


@dataclass
class Row:
    """One request inside a batch, with everything needed to decode and report it."""

    prompt_ids: list[int]
    adapter: DeviceAdapter | None
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    eos_ids: frozenset[int]
    decode: Callable[[list[int]], str]
    generator: torch.Generator | None = None
    cancel: threading.Event | None = None
    on_delta: Callable[[Row, str], None] | None = None  # called with newly safe text
    on_finish: Callable[[Row], None] | None = None
    ids: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0  # characters of `text` already handed to on_delta
    finish_reason: FinishReason | None = None
    first_token_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int) -> None:
        """Account for one sampled token; may finish the row."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if token in self.eos_ids:
            self._finish("eos")
            return
        self.ids.append(token)
        self.text = self.decode(self.ids)
        for stop in self.stop:
            at = self.text.find(stop)
            if at >= 0:
                self.text = self.text[:at]
                self._finish("stop")
                return
        if len(self.ids) >= self.max_new_tokens:
            self._finish("length")
            return
        self._emit(self._safe_length())

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _finish(self, reason: FinishReason) -> None:
        self.finish_reason = reason
        self.finished_at = time.perf_counter()
        self._emit(len(self.text))
        if self.on_finish is not None:
            self.on_finish(self)

    def finish_cancelled(self) -> None:
        self._finish("cancelled")

    def _safe_length(self) -> int:
        """How much of `text` can be shown: hold back an incomplete character or a prefix of
        a stop sequence that the next tokens may complete."""
        text = self.text
        end = len(text)
        while end > 0 and text[end - 1] == "\ufffd":
            end -= 1
        hold = 0
        for stop in self.stop:
            for k in range(min(len(stop) - 1, end), 0, -1):
                if text[end - k : end] == stop[:k]:
                    hold = max(hold, k)
                    break
        return max(end - hold, self.emitted)

    def _emit(self, upto: int) -> None:
        if upto > self.emitted and self.on_delta is not None:
            delta = self.text[self.emitted : upto]
            self.emitted = upto
            self.on_delta(self, delta)
        elif upto > self.emitted:
            self.emitted = upto


def _left_pad(rows: list[Row], pad_id: int, device: torch.device):
    width = max(len(r.prompt_ids) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.prompt_ids)
        input_ids[i, width - n :] = torch.tensor(row.prompt_ids, dtype=torch.long)
        mask[i, width - n :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids.to(device), mask.to(device), positions.to(device)


@torch.inference_mode()
def prefill_logits(
    model: torch.nn.Module,
    context: LoraContext,
    rows: list[Row],
    pad_id: int,
    device: torch.device,
    cache: DynamicCache | None = None,
) -> torch.Tensor:
    """Logits [B, V] for the next token after each row's prompt."""
    input_ids, mask, positions = _left_pad(rows, pad_id, device)
    context.set_rows([r.adapter for r in rows], device)
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=cache is not None,
        logits_to_keep=1,
    )
    return out.logits[:, -1, :].float()


@torch.inference_mode()
def run_batch(
    model: torch.nn.Module,
    context: LoraContext,
    rows: list[Row],
    pad_id: int,
    device: torch.device,
) -> None:
    """Decode every row until it finishes (EOS, stop, length or cancel)."""
    cache = DynamicCache(config=model.config)
    input_ids, mask, positions = _left_pad(rows, pad_id, device)
    context.set_rows([r.adapter for r in rows], device)
    try:
        logits = (
            model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            .logits[:, -1, :]
            .float()
        )
        last_pos = positions[:, -1:]
        active = list(rows)
        while True:
            for i, row in enumerate(active):  # 1. one token per row
                if row.cancelled():
                    row.finish_cancelled()
                else:
                    row.push(next_token(logits[i], row.temperature, row.top_p, row.generator))
            keep = [i for i, row in enumerate(active) if not row.finished]
            if not keep:
                return
            if len(keep) < len(active):  # 2. finished rows leave the batch
                index = torch.tensor(keep, dtype=torch.long, device=device)
                cache.batch_select_indices(index)
                mask, last_pos = mask[index], last_pos[index]
                active = [active[i] for i in keep]
                context.set_rows([r.adapter for r in active], device)
            next_ids = torch.tensor([[r.ids[-1]] for r in active], dtype=torch.long, device=device)
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            last_pos = last_pos + 1
            logits = (
                model(  # 3. one decode step for the rows still running
                    input_ids=next_ids,
                    attention_mask=mask,
                    position_ids=last_pos,
                    past_key_values=cache,
                    use_cache=True,
                )
                .logits[:, -1, :]
                .float()
            )
    finally:
        context.clear()
