"""segmented_topk_mask in Triton: exact per-segment magnitude masks, by the size of each segment.

- A segment that lies whole in a tile is ranked on chip by the tile (select_tile.py).
- A segment that crosses tiles and has at most config.BLOCK_SELECT_MAX entries is selected by
  one program, the one of the tile it starts in: radix rounds of 8 bits over the bits of |w|
  (each a histogram of the digit among the entries that match the prefix found so far), then one
  pass that keeps the entries above the threshold and the first ties, in index order. One of at
  most config.BLOCK_ON_CHIP entries is read once, into the program's registers, and its rounds
  and mask run there; a longer one is read in chunks by every round until the keys that still
  match the prefix fit its share of the candidate buffer (select_grid.py), then only those.
- A longer segment is selected by every tile it covers (select_grid.py): the same rounds, each
  tile adding its histogram into the segment's, the first from the tile selection's read, the
  last ones over the candidates that still match once they are few.
At most one segment longer than BLOCK_SELECT_MAX starts in any BLOCK_SELECT_MAX entries, so its
state has a slot numbered offsets[s] // BLOCK_SELECT_MAX: about 2 KiB per BLOCK_SELECT_MAX
entries of the buffer. Params are finite where live (the caller checks).
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
    READ,
    bin_count,
    candidate_region,
    choose_digit,
    next_phase,
    round_digits,
    write_kept,
)
from .select_grid import candidate_buffer, grid_select
from .select_tile import BINS, _select_in_tile_kernel, selection_key
from .tiles import tile_plan

KEY_BITS = {torch.float16: 15, torch.bfloat16: 15, torch.float32: 31, torch.float64: 63}
CHUNK = tl.constexpr(1024)  # entries a program reads per step when it walks a whole segment


@triton.jit
def _select_block_kernel(
    buffer, mask, offsets, tile_last, keep, out, numel,
    slot_segment, slot_remaining, slot_start_piece, tile_first, candidates,
    HAS_MASK: tl.constexpr, KEY_BITS: tl.constexpr, TILE: tl.constexpr,
    BLOCK_MAX: tl.constexpr, ON_CHIP: tl.constexpr, ROUNDS: tl.constexpr,
    DIVISOR: tl.constexpr,
):  # fmt: skip
    """The segment that starts in tile t and crosses its end: selected here if it is short
    enough (on chip if shorter still), else its slot of the grid-wide selection is set up."""
    t = tl.program_id(0).to(tl.int64)
    tile_start = t * TILE
    s = tl.load(tile_last + t)
    seg_start = tl.load(offsets + s)
    seg_end = tl.load(offsets + s + 1)
    if (seg_start >= tile_start) & (seg_end > tile_start + TILE):
        k = tl.load(keep + s)
        if seg_end - seg_start > BLOCK_MAX:
            slot = seg_start // BLOCK_MAX
            tl.store(slot_segment + slot, s)
            tl.store(slot_remaining + slot, k)
            first = tl.load(tile_first + t)
            tl.store(slot_start_piece + slot, 2 * t + tl.where(s == first, 0, 1))
        elif seg_end - seg_start <= ON_CHIP:
            _select_on_chip(
                buffer, mask, out, seg_start, seg_end, k, HAS_MASK, KEY_BITS, ON_CHIP, ROUNDS
            )  # fmt: skip
        else:
            _select_by_chunks(
                buffer, mask, out, candidates, seg_start, seg_end, k, HAS_MASK, KEY_BITS, ROUNDS,
                DIVISOR,
            )  # fmt: skip


@triton.jit
def _select_on_chip(
    buffer, mask, out, seg_start, seg_end, k, HAS_MASK: tl.constexpr, KEY_BITS: tl.constexpr,
    BLOCK: tl.constexpr, ROUNDS: tl.constexpr,
):  # fmt: skip
    """Selects a segment of at most BLOCK entries from one read: its keys stay in registers for
    the radix rounds and the mask."""
    offs = seg_start + tl.arange(0, BLOCK)
    inside = offs < seg_end
    x, live = live_values(buffer, mask, offs, inside, HAS_MASK)
    key = selection_key(x, KEY_BITS)
    total = tl.sum(live.to(tl.int64), 0)
    prefix = tl.zeros([], tl.int64)
    remaining = k
    for r in tl.static_range(ROUNDS):
        digits, match = round_digits(key, live, prefix, r, KEY_BITS)
        digit, above = choose_digit(tl.histogram(digits, BINS, mask=match), remaining)
        prefix = prefix | (digit << max(KEY_BITS - 8 * r - 8, 0))
        remaining = remaining - above
    write_kept(out, offs, inside, live, key, prefix, 0, remaining, k >= total, k == 0)


@triton.jit
def _select_by_chunks(
    buffer, mask, out, candidates, seg_start, seg_end, k, HAS_MASK: tl.constexpr,
    KEY_BITS: tl.constexpr, ROUNDS: tl.constexpr, DIVISOR: tl.constexpr,
):  # fmt: skip
    """Selects a segment CHUNK entries at a time: every round reads it again until the keys that
    match the prefix fit its share of the candidates (one key per DIVISOR entries, as
    select_grid.py's); the next round appends them there and the rounds after it read only
    those. Then the mask."""
    prefix = tl.zeros([], tl.int64)
    remaining = k
    total = tl.zeros([], tl.int64)
    region_start, region_end = candidate_region(seg_start, seg_end, DIVISOR)
    phase = tl.zeros([], tl.int32) + READ
    count = tl.zeros([], tl.int64)
    for r in tl.static_range(ROUNDS):
        histogram = tl.zeros([BINS], tl.int32)
        if phase == CANDIDATES:
            for chunk in range(0, count, CHUNK):
                position = chunk + tl.arange(0, CHUNK)
                valid = position < count
                key = tl.load(candidates + region_start + position, mask=valid, other=0)
                digits, match = round_digits(key.to(tl.int64), valid, prefix, r, KEY_BITS)
                histogram += tl.histogram(digits, BINS, mask=match)
        else:
            for chunk in range(seg_start, seg_end, CHUNK):
                offs = chunk + tl.arange(0, CHUNK)
                x, live = live_values(buffer, mask, offs, offs < seg_end, HAS_MASK)
                key = selection_key(x, KEY_BITS)
                digits, match = round_digits(key, live, prefix, r, KEY_BITS)
                histogram += tl.histogram(digits, BINS, mask=match)
                if phase == COMPACT:
                    ones = match.to(tl.int64)
                    position = region_start + count + tl.cumsum(ones, 0) - ones
                    stored = key.to(candidates.dtype.element_ty)
                    # (they fit by construction; the bound keeps the stores in the region)
                    inside = match & (position < region_end)
                    tl.store(candidates + position, stored, mask=inside)
                    count += tl.sum(ones, 0)
        if r == 0:
            total = tl.sum(histogram, 0).to(tl.int64)
        digit, above = choose_digit(histogram, remaining)
        prefix = prefix | (digit << max(KEY_BITS - 8 * r - 8, 0))
        remaining = remaining - above
        matching = bin_count(histogram, digit)
        phase = next_phase(phase, matching, region_end - region_start, r + 2 < ROUNDS)
        tl.debug_barrier()  # the candidates stored in this round, for every thread of the next
    keep_all = k >= total
    keep_none = k == 0
    ties_before = tl.zeros([], tl.int64)
    for chunk in range(seg_start, seg_end, CHUNK):
        offs = chunk + tl.arange(0, CHUNK)
        inside = offs < seg_end
        x, live = live_values(buffer, mask, offs, inside, HAS_MASK)
        key = selection_key(x, KEY_BITS)
        ties_before += write_kept(
            out, offs, inside, live, key, prefix, ties_before, remaining, keep_all, keep_none
        )  # fmt: skip


def segmented_topk_mask(
    params: torch.Tensor,
    offsets: torch.Tensor,
    keep: torch.Tensor,
    mask: torch.Tensor | None,
    out: torch.Tensor,
) -> torch.Tensor:
    """Writes into out the mask keeping min(keep[s], d) live entries of largest |w| per segment
    (validated, finite inputs; keep: int64 [S] on any device)."""
    numel = params.numel()
    if numel == 0:
        return out
    device = params.device
    keep = keep.to(device)
    plan = tile_plan(offsets, numel, config.TILE)
    block_max = max(config.BLOCK_SELECT_MAX, plan.tile)
    key_bits = KEY_BITS[params.dtype]
    rounds = triton.cdiv(key_bits, 8)
    # as many bytes of float64 on chip as of float32 (its keys and values take twice the registers)
    on_chip = min(config.BLOCK_ON_CHIP // (2 if key_bits == 63 else 1), block_max)
    common = {"HAS_MASK": mask is not None, "KEY_BITS": key_bits, "TILE": plan.tile}
    mask_arg = params if mask is None else mask
    grid = (plan.num_tiles,)
    num_slots = numel // block_max + 1
    has_grid = numel > block_max  # a segment may be longer than block_max: the grid-wide rounds
    # their first round's histograms, from the tile kernel's read
    # int64 counts: one segment may hold 2^31 entries and more
    histograms = torch.zeros(num_slots * BINS if has_grid else 1, dtype=torch.int64, device=device)
    _select_in_tile_kernel[grid](
        params, mask_arg, offsets, plan.first, plan.last, keep, out, numel, histograms,
        LOG_TILE=plan.tile.bit_length() - 1, BLOCK=config.SEGMENT_BLOCK, BLOCK_MAX=block_max,
        HAS_GRID=has_grid, **common, num_warps=config.NUM_WARPS,
    )  # fmt: skip
    slot = {
        name: torch.full((num_slots,), -1 if name == "segment" else 0, dtype=torch.int64,
                         device=device)
        for name in ("segment", "prefix", "remaining", "total", "start_piece")
    }  # fmt: skip
    candidates = candidate_buffer(numel, key_bits, rounds, device)
    _select_block_kernel[grid](
        params, mask_arg, offsets, plan.last, keep, out, numel,
        slot["segment"], slot["remaining"], slot["start_piece"], plan.first, candidates,
        BLOCK_MAX=block_max, ON_CHIP=on_chip, ROUNDS=rounds, DIVISOR=config.CANDIDATE_DIVISOR,
        **common, num_warps=config.NUM_WARPS,
    )  # fmt: skip
    if has_grid:
        grid_select(
            params, mask_arg, offsets, plan, keep, out, slot, histograms, candidates, block_max,
            common,
        )  # fmt: skip
    return out
