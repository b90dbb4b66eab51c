"""Exact per-segment masks over a sharded buffer (distributed.py): a segment that lies on one
rank is selected there by the local kernel; a segment shared by several ranks by radix rounds
whose per-segment histograms are all-reduced, then ties ranked by global index.

Every rank runs the same rounds on the same all-reduced histograms, so every rank chooses the
same threshold; the counts exchanged are O(shared segments x 256) a round (8-bit digits over
the 15, 31 or 63 bits of |w|), and the ties of every rank's pieces of the shared segments once.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .topk_mask import segmented_topk_mask

KEY_BITS = {torch.float16: 15, torch.bfloat16: 15, torch.float32: 31, torch.float64: 63}
INT_OF = {2: torch.int16, 4: torch.int32, 8: torch.int64}
BINS = 256


def magnitude_keys(values: torch.Tensor) -> torch.Tensor:
    """The bits of |w| as int64, monotone in |w| (the sign bit cleared)."""
    bits = values.view(INT_OF[values.element_size()]).to(torch.int64)
    return bits & ((1 << KEY_BITS[values.dtype]) - 1)


def _shared_entries(layout, params: torch.Tensor, shared_ids: torch.Tensor):
    """The local entries of shared segments: their positions, each one's shared index (into
    shared_ids), the range of this rank it lies in, and its global position."""
    lengths = layout.local.lengths()
    shared_index = torch.searchsorted(shared_ids, layout.global_ids)
    clamped = shared_index.clamp(max=shared_ids.numel() - 1)
    is_shared = (shared_index < shared_ids.numel()) & (shared_ids[clamped] == layout.global_ids)
    chosen = is_shared.nonzero().view(-1)  # local segments of shared ones
    starts = layout.local.offsets[chosen]
    sizes = lengths[chosen]
    run = torch.repeat_interleave(sizes)  # which chosen segment each entry belongs to
    within = torch.arange(run.numel()) - (sizes.cumsum(0) - sizes)[run]
    positions = starts[run] + within
    range_bounds = torch.tensor([0] + [n for _, n in layout.ranges], dtype=torch.int64).cumsum(0)
    which_range = torch.searchsorted(range_bounds, positions, right=True) - 1
    range_start = torch.tensor([a for a, _ in layout.ranges] or [0], dtype=torch.int64)
    global_position = range_start[which_range] + (positions - range_bounds[which_range])
    return positions, shared_index[chosen][run], which_range, global_position


def _choose(histogram: torch.Tensor, remaining: torch.Tensor):
    """Per row: the digit whose bin holds the remaining-th largest key, and the keys above it."""
    above = histogram.sum(1, keepdim=True) - histogram.cumsum(1)
    chosen = (above < remaining[:, None]) & (above + histogram >= remaining[:, None])
    digit = torch.where(chosen.any(1), chosen.int().argmax(1), 0)
    return digit.to(torch.int64), above.gather(1, digit[:, None]).view(-1)


def _ties_before(pieces: list[tuple[int, int, int]], group) -> dict[tuple[int, int], int]:
    """Every rank's pieces (global start, shared index, ties) gathered and scanned in the
    buffer's order: the ties of each piece's segment before it, keyed by (shared index, start)."""
    everyone = [None] * dist.get_world_size(group)
    dist.all_gather_object(everyone, pieces, group=group)
    before, running = {}, {}
    for start, index, ties in sorted(piece for rank_pieces in everyone for piece in rank_pieces):
        before[(index, start)] = running.get(index, 0)
        running[index] = running.get(index, 0) + ties
    return before


def comm_device(group, device: torch.device) -> torch.device:
    """Where the tensors of a collective must be: on the GPU for NCCL, else where they are."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return device


def all_reduced(tensor: torch.Tensor, group, op=dist.ReduceOp.SUM) -> torch.Tensor:
    """tensor summed (or op) over the ranks, back on its own device."""
    moved = tensor.to(comm_device(group, tensor.device))
    dist.all_reduce(moved, op=op, group=group)
    return moved.to(tensor.device)


def _radix_rounds(key, live, index, keep_shared, key_bits, group):
    """(threshold, keys still to keep at it, live total) of every shared segment, by radix
    rounds of 8 bits whose histograms are summed over the ranks. Each round looks only at the
    candidates left by the one before (the entries whose digits so far are the chosen ones)."""
    count, device = keep_shared.numel(), key.device
    prefix = torch.zeros(count, dtype=torch.int64, device=device)
    remaining = keep_shared.clone()
    total = torch.zeros(count, dtype=torch.int64, device=device)
    candidates = live.nonzero().view(-1)
    for r in range((key_bits + 7) // 8):
        shift = max(key_bits - 8 * r - 8, 0)
        width = key_bits - 8 * r - shift
        cand_key, cand_index = key[candidates], index[candidates]
        digit = (cand_key >> shift) & ((1 << width) - 1)
        bins = (cand_index * BINS + digit).bincount(minlength=count * BINS)
        histogram = all_reduced(bins.view(count, BINS), group)
        if r == 0:
            total = histogram.sum(1)
        chosen, above = _choose(histogram, remaining)
        prefix |= chosen << shift
        remaining -= above
        candidates = candidates[digit == chosen[cand_index]]
    return prefix, remaining, total


def _tie_ranks(index, which_range, global_position, num_ranges, group) -> torch.Tensor:
    """The rank of each tie (given its shared index, range and global position, in local order)
    among the ties of its segment, in global index order: the ties of every rank's pieces (a
    segment crossed with a range) gathered and scanned in the buffer's order."""
    piece = index * num_ranges + which_range
    piece_ids, piece_of, ties = torch.unique_consecutive(
        piece, return_inverse=True, return_counts=True
    )
    run_start = ties.cumsum(0) - ties
    pieces = [
        (int(start), int(piece_id) // num_ranges, int(count))
        for start, piece_id, count in zip(global_position[run_start], piece_ids, ties)
    ]
    before = _ties_before(pieces, group)
    base = torch.tensor([before[(i, start)] for start, i, _ in pieces], dtype=torch.int64)
    within = torch.arange(piece.numel(), device=piece.device) - run_start[piece_of]
    return base.to(piece.device)[piece_of] + within


def distributed_topk(params, mask, keep, layout, group, backend) -> torch.Tensor:
    """This rank's part of the mask keeping min(keep[s], d) live entries of every segment."""
    device, keep = params.device, keep.cpu()
    local_keep = keep[layout.global_ids]
    shared_local = layout.owners[layout.global_ids] > 1
    local_only_keep = torch.where(shared_local, 0, local_keep).to(device)
    out = segmented_topk_mask(params, layout.local, local_only_keep, mask, backend=backend)
    shared_ids = (layout.owners > 1).nonzero().view(-1)
    if shared_ids.numel() == 0:
        return out
    entries, index, which_range, position = (
        t.to(device) for t in _shared_entries(layout, params, shared_ids)
    )
    key = magnitude_keys(params[entries])
    live = torch.ones_like(key, dtype=torch.bool) if mask is None else mask[entries]
    k = keep[shared_ids].to(device)
    threshold, quota, total = _radix_rounds(key, live, index, k, KEY_BITS[params.dtype], group)
    chosen = key > threshold[index]
    tie = (live & (key == threshold[index])).nonzero().view(-1)  # usually few
    rank = _tie_ranks(index[tie], which_range[tie], position[tie], len(layout.ranges), group)
    chosen[tie] = rank < quota[index[tie]]
    out[entries] = live & ((k[index] >= total[index]) | ((k[index] > 0) & chosen))
    return out
