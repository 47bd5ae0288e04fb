"""The slab KV cache holds exactly what padding and concatenating would, without copying the
running rows when rows join (while it has room)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lora_land.engine import kv_slab
from lora_land.engine.kv_slab import SPARE_LEFT, SPARE_ROWS, SlabLayer


@pytest.fixture(autouse=True, params=["fresh", "stale"])
def memory(request, monkeypatch):
    """Every test runs twice: on the allocator's memory, and on buffers full of NaN (stale
    memory): the views must never show a value the slab did not write or zero."""
    if request.param == "stale":
        monkeypatch.setattr(
            kv_slab, "_fresh_buffer", lambda like, shape: like.new_full(shape, float("nan"))
        )


def _kv(rows: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, 2, width, 3, generator=torch.Generator().manual_seed(seed))


def _left_pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(tensor, (0, 0, width - tensor.shape[2], 0))


def test_decode_steps_and_joins_match_pad_and_concatenate():
    keys = _kv(2, 5, 0)
    slab = SlabLayer(keys, keys * 2)
    want = keys
    for step in range(3):  # decode steps
        new = _kv(2, 1, 10 + step)
        got, _ = slab.update(new, new * 2)
        want = torch.cat([want, new], dim=2)
        assert torch.equal(got, want)
    shorter = _kv(1, 4, 20)  # a shorter prompt joins: left padding for it
    slab.append_rows(shorter, shorter * 2)
    want = torch.cat([want, _left_pad(shorter, want.shape[2])])
    assert torch.equal(slab.keys, want) and torch.equal(slab.values, want * 2)
    longer = _kv(2, want.shape[2] + 3, 30)  # a longer one: left padding for everyone else
    slab.append_rows(longer, longer * 2)
    want = torch.cat([_left_pad(want, longer.shape[2]), longer])
    assert torch.equal(slab.keys, want)
    assert torch.equal(slab.values, want * 2)


def test_a_join_within_the_spare_room_does_not_reallocate():
    keys = _kv(2, 6, 1)
    slab = SlabLayer(keys, keys)
    buffer = slab.buffer
    for i in range(SPARE_ROWS):
        joiner = _kv(1, 6 + min(i, SPARE_LEFT), 40 + i)
        slab.append_rows(joiner, joiner)
        slab.update(_kv(slab.rows, 1, 50 + i), _kv(slab.rows, 1, 60 + i))
    assert slab.buffer is buffer and slab.reallocations == 0
    assert slab.rows == 2 + SPARE_ROWS


def test_growing_past_the_spare_room_keeps_the_contents():
    keys = _kv(1, 3, 2)
    slab = SlabLayer(keys, keys)
    want = keys
    for i in range(SPARE_ROWS + 3):
        joiner = _kv(2, 3 + 20 * i, 70 + i)
        slab.append_rows(joiner, joiner)
        width = max(want.shape[2], joiner.shape[2])
        want = torch.cat([_left_pad(want, width), _left_pad(joiner, width)])
    new = _kv(slab.rows, 200, 99)
    slab.update(new, new)
    want = torch.cat([want, new], dim=2)
    assert slab.reallocations > 0
    assert torch.equal(slab.keys, want)


def test_rows_leave_and_common_padding_is_cut():
    keys = _kv(4, 6, 3)
    slab = SlabLayer(keys, keys)
    slab.batch_select_indices(torch.tensor([3, 1]))
    assert torch.equal(slab.keys, keys[[3, 1]])
    slab.cut_left(2)
    assert torch.equal(slab.keys, keys[[3, 1], :, 2:])


def test_restore_undoes_a_join():
    keys = _kv(2, 4, 4)
    slab = SlabLayer(keys, keys)
    state = slab.state()
    joiner = _kv(SPARE_ROWS + 2, 4 + SPARE_LEFT + 5, 5)  # forces a reallocation
    slab.append_rows(joiner, joiner)
    slab.restore(state)
    assert torch.equal(slab.keys, keys) and slab.rows == 2


def test_a_reserved_prefill_cache_writes_every_chunk_in_place():
    from lora_land.engine.kv_slab import reserved_cache

    cache = reserved_cache(layers=2, columns=10)
    layer = cache.layers[0]
    assert cache.get_seq_length() == 0
    want = None
    for step, width in enumerate((4, 4, 2)):  # chunks of one 10-token prompt
        new = _kv(1, width, 80 + step)
        got, _ = layer.update(new, new * 2)
        want = new if want is None else torch.cat([want, new], dim=2)
        if step == 0:
            buffer = layer.buffer
        assert torch.equal(got, want)
    assert layer.buffer is buffer and layer.reallocations == 0
    assert layer.get_seq_length() == 10 and cache.layers[1].get_seq_length() == 0


@pytest.mark.parametrize("per_step", [8, 3])  # all the joiner's columns touched, or part
def test_a_reserved_join_moves_no_running_row_and_prefaulting_shows_nothing(per_step):
    keys = _kv(2, 5, 6)
    slab = SlabLayer(keys, keys * 2)
    slab.reserve(rows=1, width=60, steps=8)  # a 60-token prompt joins after 8 steps
    buffer, grown = slab.buffer, slab.reallocations
    want = keys
    for step in range(8):  # decode steps while it prefills, touching its columns chunk by chunk
        before = slab.keys.clone()
        slab.prefault(per_step)
        assert torch.equal(slab.keys, before)  # outside every view
        new = _kv(2, 1, 90 + step)
        slab.update(new, new * 2)
        want = torch.cat([want, new], dim=2)
    joiner = _kv(1, 60, 99)
    slab.append_rows(joiner, joiner * 2)
    want = torch.cat([_left_pad(want, 60), joiner])
    assert slab.buffer is buffer and slab.reallocations == grown  # no copy at the join
    assert torch.equal(slab.keys, want) and torch.equal(slab.values, want * 2)
