"""segmented_topk_mask in Triton: exact per-segment magnitude masks, by the size of each segment.

- A segment that lies whole in a tile is ranked on chip by the tile (select_tile.py).
- A segment that crosses tiles and has at most config.BLOCK_SELECT_MAX entries is selected by
  one program, the one of the tile it starts in: radix rounds of 8 bits over the bits of |w|
  (each a histogram of the digit among the entries that match the prefix found so far), then one
  pass that keeps the entries above the threshold and the first ties, in index order. One of at
  most config.BLOCK_ON_CHIP entries is read once, into the program's registers, and its rounds
  and mask run there; a longer one is read again in chunks by every round.
- A longer segment is selected by every tile it covers: the same rounds, each tile adding its
  histogram into the segment's (integer atomics: the sums do not depend on their order), a small
  kernel choosing the digit; the first round's histograms come from the read of the tile
  selection (select_tile.py), so the rounds read the buffer one time less; then, when the
  threshold's ties are split (not all kept), the ties of each tile are counted and scanned (in
  tile order) so that each tile knows how many ties lie before it; when every tie is kept, that
  pass reads nothing.
At most one segment longer than BLOCK_SELECT_MAX starts in any BLOCK_SELECT_MAX entries, so its
state has a slot numbered offsets[s] // BLOCK_SELECT_MAX: about 1 KiB per BLOCK_SELECT_MAX
entries of the buffer. Params are finite where live (the caller checks).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import config
from .finalize import live_values
from .select_tile import BINS, _select_in_tile_kernel, selection_key
from .tiles import tile_plan

KEY_BITS = {torch.float16: 15, torch.bfloat16: 15, torch.float32: 31, torch.float64: 63}
CHUNK = tl.constexpr(1024)  # entries a program reads per step when it walks a whole segment


@triton.jit
def _choose_digit(histogram, remaining):
    """The digit whose bin holds the remaining-th largest key, and how many keys lie above it."""
    above = tl.sum(histogram, 0) - tl.cumsum(histogram, 0)
    chosen = (above < remaining) & (above + histogram >= remaining)
    digit = tl.sum(tl.where(chosen, tl.arange(0, BINS), 0), 0)
    return digit.to(tl.int64), tl.sum(tl.where(chosen, above, 0), 0).to(tl.int64)


@triton.jit
def _keep(live, key, threshold, tie_rank, quota, keep_all, keep_none):
    """Whether each entry is kept: above the threshold, or a tie within the quota."""
    chosen = (key > threshold) | ((key == threshold) & (tie_rank < quota))
    return live & (keep_all | (chosen & (keep_none == 0)))


@triton.jit
def _write_kept(out, offs, inside, live, key, threshold, ties_before, quota, keep_all, keep_none):
    """Writes the mask of entries offs (where inside), the ties ranked in index order from
    ties_before on; returns how many ties they hold."""
    tie = (live & (key == threshold)).to(tl.int64)
    rank = ties_before + tl.cumsum(tie, 0) - tie
    kept = _keep(live, key, threshold, rank, quota, keep_all, keep_none)
    tl.store(out + offs, kept, mask=inside)
    return tl.sum(tie, 0)


@triton.jit
def _select_block_kernel(
    buffer, mask, offsets, tile_last, keep, out, numel,
    slot_segment, slot_remaining, slot_start_piece, tile_first,
    HAS_MASK: tl.constexpr, KEY_BITS: tl.constexpr, TILE: tl.constexpr,
    BLOCK_MAX: tl.constexpr, ON_CHIP: tl.constexpr, ROUNDS: tl.constexpr,
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
                buffer, mask, out, seg_start, seg_end, k, HAS_MASK, KEY_BITS, ROUNDS
            )  # fmt: skip


@triton.jit
def _round_digits(key, live, prefix, r: tl.constexpr, KEY_BITS: tl.constexpr):
    """Round r decides the key bits [shift, shift + width), 8 a round from the top: the digit of
    each key there, and which live keys match the prefix decided so far."""
    shift: tl.constexpr = max(KEY_BITS - 8 * r - 8, 0)
    width: tl.constexpr = KEY_BITS - 8 * r - shift
    match = live & ((key >> (shift + width)) == (prefix >> (shift + width)))
    return ((key >> shift) & ((1 << width) - 1)).to(tl.int32), match


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
        digits, match = _round_digits(key, live, prefix, r, KEY_BITS)
        digit, above = _choose_digit(tl.histogram(digits, BINS, mask=match), remaining)
        prefix = prefix | (digit << max(KEY_BITS - 8 * r - 8, 0))
        remaining = remaining - above
    _write_kept(out, offs, inside, live, key, prefix, 0, remaining, k >= total, k == 0)


@triton.jit
def _select_by_chunks(
    buffer, mask, out, seg_start, seg_end, k, HAS_MASK: tl.constexpr, KEY_BITS: tl.constexpr,
    ROUNDS: tl.constexpr,
):  # fmt: skip
    """Selects a segment CHUNK entries at a time: every round reads it again, then the mask."""
    prefix = tl.zeros([], tl.int64)
    remaining = k
    total = tl.zeros([], tl.int64)
    for r in tl.static_range(ROUNDS):
        histogram = tl.zeros([BINS], tl.int32)
        for chunk in range(seg_start, seg_end, CHUNK):
            offs = chunk + tl.arange(0, CHUNK)
            x, live = live_values(buffer, mask, offs, offs < seg_end, HAS_MASK)
            key = selection_key(x, KEY_BITS)
            digits, match = _round_digits(key, live, prefix, r, KEY_BITS)
            histogram += tl.histogram(digits, BINS, mask=match)
        if r == 0:
            total = tl.sum(histogram, 0).to(tl.int64)
        digit, above = _choose_digit(histogram, remaining)
        prefix = prefix | (digit << max(KEY_BITS - 8 * r - 8, 0))
        remaining = remaining - above
    keep_all = k >= total
    keep_none = k == 0
    ties_before = tl.zeros([], tl.int64)
    for chunk in range(seg_start, seg_end, CHUNK):
        offs = chunk + tl.arange(0, CHUNK)
        inside = offs < seg_end
        x, live = live_values(buffer, mask, offs, inside, HAS_MASK)
        key = selection_key(x, KEY_BITS)
        ties_before += _write_kept(
            out, offs, inside, live, key, prefix, ties_before, remaining, keep_all, keep_none
        )  # fmt: skip


@triton.jit
def _grid_piece(
    buffer, mask, offsets, tile_first, tile_last, slot_segment, t, which: tl.constexpr,
    numel, TILE: tl.constexpr, BLOCK_MAX: tl.constexpr, HAS_MASK: tl.constexpr,
    KEY_BITS: tl.constexpr,
):  # fmt: skip
    """The piece `which` of tile t (0: its first segment's entries, 1: its last segment's, if
    another one) when it belongs to a grid-selected segment: (its slot, or -1 if it does not;
    the tile's offsets, the piece's entries among them, which are live, their keys)."""
    tile_start = t * TILE
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
    offs = tile_start + tl.arange(0, TILE)
    inside = grid & (offs >= seg_start) & (offs < tl.minimum(seg_end, numel))
    x, live = live_values(buffer, mask, offs, inside, HAS_MASK)
    return tl.where(grid, slot, -1), offs, inside, live, selection_key(x, KEY_BITS)


@triton.jit
def _grid_histogram_kernel(
    buffer, mask, offsets, tile_first, tile_last, numel, slot_segment, slot_prefix, histograms,
    r: tl.constexpr, HAS_MASK: tl.constexpr, KEY_BITS: tl.constexpr, TILE: tl.constexpr,
    BLOCK_MAX: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    for which in tl.static_range(2):
        slot, _, _, live, key = _grid_piece(
            buffer, mask, offsets, tile_first, tile_last, slot_segment, t, which, numel,
            TILE, BLOCK_MAX, HAS_MASK, KEY_BITS,
        )  # fmt: skip
        if slot >= 0:
            digits, match = _round_digits(key, live, tl.load(slot_prefix + slot), r, KEY_BITS)
            counts = tl.histogram(digits, BINS, mask=match)
            # only the bins this piece fills: after the first round most pieces fill none
            bins = slot * BINS + tl.arange(0, BINS)
            tl.atomic_add(histograms + bins, counts, mask=counts > 0)


@triton.jit
def _grid_choose_kernel(
    slot_segment, slot_prefix, slot_remaining, slot_total, slot_ranked, histograms,
    r: tl.constexpr, LAST: tl.constexpr, KEY_BITS: tl.constexpr,
):  # fmt: skip
    """The digit of round r of every grid-selected segment. After the last round, slot_ranked
    names the segments whose ties at the threshold need ranks in index order (the others keep
    every tie: their tie counts are not needed, -1)."""
    slot = tl.program_id(0).to(tl.int64)
    if tl.load(slot_segment + slot) >= 0:
        shift: tl.constexpr = max(KEY_BITS - 8 * r - 8, 0)
        bins = slot * BINS + tl.arange(0, BINS)
        histogram = tl.load(histograms + bins)
        tl.store(histograms + bins, tl.zeros([BINS], tl.int32))  # for the next round
        if r == 0:
            tl.store(slot_total + slot, tl.sum(histogram, 0).to(tl.int64))
        remaining = tl.load(slot_remaining + slot)
        digit, above = _choose_digit(histogram, remaining)
        tl.store(slot_prefix + slot, tl.load(slot_prefix + slot) | (digit << shift))
        tl.store(slot_remaining + slot, remaining - above)
        if LAST:  # the chosen bin holds the keys equal to the threshold
            ties = tl.sum(tl.where(tl.arange(0, BINS) == digit, histogram, 0), 0).to(tl.int64)
            every_tie_kept = ties == remaining - above
            tl.store(slot_ranked + slot, tl.where(every_tie_kept, -1, tl.load(slot_segment + slot)))


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
            _write_kept(out, offs, inside, live, key, threshold, base, quota, keep_all, k == 0)


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
    histograms = torch.zeros(num_slots * BINS if has_grid else 1, dtype=torch.int32, device=device)
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
    _select_block_kernel[grid](
        params, mask_arg, offsets, plan.last, keep, out, numel,
        slot["segment"], slot["remaining"], slot["start_piece"], plan.first,
        BLOCK_MAX=block_max, ON_CHIP=on_chip, ROUNDS=rounds,
        **common, num_warps=config.NUM_WARPS,
    )  # fmt: skip
    if has_grid:
        _grid_select(
            params, mask_arg, offsets, plan, keep, out, slot, histograms, rounds, block_max, common
        )  # fmt: skip
    return out


def _grid_select(
    params, mask_arg, offsets, plan, keep, out, slot, histograms, rounds, block_max, common
):  # fmt: skip
    """The rounds of the segments longer than block_max, the first round's histograms given."""
    numel, grid = params.numel(), (plan.num_tiles,)
    num_slots = slot["segment"].numel()
    ranked = torch.full((num_slots,), -1, dtype=torch.int64, device=params.device)
    where = (offsets, plan.first, plan.last, numel)
    for r in range(rounds):
        if r > 0:  # the tile kernel took the first
            _grid_histogram_kernel[grid](
                params, mask_arg, *where, slot["segment"], slot["prefix"], histograms,
                r=r, BLOCK_MAX=block_max, **common,
            )  # fmt: skip
        _grid_choose_kernel[(num_slots,)](
            slot["segment"], slot["prefix"], slot["remaining"], slot["total"], ranked,
            histograms, r=r, LAST=r == rounds - 1, KEY_BITS=common["KEY_BITS"],
        )  # fmt: skip
    # Tie counts per tile only for the segments whose ties are split: the others' pieces read as
    # not grid-selected there, so their tiles read nothing and count 0.
    ties = torch.empty(2 * plan.num_tiles, dtype=torch.int64, device=params.device)
    _grid_ties_kernel[grid](
        params, mask_arg, *where, ranked, slot["prefix"], ties, BLOCK_MAX=block_max, **common
    )  # fmt: skip
    ties_before = torch.cumsum(ties, 0) - ties
    _grid_write_kernel[grid](
        params, mask_arg, *where, out, slot["segment"], slot["prefix"], slot["remaining"],
        slot["total"], slot["start_piece"], keep, ties_before, BLOCK_MAX=block_max, **common,
    )  # fmt: skip
