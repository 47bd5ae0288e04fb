"""The running batch: rows decode together one token per step; rows join and leave between steps.

Each `Row` carries its prompt ids, its adapter (or None for the base), its sampling settings
and its own text state: incremental decoding (a short window of ids per token, never the
whole text; multi-byte characters are only emitted once complete), stop sequences (searched
only in the new text) (never emitted, and text that could still become a stop sequence
is held back while streaming), EOS and length limits, cancellation.

`RunningBatch` is iteration-level (continuous) batching: new rows are prefilled on their own
(left-padded; prompts longer than the step budget in chunks, one per step) and merged into the
running KV cache (`kv_slab`: written into spare rows, no copy of the running rows) at a step
boundary, right-aligned so all rows share the last column; each row keeps its own attention
mask and positions, so a row's tokens do not depend on which rows share its steps. Rows that
finish leave the batch (their KV-cache rows are dropped, and columns that became padding for
every row are cut).
Every step samples all rows at once (`sampling.sample_tensor`, one host transfer).

This module runs the model; it does not queue, schedule or load adapters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from lora_land.engine.decoder import lean_decoder
from lora_land.engine.kv_slab import reserved_cache, slab_cache
from lora_land.engine.lora import DeviceAdapter, LoraContext
from lora_land.engine.sampling import next_token, sample_tensor
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
    # reshapes this row's logits [V] before sampling (top-k, repetition penalty), or None
    adjust: Callable[[torch.Tensor, Row], torch.Tensor] | None = None
    on_delta: Callable[[Row, str], None] | None = None  # called with newly safe text
    on_finish: Callable[[Row], None] | None = None
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # one per entry of `ids`
    error: Exception | None = None  # set when this row failed on its own (see `fail`)
    text: str = ""
    _prefix: int = 0  # ids[_prefix:_read] is decoded again with each new token (context)
    _read: int = 0  # ids before this are part of `text`
    emitted: int = 0  # characters of `text` already handed to on_delta
    finish_reason: FinishReason | None = None
    first_token_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int, logprob: float = 0.0) -> None:
        """Account for one sampled token (and its log-probability); may finish the row."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if token in self.eos_ids:
            self._finish("eos")
            return
        self.ids.append(token)
        self.logprobs.append(logprob)
        searched = len(self.text)
        self.text += self._new_text()
        if self._cut_at_stop(searched):
            self._finish("stop")
            return
        if len(self.ids) >= self.max_new_tokens:
            self._finish("length")
            return
        self._emit(self._safe_length())

    def _new_text(self) -> str:
        """The text the newest token completes, decoding only a short window of recent ids
        (as vLLM's incremental detokenizer does): `decode(ids[prefix:])` minus
        `decode(ids[prefix:read])`. An incomplete character ("\ufffd" at the end) is kept
        pending until the tokens completing it arrive, so the cost per token stays constant."""
        prefix_text = self.decode(self.ids[self._prefix : self._read])
        new_text = self.decode(self.ids[self._prefix :])
        if len(new_text) <= len(prefix_text) or new_text.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self.ids)
        return new_text[len(prefix_text) :]

    def _pending_text(self) -> str:
        """What the ids after the last complete character decode to (maybe "\ufffd")."""
        prefix_text = self.decode(self.ids[self._prefix : self._read])
        return self.decode(self.ids[self._prefix :])[len(prefix_text) :]

    def _cut_at_stop(self, searched: int) -> bool:
        """Search only the text that could contain a new stop (from `searched` minus the
        longest stop's length); on a hit, cut the text there."""
        hits = []
        for stop in self.stop:
            at = self.text.find(stop, max(0, searched - len(stop) + 1))
            if at >= 0:
                hits.append(at)
        if not hits:
            return False
        self.text = self.text[: min(hits)]
        return True

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _finish(self, reason: FinishReason) -> None:
        if reason != "stop" and self._read < len(self.ids):
            self.text += self._pending_text()  # an incomplete character shows as "\ufffd"
        self.finish_reason = reason
        self.finished_at = time.perf_counter()
        self._emit(len(self.text))
        if self.on_finish is not None:
            self.on_finish(self)

    def finish_cancelled(self) -> None:
        self._finish("cancelled")

    def fail(self, error: Exception) -> None:
        """End this row alone with `error` (its sampling or decoding failed)."""
        self.error = error
        self.finish_reason = "cancelled"
        self.finished_at = time.perf_counter()
        if self.on_finish is not None:
            self.on_finish(self)

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


def shared_prompts(rows: list[Row]) -> tuple[list[Row], list[int] | None]:
    """(rows to prefill, for each row the index of the prefilled row it copies), None when
    every prompt differs. Rows with the same prompt tokens and the same adapter (K samples of
    one prompt, as the RLHF loop samples) are prefilled once and their cache copied."""
    first: dict[tuple, int] = {}
    index = [first.setdefault((tuple(r.prompt_ids), id(r.adapter)), len(first)) for r in rows]
    if len(first) == len(rows):
        return rows, None
    unique: list[Row] = [None] * len(first)  # type: ignore[list-item]
    for row, i in zip(rows, index, strict=True):
        if unique[i] is None:
            unique[i] = row
    return unique, index


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


def can_merge_rows(model: torch.nn.Module) -> bool:
    """Whether rows can join a running batch: every cache layer is a plain `DynamicLayer` or a
    sliding-window one (kept in full here, see `new_cache`); linear-attention or other
    layers cannot be re-padded on the left."""
    cache = DynamicCache(config=model.config)
    kinds = (DynamicLayer, DynamicSlidingWindowLayer)
    return bool(cache.layers) and all(type(layer) in kinds for layer in cache.layers)


def new_cache(model: torch.nn.Module) -> DynamicCache:
    """An empty cache rows can join. Sliding-window layers are kept as full layers: a row's
    tokens sit contiguously up to the shared last column, so the distance between two columns
    is the distance between the tokens for every row, and the model's sliding-window mask
    (made from `config.sliding_window` and column positions) hides what it should; only
    memory beyond the window is spent."""
    cache = DynamicCache(config=model.config)
    if all(type(layer) is DynamicLayer for layer in cache.layers):
        return cache
    return DynamicCache()  # every layer a full DynamicLayer (created on first use)


def _pad_left(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [missing, 0]
    return F.pad(tensor, pad)


def prefill_budget(setting: int, device: torch.device) -> int | None:
    """Tokens of prompt per step: the setting, or for -1 what keeps a chunk within about
    two decode steps (a decode step reads every weight once; a CPU computes a 32-token
    chunk in about that time, a GPU a 512-token one); None: no chunking."""
    if setting < 0:
        return 512 if device.type == "cuda" else 32
    return setting or None


@dataclass
class _Prefill:
    """A row whose prompt is longer than the step budget, prefilled a chunk per step."""

    row: Row
    cache: DynamicCache
    groups: object  # its LoRA plan
    done: int = 0  # prompt tokens already in `cache`


class RunningBatch:
    """Rows decoding together. `add` prefills and merges new rows, `step` decodes one token for
    every row; both return the rows that finished (they have already left the batch).

    With a `prefill_chunk_tokens` budget, a row joining running rows whose prompt is longer than
    the budget is prefilled in chunks of at most that many tokens, one chunk after each decode
    step (its
    own cache, no padding, the right positions), so running rows keep getting a token every
    step while it joins; it merges and samples its first token when its prompt is done. With
    no running row there is nobody to keep waiting: prompts are prefilled at once.
    `rows` lists running rows, then rows still prefilling.

    The model is only touched under `lock` (held for one forward at a time), and the LoRA
    context is set right before each forward, so other users of the model can take turns."""

    def __init__(
        self,
        model: torch.nn.Module,
        context: LoraContext,
        pad_id: int,
        device: torch.device,
        lock: AbstractContextManager | None = None,
        prefill_chunk_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.context = context
        self.pad_id = pad_id
        self.device = device
        self.lock = lock if lock is not None else nullcontext()
        self.prefill_chunk_tokens = prefill_chunk_tokens or None
        self._rows: list[Row] = []  # running rows, in the cache's row order
        self._pending: list[_Prefill] = []
        self.steps = 0  # decode steps run so far (prefills not counted)
        self.prefill_chunks = 0  # chunks of long prompts run so far
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None  # [B, W]: 1 for real tokens, 0 for left padding
        self._last_pos: torch.Tensor | None = None  # [B, 1]: position of each row's last token
        self._lora_groups: list = []  # the running rows' LoRA plan (LoraContext.groups)
        # cache layers of a row (`new_cache`'s count), for long prompts' reserved caches
        self._cache_layers = len(DynamicCache(config=model.config).layers)

    @property
    def rows(self) -> list[Row]:
        """Running rows, then rows still being prefilled in chunks."""
        return self._rows + [p.row for p in self._pending] if self._pending else self._rows

    def __len__(self) -> int:
        return len(self._rows) + len(self._pending)

    @property
    def width(self) -> int:
        """Columns of the shared KV cache (the longest row plus the others' left padding)."""
        return 0 if self._mask is None else int(self._mask.shape[1])

    def _groups(self, adapters: list[DeviceAdapter | None]) -> list:
        scratch = LoraContext()
        scratch.set_rows(adapters, self.device)
        return scratch.groups

    @contextmanager
    def _turn(self, groups: list):
        """The model for one forward, with the LoRA plan `groups` set."""
        with self.lock:
            self.context.groups = groups
            try:
                yield
            finally:
                self.context.clear()

    def _forward(self, groups: list, **inputs) -> torch.Tensor:
        with self._turn(groups):
            out = self.model(**inputs, use_cache=True)
        return out.logits[:, -1, :].float()

    def _decode_forward(self, groups: list, **inputs) -> torch.Tensor:
        """A decode step's logits: through the lean decoder where it serves the model
        (`engine/decoder.py`), else the full forward."""
        decoder = lean_decoder(self.model)
        if decoder is None:
            return self._forward(groups, **inputs)
        with self._turn(groups):
            return decoder(**inputs)

    @torch.inference_mode()
    def add(self, rows: list[Row]) -> list[Row]:
        """Prefill `rows` on their own, merge them in, sample their first token. Rows longer
        than the chunk budget only start their prefill here (see `step`)."""
        budget = self.prefill_chunk_tokens if self._rows else None  # nobody to keep waiting
        long = [r for r in rows if budget is not None and len(r.prompt_ids) > budget]
        rows = [r for r in rows if not any(r is x for x in long)]
        for row in long:
            groups = self._groups([row.adapter])
            cache = reserved_cache(self._cache_layers, len(row.prompt_ids))
            self._pending.append(_Prefill(row, cache, groups))
        if long and self._cache is not None:  # room for the joiners now, touched chunk by chunk
            width = max(len(p.row.prompt_ids) for p in self._pending)
            left = sum(len(p.row.prompt_ids) - p.done for p in self._pending)
            steps = -(-left // budget)  # one decode step per chunk until the last one joins
            for layer in self._cache.layers:
                layer.reserve(rows=len(self._pending), width=width, steps=steps)
        if not rows:
            return self._advance_prefills() if not self._rows else []
        cache = new_cache(self.model)
        unique, index = shared_prompts(rows)
        input_ids, mask, positions = _left_pad(unique, self.pad_id, self.device)
        logits = self._forward(
            self._groups([r.adapter for r in unique]),
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            logits_to_keep=1,
        )
        if index is not None:  # rows with the same prompt and adapter share one prefill
            select = torch.tensor(index, dtype=torch.long, device=self.device)
            cache.batch_select_indices(select)
            mask, positions, logits = mask[select], positions[select], logits[select]
        self._merge(rows, cache, mask, positions[:, -1:])
        return self._sample(logits, rows)

    @torch.inference_mode()
    def step(self) -> list[Row]:
        """One decode step for every running row, then one chunk of waiting long prompts;
        returns the rows that finished."""
        finished = self._decode_step() if self._rows else []
        return finished + self._advance_prefills()

    def _decode_step(self) -> list[Row]:
        next_ids = torch.tensor(
            [[r.ids[-1]] for r in self._rows], dtype=torch.long, device=self.device
        )
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self._rows), 1))], dim=-1)
        self._last_pos = self._last_pos + 1
        logits = self._decode_forward(
            self._lora_groups,
            input_ids=next_ids,
            attention_mask=self._mask,
            position_ids=self._last_pos,
            past_key_values=self._cache,
        )
        self.steps += 1
        return self._sample(logits, self._rows)

    def _advance_prefills(self) -> list[Row]:
        """Spend one step's token budget on the oldest waiting long prompts; a prompt that
        completes joins the batch with its first token. A failing chunk fails its row only."""
        budget = self.prefill_chunk_tokens or 0
        if not self._rows:  # no running row to keep streaming: finish the prompts at once
            budget = sum(len(p.row.prompt_ids) - p.done for p in self._pending)
        finished: list[Row] = []
        while self._pending and budget > 0:
            job = self._pending[0]
            row = job.row
            take = min(budget, len(row.prompt_ids) - job.done)
            try:
                if row.finished or row.cancelled():
                    if not row.finished:
                        row.finish_cancelled()
                    self._pending.pop(0)
                    finished.append(row)
                    continue
                logits = self._chunk(job, take)
            except Exception as e:
                self._pending.pop(0)
                if not row.finished:
                    row.fail(e)
                finished.append(row)
                continue
            budget -= take
            if self._cache is not None:
                for layer in self._cache.layers:
                    layer.prefault(take)
            if job.done == len(row.prompt_ids):
                self._pending.pop(0)
                length = job.done
                mask = torch.ones((1, length), dtype=torch.long, device=self.device)
                last = torch.full((1, 1), length - 1, dtype=torch.long, device=self.device)
                self._merge([row], job.cache, mask, last)
                finished += self._sample(logits, [row])
        return finished

    def _chunk(self, job: _Prefill, take: int) -> torch.Tensor:
        start, end = job.done, job.done + take
        ids = torch.tensor([job.row.prompt_ids[start:end]], dtype=torch.long, device=self.device)
        logits = self._forward(
            job.groups,
            input_ids=ids,
            attention_mask=torch.ones((1, end), dtype=torch.long, device=self.device),
            position_ids=torch.arange(start, end, device=self.device)[None, :],
            past_key_values=job.cache,
            logits_to_keep=1,
        )
        job.done = end
        self.prefill_chunks += 1
        return logits

    def abandon(self) -> list[Row]:
        """Drop every row (after a failed forward); returns the rows that were running or
        prefilling."""
        rows = self.rows
        self._rows, self._pending, self._lora_groups = [], [], []
        self._cache = self._mask = self._last_pos = None
        return rows

    def _sample(self, logits: torch.Tensor, rows: list[Row]) -> list[Row]:
        """One token for each of `rows` (the last len(rows) rows of the batch), sampled for
        all rows at once with one host transfer; one row's failure (its logits hook,
        sampling or decoding) ends that row only."""
        live: list[int] = []
        scores: list[torch.Tensor] = []
        for i, row in enumerate(rows):
            try:
                if row.cancelled():
                    row.finish_cancelled()
                    continue
                scores.append(row.adjust(logits[i], row) if row.adjust else logits[i])
                live.append(i)
            except Exception as e:
                if not row.finished:
                    row.fail(e)
        if live:
            for i, picked in zip(live, self._pick(logits, scores, rows, live), strict=True):
                row = rows[i]
                try:
                    if isinstance(picked, Exception):
                        raise picked
                    row.push(*picked)
                except Exception as e:
                    if not row.finished:
                        row.fail(e)
        return self._drop_finished()

    def _pick(
        self, logits: torch.Tensor, scores: list[torch.Tensor], rows: list[Row], live: list[int]
    ) -> list[tuple[int, float] | Exception]:
        """(token, log-probability under the unadjusted logits) for each live row; a row
        whose own sampling fails gets its exception instead."""
        if len(live) == logits.shape[0] and all(rows[i].adjust is None for i in live):
            batch, plain = logits, logits
        else:
            index = torch.tensor(live, dtype=torch.long, device=logits.device)
            plain = logits.index_select(0, index)
            batch = torch.stack([s.float() for s in scores])
        settings = [(rows[i].temperature, rows[i].top_p, rows[i].generator) for i in live]
        try:
            tokens = sample_tensor(batch, *zip(*settings, strict=True))
        except Exception:  # find the row that fails, sample the others one by one
            return [self._pick_one(plain[k], scores[k], *settings[k]) for k in range(len(live))]
        logprobs = torch.log_softmax(plain.float(), dim=-1).gather(1, tokens[:, None])[:, 0]
        both = torch.stack([tokens.double(), logprobs.double()]).tolist()  # one transfer
        return [(int(t), lp) for t, lp in zip(both[0], both[1], strict=True)]

    @staticmethod
    def _pick_one(plain, score, temperature, top_p, generator) -> tuple[int, float] | Exception:
        try:
            token = next_token(score, temperature, top_p, generator)
            return token, float(torch.log_softmax(plain.float(), dim=-1)[token])
        except Exception as e:
            return e

    def _merge(self, rows: list[Row], cache: DynamicCache, mask, last_pos) -> None:
        """Append the prefilled `rows` below the running ones, right-aligned in the shared
        slab cache (no copy of the running rows' cache unless the slab must grow)."""
        if self._cache is None:
            self._cache, self._mask, self._last_pos = slab_cache(cache), mask, last_pos
        else:
            width = max(self.width, int(mask.shape[1]))
            masks = torch.cat([_pad_left(self._mask, width, 1), _pad_left(mask, width, 1)])
            positions = torch.cat([self._last_pos, last_pos])
            states = [layer.state() for layer in self._cache.layers]
            try:
                for slab, new in zip(self._cache.layers, cache.layers, strict=True):
                    slab.append_rows(new.keys, new.values)
            except BaseException:  # a failure leaves the running rows as they were
                for slab, state in zip(self._cache.layers, states, strict=False):
                    slab.restore(state)
                raise
            self._mask, self._last_pos = masks, positions
        self._rows = self._rows + list(rows)
        self._lora_groups = self._groups([r.adapter for r in self._rows])

    @torch.inference_mode()  # the slab cache is compacted in place (the runner calls this too)
    def _drop_finished(self) -> list[Row]:
        """Remove finished rows (running or still prefilling); returns them."""
        gone = [p.row for p in self._pending if p.row.finished]
        if gone:
            self._pending = [p for p in self._pending if not p.row.finished]
        return gone + self._drop_finished_running()

    def _drop_finished_running(self) -> list[Row]:
        finished = [r for r in self._rows if r.finished]
        if not finished:
            return []
        keep = [i for i, r in enumerate(self._rows) if not r.finished]
        if not keep:
            self._rows, self._lora_groups = [], []
            self._cache = self._mask = self._last_pos = None
            return finished
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self._cache.batch_select_indices(index)
        self._mask, self._last_pos = self._mask[index], self._last_pos[index]
        self._rows = [self._rows[i] for i in keep]
        self._lora_groups = self._groups([r.adapter for r in self._rows])
        self._cut_common_padding()
        return finished

    def _cut_common_padding(self) -> None:
        """Drop leading cache columns that are padding for every remaining row."""
        used = self._mask.bool().any(dim=0)
        first = int(torch.argmax(used.int()))
        if first == 0:
            return
        for layer in self._cache.layers:
            layer.cut_left(first)
        self._mask = self._mask[:, first:]


def run_batch(
    model: torch.nn.Module,
    context: LoraContext,
    rows: list[Row],
    pad_id: int,
    device: torch.device,
) -> None:
    """Decode every row until it finishes (EOS, stop, length or cancel), none joining."""
    batch = RunningBatch(model, context, pad_id, device)
    batch.add(rows)
    while batch.rows:
        batch.step()
