"""Selection of the segments longer than BLOCK_SELECT_MAX, by every tile they cover (topk_mask.py
selects the others).

Radix rounds of 8 bits over the bits of |w|, each tile adding its histogram of the digit into
the segment's (integer atomics: the sums do not depend on their order), a small kernel choosing
the digit. The first round's histograms come from the read of the tile selection
(select_tile.py). Once the keys that match the prefix found so far fit the segment's share of a
candidate buffer (one key per config.CANDIDATE_DIVISOR entries), the next round's read also
appends them there, and the rounds after it read only those candidates. Then, when the
threshold's ties are split (not all kept), the ties of each tile are counted and scanned (in
tile order) so that each tile knows how many ties lie before it; when every tie is kept, that
pass reads nothing. A last pass writes the mask.

At most one segment longer than BLOCK_SELECT_MAX starts in any BLOCK_SELECT_MAX entries, so its
state has a slot numbered offsets[s] // BLOCK_SELECT_MAX. The candidates of segment s take the
positions p of the buffer whose entries p * DIVISOR lie in s, so tile t finds those of its
segments among the positions t * TILE / DIVISOR onwards.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import config
from .finalize import live_values
from .radix import (
    CANDIDATES,
    COMPACT,
    bin_count,
    candidate_region,
    choose_digit,
    next_phase,
    round_digits,
    write_kept,
)
from .select_tile import BINS, add_histogram, selection_key


@triton.jit
def _grid_segment(
    offsets, tile_first, tile_last, slot_segment, t, which: tl.constexpr,
    BLOCK_MAX: tl.constexpr,
):  # fmt: skip
    """The piece `which` of tile t (0: its first segment's entries, 1: its last segment's, if
    another one): (the slot of its segment if grid-selected, else -1; the segment's bounds)."""
    first = tl.load(tile_first + t)
    if which == 0:
        s = first
    else:
        s = tl.load(tile_last + t)
    seg_start = tl.load(offsets + s)
    seg_end = tl.load(offsets + s + 1)
    slot = seg_start // BLOCK_MAX
    grid = seg_end - seg_start > BLOCK_MAX
    if which == 1:  # the last segment is a piece of its own only when it is not the first
        grid = grid & (s != first)
    grid = grid & (tl.load(slot_segment + slot, mask=grid, other=-1) == s)
    return tl.where(grid, slot, -1), seg_start, seg_end


@triton.jit
def _piece_keys(
    buffer, mask, t, seg_start, seg_end, numel, read, TILE: tl.constexpr,
    HAS_MASK: tl.constexpr, KEY_BITS: tl.constexpr,
):  # fmt: skip
    """The tile's offsets, which of them lie in [seg_start, seg_end) (none unless read), which
    are live, their keys."""
    offs = t * TILE + tl.arange(0, TILE)
    inside = read & (offs >= seg_start) & (offs < tl.minimum(seg_end, numel))
    x, live = live_values(buffer, mask, offs, inside, HAS_MASK)
    return offs, inside, live, selection_key(x, KEY_BITS)


@triton.jit
def _grid_piece(
    buffer, mask, offsets, tile_first, tile_last, slot_segment, t, which: tl.constexpr,
    numel, TILE: tl.constexpr, BLOCK_MAX: tl.constexpr, HAS_MASK: tl.constexpr,
    KEY_BITS: tl.constexpr,
):  # fmt: skip
    """The piece `which` of tile t when it belongs to a grid-selected segment: (its slot, or -1;
    the tile's offsets, the piece's entries among them, which are live, their keys)."""
    slot, seg_start, seg_end = _grid_segment(
        offsets, tile_first, tile_last, slot_segment, t, which, BLOCK_MAX
    )  # fmt: skip
    offs, inside, live, key = _piece_keys(
        buffer, mask, t, seg_start, seg_end, numel, slot >= 0, TILE, HAS_MASK, KEY_BITS
    )  # fmt: skip
    return slot, offs, inside, live, key


@triton.jit
def _append(candidates, slot_count, slot, region_start, region_end, key, match):
    """Appends the matching keys to the slot's candidates (in any order: the rounds only count
    them). They fit by construction (the last round's chosen bin counted them); the region's end
    bounds the stores all the same."""
    ones = match.to(tl.int64)
    n = tl.sum(ones, 0)
    if n > 0:
        base = tl.atomic_add(slot_count + slot, n)
        position = region_start + base + tl.cumsum(ones, 0) - ones
        stored = key.to(candidates.dtype.element_ty)
        tl.store(candidates + position, stored, mask=match & (position < region_end))


@triton.jit
def _candidate_histogram(
    candidates, slot_count, histograms, slot, region_start, prefix, t, r: tl.constexpr,
    KEY_BITS: tl.constexpr, TILE: tl.constexpr, DIVISOR: tl.constexpr,
):  # fmt: skip
    """Adds the histogram of round r over the slot's candidates that tile t holds (in its own
    function: the compiler would merge its [TILE // DIVISOR] blocks with the tile's)."""
    position = t * (TILE // DIVISOR) + tl.arange(0, TILE // DIVISOR)
    valid = (position >= region_start) & (position < region_start + tl.load(slot_count + slot))
    key = tl.load(candidates + position, mask=valid, other=0).to(tl.int64)
    digits, match = round_digits(key, valid, prefix, r, KEY_BITS)
    add_histogram(histograms, slot, digits, match)


@triton.jit
def _grid_histogram_kernel(
    buffer, mask, offsets, tile_first, tile_last, numel, slot_segment, slot_prefix, histograms,
    slot_phase, slot_count, candidates, r: tl.constexpr, HAS_MASK: tl.constexpr,
    KEY_BITS: tl.constexpr, TILE: tl.constexpr, BLOCK_MAX: tl.constexpr,
    DIVISOR: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    for which in tl.static_range(2):
        slot, seg_start, seg_end = _grid_segment(
            offsets, tile_first, tile_last, slot_segment, t, which, BLOCK_MAX
        )  # fmt: skip
        if slot >= 0:
            prefix = tl.load(slot_prefix + slot)
            phase = tl.load(slot_phase + slot)
            region_start, region_end = candidate_region(seg_start, seg_end, DIVISOR)
            if phase == CANDIDATES:
                _candidate_histogram(
                    candidates, slot_count, histograms, slot, region_start, prefix, t, r,
                    KEY_BITS, TILE, DIVISOR,
                )  # fmt: skip
            else:
                _, _, live, key = _piece_keys(
                    buffer, mask, t, seg_start, seg_end, numel, True, TILE, HAS_MASK, KEY_BITS
                )  # fmt: skip
                digits, match = round_digits(key, live, prefix, r, KEY_BITS)
                add_histogram(histograms, slot, digits, match)
                if phase == COMPACT:
                    _append(candidates, slot_count, slot, region_start, region_end, key, match)


@triton.jit
def _grid_choose_kernel(
    offsets, slot_segment, slot_prefix, slot_remaining, slot_total, slot_ranked, slot_phase,
    histograms, r: tl.constexpr, LAST: tl.constexpr, KEY_BITS: tl.constexpr,
    MAY_COMPACT: tl.constexpr, DIVISOR: tl.constexpr,
):  # fmt: skip
    """The digit of round r of every grid-selected segment, and the phase of its next round.
    After the last round, slot_ranked names the segments whose ties at the threshold need ranks
    in index order (the others keep every tie: their tie counts are not needed, -1)."""
    slot = tl.program_id(0).to(tl.int64)
    s = tl.load(slot_segment + slot)
    if s >= 0:
        shift: tl.constexpr = max(KEY_BITS - 8 * r - 8, 0)
        bins = slot * BINS + tl.arange(0, BINS)
        histogram = tl.load(histograms + bins)
        tl.store(histograms + bins, tl.zeros([BINS], tl.int64))  # for the next round
        if r == 0:
            tl.store(slot_total + slot, tl.sum(histogram, 0).to(tl.int64))
        remaining = tl.load(slot_remaining + slot)
        digit, above = choose_digit(histogram, remaining)
        tl.store(slot_prefix + slot, tl.load(slot_prefix + slot) | (digit << shift))
        tl.store(slot_remaining + slot, remaining - above)
        # the chosen bin holds the keys that match the prefix now (at the end, the ties)
        matching = bin_count(histogram, digit)
        region_start, region_end = candidate_region(
            tl.load(offsets + s), tl.load(offsets + s + 1), DIVISOR
        )  # fmt: skip
        phase = next_phase(
            tl.load(slot_phase + slot), matching, region_end - region_start, MAY_COMPACT
        )  # fmt: skip
        tl.store(slot_phase + slot, phase)
        if LAST:  # (when remaining is 0 or beyond every key, none or all are kept: no ranks)
            rank = remaining - above
            every_tie_kept = (matching == rank) | (rank <= 0) | (rank >= tl.load(slot_total + slot))
            tl.store(slot_ranked + slot, tl.where(every_tie_kept, -1, s))


@triton.jit
def _grid_ties_kernel(
    buffer, mask, offsets, tile_first, tile_last, numel, slot_segment, slot_prefix, ties,
    HAS_MASK: tl.constexpr, KEY_BITS: tl.constexpr, TILE: tl.constexpr,
    BLOCK_MAX: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    for which in tl.static_range(2):
        slot, _, _, live, key = _grid_piece(
            buffer, mask, offsets, tile_first, tile_last, slot_segment, t, which, numel,
            TILE, BLOCK_MAX, HAS_MASK, KEY_BITS,
        )  # fmt: skip
        threshold = tl.load(slot_prefix + slot, mask=slot >= 0, other=0)
        tl.store(ties + 2 * t + which, tl.sum((live & (key == threshold)).to(tl.int64), 0))


@triton.jit
def _grid_write_kernel(
    buffer, mask, offsets, tile_first, tile_last, numel, out,
    slot_segment, slot_prefix, slot_remaining, slot_total, slot_start_piece, keep, ties_before,
    HAS_MASK: tl.constexpr, KEY_BITS: tl.constexpr, TILE: tl.constexpr,
    BLOCK_MAX: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    for which in tl.static_range(2):
        slot, offs, inside, live, key = _grid_piece(
            buffer, mask, offsets, tile_first, tile_last, slot_segment, t, which, numel,
            TILE, BLOCK_MAX, HAS_MASK, KEY_BITS,
        )  # fmt: skip
        if slot >= 0:
            threshold = tl.load(slot_prefix + slot)
            # ties of the segment in the tiles before this one, in index order
            first_piece = tl.load(slot_start_piece + slot)
            base = tl.load(ties_before + 2 * t + which) - tl.load(ties_before + first_piece)
            k = tl.load(keep + tl.load(slot_segment + slot))
            keep_all = k >= tl.load(slot_total + slot)
            quota = tl.load(slot_remaining + slot)
            write_kept(out, offs, inside, live, key, threshold, base, quota, keep_all, k == 0)


def candidate_buffer(numel: int, key_bits: int, rounds: int, device) -> torch.Tensor:
    """The candidates' keys: one per config.CANDIDATE_DIVISOR entries, in as many bytes as an
    entry (3% of the buffer's bytes); none when no round follows the one that would append
    them."""
    size = numel // config.CANDIDATE_DIVISOR + 1 if rounds > 2 else 1
    return torch.empty(size, dtype=torch.int32 if key_bits <= 31 else torch.int64, device=device)


def grid_select(
    params, mask_arg, offsets, plan, keep, out, slot, histograms, candidates, block_max, common
):  # fmt: skip
    """The rounds of the segments longer than block_max, the first round's histograms given;
    then their masks."""
    numel, grid = params.numel(), (plan.num_tiles,)
    num_slots = slot["segment"].numel()
    device = params.device
    key_bits = common["KEY_BITS"]
    rounds = triton.cdiv(key_bits, 8)
    ranked = torch.full((num_slots,), -1, dtype=torch.int64, device=device)
    phase = torch.zeros(num_slots, dtype=torch.int32, device=device)
    count = torch.zeros(num_slots, dtype=torch.int64, device=device)
    divisor = config.CANDIDATE_DIVISOR
    where = (offsets, plan.first, plan.last, numel)
    for r in range(rounds):
        if r > 0:  # the tile kernel took the first
            _grid_histogram_kernel[grid](
                params, mask_arg, *where, slot["segment"], slot["prefix"], histograms, phase,
                count, candidates, r=r, BLOCK_MAX=block_max, DIVISOR=divisor, **common,
            )  # fmt: skip
        _grid_choose_kernel[(num_slots,)](
            offsets, slot["segment"], slot["prefix"], slot["remaining"], slot["total"], ranked,
            phase, histograms, r=r, LAST=r == rounds - 1, KEY_BITS=key_bits,
            MAY_COMPACT=r + 2 < rounds, DIVISOR=divisor,
        )  # fmt: skip
    # Tie counts per tile only for the segments whose ties are split: the others' pieces read as
    # not grid-selected there, so their tiles read nothing and count 0.
    ties = torch.empty(2 * plan.num_tiles, dtype=torch.int64, device=device)
    _grid_ties_kernel[grid](
        params, mask_arg, *where, ranked, slot["prefix"], ties, BLOCK_MAX=block_max, **common
    )  # fmt: skip
    ties_before = torch.cumsum(ties, 0) - ties
    _grid_write_kernel[grid](
        params, mask_arg, *where, out, slot["segment"], slot["prefix"], slot["remaining"],
        slot["total"], slot["start_piece"], keep, ties_before, BLOCK_MAX=block_max, **common,
    )  # fmt: skip
