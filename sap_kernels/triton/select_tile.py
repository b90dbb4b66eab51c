"""Selection of the segments that lie whole inside one tile, on chip: one read of the tile.

Every entry gets a sort key of two int64 words: (its piece of the tile, dead or live, |w|
descending) then (the rest of |w|, its index in the tile). After a bitonic sort of the tile,
the live entries of each segment come first, largest |w| first and, among equal |w|, lower index
first; an entry is kept when its rank in its segment is below the segment's k. Entries of the
segments that cross the tile's ends take no part (topk_mask.py selects those), but the tile
takes the first radix round's histogram of those selected grid-wide, from the same read.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .finalize import live_values
from .tiles import segment_ids

# hi word of an entry that takes no part: above 2 * piece + 1 for every piece of a tile
NOT_WHOLE = tl.constexpr(1 << 17)
# Bins of a radix round (8 bits of the key; the rounds of topk_mask.py and select_grid.py too).
BINS = tl.constexpr(256)


@triton.jit
def _side(N_DIMS: tl.constexpr, d: tl.constexpr):
    """Bit d of the flat index, along its dimension of the [2] * N_DIMS hypercube."""
    return tl.reshape(tl.arange(0, 2), [1] * (N_DIMS - d - 1) + [2] + [1] * d)


@triton.jit
def _exchange(hi, lo, descending_blocks, d: tl.constexpr, N_DIMS: tl.constexpr):
    """One compare-exchange step between entries whose flat indices differ in bit d: the pair
    ends up ascending, or descending where descending_blocks is 1."""
    axis: tl.constexpr = N_DIMS - 1 - d
    # the partner's value: x ^ (x ^ partner), the xor over the two entries of the axis
    hi_other = hi ^ tl.xor_sum(hi, axis, keep_dims=True)
    lo_other = lo ^ tl.xor_sum(lo, axis, keep_dims=True)
    greater = (hi > hi_other) | ((hi == hi_other) & (lo > lo_other))
    take = greater != ((descending_blocks ^ _side(N_DIMS, d)) != 0)
    return tl.where(take, hi_other, hi), tl.where(take, lo_other, lo)


@triton.jit
def sort_pairs(hi, lo, LOG_N: tl.constexpr):
    """(hi, lo) int64 pairs of a 2^LOG_N block sorted ascending, hi first (bitonic network)."""
    shape: tl.constexpr = hi.shape
    hi = tl.reshape(hi, [2] * LOG_N)
    lo = tl.reshape(lo, [2] * LOG_N)
    for stage in tl.static_range(1, LOG_N + 1):
        if stage < LOG_N:
            descending_blocks = _side(LOG_N, stage)
        else:
            descending_blocks = tl.zeros([1] * LOG_N, tl.int32)
        for step in tl.static_range(stage):
            hi, lo = _exchange(hi, lo, descending_blocks, stage - 1 - step, LOG_N)
    return tl.reshape(hi, shape), tl.reshape(lo, shape)


@triton.jit
def selection_key(x, KEY_BITS: tl.constexpr):
    """The bits of |x| as an int64 (monotone in |x|): 15 for 16-bit dtypes, 31, or 63."""
    if KEY_BITS == 15:
        key = x.to(tl.int16, bitcast=True).to(tl.int64) & 0x7FFF
    elif KEY_BITS == 31:
        key = x.to(tl.int32, bitcast=True).to(tl.int64) & 0x7FFFFFFF
    else:
        key = x.to(tl.int64, bitcast=True) & 0x7FFFFFFFFFFFFFFF
    return key


@triton.jit
def add_histogram(histograms, slot, digits, match):
    """Adds a piece's histogram of the digits (where match) into its slot's of `histograms`
    ([slots, BINS] int64): only the bins it fills (after the first rounds most pieces fill none)."""
    counts = tl.histogram(digits, BINS, mask=match).to(tl.int64)
    tl.atomic_add(histograms + slot * BINS + tl.arange(0, BINS), counts, mask=counts > 0)


@triton.jit
def _add_first_histogram(
    histograms, offsets, s, in_piece, key, BLOCK_MAX: tl.constexpr, KEY_BITS: tl.constexpr
):  # fmt: skip
    """Adds the first radix round's histogram (the top 8 key bits) of the live entries in_piece
    to the slot of their segment s when it is selected grid-wide (longer than BLOCK_MAX), so that
    the rounds of select_grid.py start at the second (integer sums: their order does not matter)."""
    seg_start = tl.load(offsets + s)
    if tl.load(offsets + s + 1) - seg_start > BLOCK_MAX:
        shift: tl.constexpr = KEY_BITS - 8
        add_histogram(histograms, seg_start // BLOCK_MAX, (key >> shift).to(tl.int32), in_piece)


@triton.jit
def _select_in_tile_kernel(
    buffer, mask, offsets, tile_first, tile_last, keep, out, numel, histograms,
    HAS_MASK: tl.constexpr, KEY_BITS: tl.constexpr, TILE: tl.constexpr, LOG_TILE: tl.constexpr,
    BLOCK: tl.constexpr, BLOCK_MAX: tl.constexpr, HAS_GRID: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    tile_start = t * TILE
    tile_end = tl.minimum(tile_start + TILE, numel)
    j = tl.arange(0, TILE)
    offs = tile_start + j
    valid = offs < numel
    x, live = live_values(buffer, mask, offs, valid, HAS_MASK)
    key = selection_key(x, KEY_BITS)
    first = tl.load(tile_first + t)
    last = tl.load(tile_last + t)
    sid, piece_start, _, _ = segment_ids(offsets, first, last, tile_start, TILE, BLOCK)
    if HAS_GRID:  # the first and last segments may be long: their first round's histograms
        _add_first_histogram(histograms, offsets, first, live & (sid == first), key, BLOCK_MAX,
                             KEY_BITS)  # fmt: skip
        if last != first:
            _add_first_histogram(histograms, offsets, last, live & (sid == last), key,
                                 BLOCK_MAX, KEY_BITS)  # fmt: skip
    first_end = tl.load(offsets + first + 1)
    first_whole = (tl.load(offsets + first) >= tile_start) & (first_end <= tile_end)
    last_whole = (tl.load(offsets + last) >= tile_start) & (tl.load(offsets + last + 1) <= tile_end)
    whole = valid & (
        ((sid > first) & (sid < last))
        | ((sid == first) & first_whole)
        | ((sid == last) & last_whole)
    )
    piece = (tl.cumsum(piece_start.to(tl.int32), 0) - 1).to(tl.int64)
    group = tl.where(whole, 2 * piece + tl.where(live, 0, 1), NOT_WHOLE)
    descending = tl.where(live, 0x7FFFFFFFFFFFFFFF - key, 0)  # dead: any value
    hi = (group << 31) | (descending >> 32)
    lo = ((descending & 0xFFFFFFFF) << 16) | j
    hi, lo = sort_pairs(hi, lo, LOG_TILE)
    group = hi >> 31
    index = lo & 0xFFFF
    taking_part = group != NOT_WHOLE
    segment = tl.gather(sid, index.to(tl.int32), 0)
    # entries of the segments before, in the tile, sorted before this one's first entry
    head = tl.where(first_whole, 0, first_end - tile_start)
    group_start = tl.load(offsets + segment, mask=taking_part, other=0) - tile_start - head
    k = tl.load(keep + segment, mask=taking_part, other=0)
    kept = ((group & 1) == 0) & (j - group_start < k)
    tl.store(out + tile_start + index, kept, mask=taking_part)
