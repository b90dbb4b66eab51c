"""Tiles of the flat buffer and the segments they cut: the load balance of every Triton kernel.

Tile t covers entries [t * TILE, (t + 1) * TILE). A binary search over the offsets gives the
segment of its first and of its last entry (``tile_plan``); inside the tile, a histogram of the
segment starts and its prefix sum give every entry's segment (``segment_ids``), so that a tile
costs the same whatever the segments' lengths. Segments that lie strictly between the first and
the last one are whole in the tile; the first and the last may cross into other tiles: each tile
leaves one record (segment id and partial values) for each, and records are combined by the
same scheme, a chunk of records per program, level by level (``power_sums.py``).

A tile also owns the empty segments next to its entries (``owned_segments``), so that every
segment's outputs are written exactly once.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl


class TilePlan(NamedTuple):
    """The tiles of a buffer of numel entries cut by offsets."""

    tile: int
    num_tiles: int
    first: torch.Tensor  # int64 [num_tiles]: the segment of each tile's first entry
    last: torch.Tensor  # int64 [num_tiles]: the segment of each tile's last entry


def tile_plan(offsets: torch.Tensor, numel: int, tile: int) -> TilePlan:
    """The segment of the first and of the last entry of every tile (binary searches on the
    device: the largest s with offsets[s] <= position, which skips empty segments)."""
    starts = torch.arange(0, numel, tile, device=offsets.device, dtype=torch.int64)
    ends = torch.clamp(starts + tile, max=numel) - 1
    first = torch.searchsorted(offsets, starts, right=True) - 1
    last = torch.searchsorted(offsets, ends, right=True) - 1
    return TilePlan(tile, starts.numel(), first, last)


@triton.jit
def segment_ids(offsets, first, last, tile_start, TILE: tl.constexpr, BLOCK: tl.constexpr):
    """Per entry of the tile at tile_start: its segment id (int64), whether it starts a piece and
    whether it ends one (its successor starts a segment), and whether some segment of the tile is
    empty (two segments start at one entry). first and last: the segments of the tile's first
    and last entries."""
    starts = tl.zeros([TILE], tl.int32)
    ends = tl.zeros([TILE], tl.int32)
    for chunk in range(first + 1, last + 1, BLOCK):
        s = chunk + tl.arange(0, BLOCK)
        inside = s <= last
        # every segment after the first starts inside the tile, after its first entry
        position = (tl.load(offsets + s, mask=inside, other=0) - tile_start).to(tl.int32)
        starts += tl.histogram(position, TILE, mask=inside)
        ends += tl.histogram(position - 1, TILE, mask=inside)
    sid = first + tl.cumsum(starts, 0)
    piece_start = (starts > 0) | (tl.arange(0, TILE) == 0)
    return sid, piece_start, ends > 0, tl.max(starts, 0) > 1


@triton.jit
def owned_segments(tile_first, tile_last, t, num_tiles, num_segments):
    """The segments [lo, hi] whose outputs tile t writes or leaves records for: those after the
    previous tile's last segment, up to its own last one (the last tile: to the end)."""
    lo = tl.load(tile_last + t - 1, mask=t > 0, other=-1) + 1
    hi = tl.load(tile_last + t)
    hi = tl.where(t == num_tiles - 1, num_segments - 1, hi)
    return lo, hi


@triton.jit
def segmented_sum3(flag_a, a1, a2, a3, flag_b, b1, b2, b3):
    """Combine of a segmented inclusive scan (sum) of three values: b restarts at its flag."""
    restart = flag_b != 0
    return (
        flag_a | flag_b,
        tl.where(restart, b1, a1 + b1),
        tl.where(restart, b2, a2 + b2),
        tl.where(restart, b3, a3 + b3),
    )


@triton.jit
def segmented_max_count(flag_a, key_a, count_a, flag_b, key_b, count_b):
    """Combine of a segmented inclusive scan of (max of a key, sum of a count)."""
    restart = flag_b != 0
    return (
        flag_a | flag_b,
        tl.where(restart, key_b, tl.maximum(key_a, key_b)),
        tl.where(restart, count_b, count_a + count_b),
    )
