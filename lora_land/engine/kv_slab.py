"""The running batch's KV cache: per layer one preallocated slab with spare rows and columns.

Transformers' `DynamicLayer` concatenates on every decode step (a copy of the whole cache per
token), and merging rows into it meant padding and concatenating everything again. A
`SlabLayer` keeps keys and values in buffers [rows + spare, heads, columns + spare, dim] and
exposes `keys` / `values` as views of the used part: a decode step writes one column in
place; rows that join are written into spare rows (right-aligned to the shared last column,
their left padding zeroed) and a longer joiner takes spare columns on the left; dropping
common left padding moves a start index. Only when spare room runs out is the slab
reallocated (with more room, so copies are rare), and rows that leave are compacted (a copy
of the rows that stay, as before).

Zeroed padding matters: padded positions are masked out, but masked attention still
multiplies their values by zero, and stale memory could hold NaN. Buffers are allocated
uninitialised, and every column a row's views come to span is written or zeroed first: a
4,000-token prompt joining two short rows makes buffers of ~1 GB in float32 (spare rows
included), and zero-filling all of it stalled the running rows' step for ~0.7 s on a 2-core
CPU, while the pages that are never written are never touched.

This module stores tensors; it knows nothing about rows, masks or models.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

SPARE_ROWS = 4  # extra rows allocated beyond the batch
SPARE_RIGHT = 64  # extra columns for decode steps
SPARE_LEFT = 32  # extra columns for longer prompts joining


class SlabLayer(DynamicLayer):
    """A `DynamicLayer` whose tensors are views of preallocated buffers (see module doc)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
        self.reallocations = 0
        self._planned: tuple[int, int] | None = None  # (slots, columns) `prefault` will zero
        self._prefaulted = 0
        self._zeroed: tuple[int, int, int] | None = None  # (slots, from, to): known zeros
        rows, _, width, _ = keys.shape
        self._allocate(keys, values, rows + SPARE_ROWS, SPARE_LEFT, width + SPARE_RIGHT)

    # -- layout --------------------------------------------------------------------------
    def _allocate(self, keys, values, row_cap: int, left: int, right_cap: int) -> None:
        """New buffers holding `keys`/`values` at column `left`, with the given room."""
        rows, heads, width, dim = keys.shape
        shape = (row_cap, heads, left + right_cap, dim)
        self._k = _fresh_buffer(keys, shape)
        self._v = _fresh_buffer(values, shape)
        self._k[:rows, :, left : left + width] = keys
        self._v[:rows, :, left : left + width] = values
        self.rows, self.start, self.end = rows, left, left + width
        self._zeroed, self._prefaulted = None, 0  # new memory: nothing known or touched
        self._sync()

    def _grow(self, rows: int = 0, left: int = 0, right: int = 0) -> None:
        """Reallocate with at least this much more room (and some to spare)."""
        self.reallocations += 1
        width = self.end - self.start
        row_cap = max(self._k.shape[0], self.rows + rows + SPARE_ROWS)
        new_left = max(self.start, left + SPARE_LEFT, width // 4)
        right_cap = width + max(self._k.shape[2] - self.end, right + SPARE_RIGHT, width // 4)
        self._allocate(self.keys, self.values, row_cap, new_left, right_cap)

    def _sync(self) -> None:
        self.keys = self._k[: self.rows, :, self.start : self.end]
        self.values = self._v[: self.rows, :, self.start : self.end]

    @property
    def buffer(self) -> torch.Tensor:
        """The key buffer (tests check it is not reallocated when there is room)."""
        return self._k

    # -- what the model calls ----------------------------------------------------------------
    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Append the new columns of every row in place; returns the views."""
        n = key_states.shape[-2]
        if self.end + n > self._k.shape[2]:
            self._grow(right=n)
        self._k[: self.rows, :, self.end : self.end + n] = key_states
        self._v[: self.rows, :, self.end : self.end + n] = value_states
        self.end += n
        self._sync()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only rows `indices`, in that order (compacted to the top of the slab)."""
        kept = indices.tolist()
        if kept == list(range(len(kept))):
            self.rows = len(kept)  # the rows that stay are already on top: nothing to move
        else:
            keys, values = self.keys[indices], self.values[indices]
            self.rows = len(kept)
            self._k[: self.rows, :, self.start : self.end] = keys
            self._v[: self.rows, :, self.start : self.end] = values
        self._sync()

    # -- what the batch calls ----------------------------------------------------------------
    def append_rows(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Add rows whose columns end at the shared last column (left-padded to fit)."""
        n, _, width, _ = keys.shape
        wider = width - (self.end - self.start)
        if wider > 0 and self.start < wider:
            self._grow(left=wider)
        if self.rows + n > self._k.shape[0]:
            self._grow(rows=n)
        if wider > 0:  # the running rows get left padding in the columns they now span
            lo, hi, z = self.start - wider, self.start, self._zeroed
            if not (z and self.rows <= z[0] and z[1] <= lo and hi <= z[2]):  # not prefaulted
                self._k[: self.rows, :, lo:hi] = 0
                self._v[: self.rows, :, lo:hi] = 0
            self.start -= wider
        top, bottom = self.rows, self.rows + n
        self._k[top:bottom, :, self.start : self.end - width] = 0
        self._v[top:bottom, :, self.start : self.end - width] = 0
        self._k[top:bottom, :, self.end - width : self.end] = keys
        self._v[top:bottom, :, self.end - width : self.end] = values
        self.rows = bottom
        self._zeroed = None  # the joiners' columns may lie in it
        self._sync()

    def reserve(self, rows: int, width: int, steps: int) -> None:
        """Make room now for `rows` more rows spanning up to `width` columns that will join
        after about `steps` decode steps (a long prompt prefilling in chunks), and plan
        `prefault`: the join then moves no running row and writes into memory already
        touched, and the decode steps meanwhile do not outgrow the slab."""
        wider = max(0, width - (self.end - self.start))
        right = steps + SPARE_RIGHT
        if (
            self.start < wider
            or self.rows + rows > self._k.shape[0]
            or self.end + right > self._k.shape[2]
        ):
            self._grow(rows=rows, left=wider, right=right)
        self._planned = (min(self.rows + rows, self._k.shape[0]), wider)
        self._prefaulted = 0

    def prefault(self, columns: int) -> None:
        """Zero the next `columns` of the columns `reserve` planned, right to left, in every
        slot the join may use. They lie left of `start`, outside every view (so this never
        changes what a row sees); the join zeroes or writes what it shows anyway. Spread over
        the chunk steps, this moves the first touch of fresh pages out of the join's step."""
        if self._planned is None:
            return
        slots, total = self._planned
        done = min(total, self._prefaulted + columns)
        lo, hi = self.start - done, self.start - self._prefaulted
        if lo < 0 or lo >= hi:  # done, or the layout changed since `reserve`
            self._planned = None
            return
        self._k[:slots, :, lo:hi] = 0
        self._v[:slots, :, lo:hi] = 0
        self._prefaulted = done
        z = self._zeroed
        self._zeroed = (slots, lo, z[2]) if z and z[0] == slots and z[1] == hi else (slots, lo, hi)

    def cut_left(self, columns: int) -> None:
        """Forget the first `columns` columns (padding for every row)."""
        self.start += columns
        self._sync()

    def state(self) -> tuple:
        return self._k, self._v, self.rows, self.start, self.end

    def restore(self, state: tuple) -> None:
        """Undo an `append_rows` (it never changes what the running rows' views hold)."""
        self._k, self._v, self.rows, self.start, self.end = state
        self._zeroed = None
        self._sync()


class ReservedSlabLayer(SlabLayer):
    """The cache of one long prompt prefilled in chunks: its first update allocates room for
    the whole prompt, so later chunks write in place (a `DynamicLayer` concatenates: a copy
    of everything cached so far, in fresh memory, at every chunk)."""

    def __init__(self, columns: int) -> None:  # no tensors yet: allocated on the first update
        DynamicLayer.__init__(self)
        self.reallocations = 0
        self._planned, self._prefaulted, self._zeroed = None, 0, None
        self._columns = columns

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.dtype, self.device = key_states.dtype, key_states.device
            rows, heads, _, dim = key_states.shape
            shape = (rows, heads, self._columns + SPARE_RIGHT, dim)
            self._k = _fresh_buffer(key_states, shape)
            self._v = _fresh_buffer(value_states, shape)
            self.rows, self.start, self.end = rows, 0, 0
            self.is_initialized = True
        return super().update(key_states, value_states)


def reserved_cache(layers: int, columns: int) -> DynamicCache:
    """An empty cache for one row of `columns` tokens, every layer reserved (see above)."""
    cache = DynamicCache()
    cache.layers = [ReservedSlabLayer(columns) for _ in range(layers)]
    return cache


def _fresh_buffer(like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Uninitialised memory (tests fill it with NaN to prove nothing unwritten is read)."""
    return like.new_empty(shape)


def slab_cache(cache: DynamicCache) -> DynamicCache:
    """A cache holding `cache`'s tensors in slab layers (one copy, when a batch starts)."""
    slabbed = DynamicCache()
    slabbed.layers = [SlabLayer(layer.keys, layer.values) for layer in cache.layers]
    return slabbed
