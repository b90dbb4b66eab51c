"""Radix-select pieces shared by the Triton selection kernels (topk_mask.py, select_grid.py):
rounds of 8 bits over the bits of |w| from the top, the digit holding the k-th largest key, and
the mask that keeps the entries above the threshold and the first ties in index order."""

from __future__ import annotations

import triton
import triton.language as tl

from .select_tile import BINS

# A segment's phase in a round of the selections that read it more than once (select_grid.py,
# topk_mask.py's by chunks): its keys read from the buffer; read, and the ones that match the
# prefix appended to its candidates; read from the candidates.
READ = tl.constexpr(0)
COMPACT = tl.constexpr(1)
CANDIDATES = tl.constexpr(2)


@triton.jit
def candidate_region(seg_start, seg_end, DIVISOR: tl.constexpr):
    """The positions of the candidate buffer that segment [seg_start, seg_end) owns: those p
    whose entries p * DIVISOR lie in it."""
    return (seg_start + DIVISOR - 1) // DIVISOR, seg_end // DIVISOR


@triton.jit
def next_phase(phase, matching, capacity, MAY_COMPACT: tl.constexpr):
    """The phase of the next round, after one whose chosen bin holds `matching` keys: compacting
    once they fit `capacity` (where a round after the next remains to read them), then reading
    the candidates."""
    following = tl.where(phase == COMPACT, CANDIDATES, phase)
    if MAY_COMPACT:
        following = tl.where((phase == READ) & (matching <= capacity), COMPACT, following)
    return following


@triton.jit
def bin_count(histogram, digit):
    """The count of the histogram's bin `digit` (int64)."""
    return tl.sum(tl.where(tl.arange(0, BINS) == digit, histogram, 0), 0).to(tl.int64)


@triton.jit
def round_digits(key, live, prefix, r: tl.constexpr, KEY_BITS: tl.constexpr):
    """Round r decides the key bits [shift, shift + width), 8 a round from the top: the digit of
    each key there, and which live keys match the prefix decided so far."""
    shift: tl.constexpr = max(KEY_BITS - 8 * r - 8, 0)
    width: tl.constexpr = KEY_BITS - 8 * r - shift
    match = live & ((key >> (shift + width)) == (prefix >> (shift + width)))
    return ((key >> shift) & ((1 << width) - 1)).to(tl.int32), match


@triton.jit
def choose_digit(histogram, remaining):
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
def write_kept(out, offs, inside, live, key, threshold, ties_before, quota, keep_all, keep_none):
    """Writes the mask of entries offs (where inside), the ties ranked in index order from
    ties_before on; returns how many ties they hold."""
    tie = (live & (key == threshold)).to(tl.int64)
    rank = ties_before + tl.cumsum(tie, 0) - tie
    kept = _keep(live, key, threshold, rank, quota, keep_all, keep_none)
    tl.store(out + offs, kept, mask=inside)
    return tl.sum(tie, 0)
