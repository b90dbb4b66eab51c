"""The ops over a flat buffer sharded across processes (torch.distributed): every rank holds a
part of the global buffer (and of the mask) and knows the global segment offsets; the results
are those of the whole buffer, and no weight crosses the network.

- Power sums: each rank sums its entries of every segment; the partial sums are merged with
  the scale-aware combine (the largest scale of a segment, by one all-reduce MAX, then every
  partial sum rescaled to it and added up, by one all-reduce SUM): O(S) numbers.
- Masks: a segment that lies on one rank is selected there by the local kernel. A segment shared
  by several ranks gets its exact threshold by radix rounds of 8 bits over the bits of |w|, the
  per-segment histograms all-reduced (O(shared segments x 256) numbers a round); its ties at the
  threshold are ranked by global index (the ties of every piece gathered and scanned in the
  buffer's order). Masks are bit for bit those of the single-process op for the same keep counts.
- PQI, prune counts and sap_step follow from those two. With the fast-path exponents (0.5, 1,
  1.5, 2, 3, 4; every term summed in float64) sums reduced in another order than one process's
  give the same PQI to rounding (1e-15), hence the same prune counts except where a count's
  exact value lies within that rounding of an integer. Generic exponents on 16/32-bit params
  take their terms in float32 arithmetic after scaling each chunk by its running power of two,
  so a segment cut at other places moves by float32 rounding (PQIs ~3e-9 apart in one test);
  prune counts then differ only where a count lies that close to an integer.

A rank's part is given as its start in the global buffer (a contiguous shard) or as several
(start, length) ranges laid end to end in its local tensor (distributed_dtensor.py builds them
for DTensor / FSDP2 weights). Bad input on any rank raises on every rank, naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from . import reference
from ._checks import check_exponents, check_mask, check_params, nonfinite_error
from .distributed_select import all_reduced, distributed_topk
from .power_sums import PowerSums, segmented_power_sums
from .sap_counts import check_sap_parameters, sap_prune_counts
from .sap_step import SAPStep
from .segments import Segments


@dataclass
class Layout:
    """This rank's part of the global buffer, and every rank's.

    ranges: this rank's (global start, length), in the order of its local tensor;
    local: the local tensor cut into pieces of global segments (Segments over it);
    global_ids: the global segment of each local piece;
    owners: int64 [S], how many ranks hold entries of each segment;
    numel: the global buffer's length.
    """

    ranges: list[tuple[int, int]]
    local: Segments
    global_ids: torch.Tensor
    owners: torch.Tensor
    numel: int


def agree(op: str, group, error: Exception | None) -> None:
    """Raises the same ValueError on every rank when one or more ranks failed (error), naming
    them and what went wrong: no rank is left waiting in a collective that another one left."""
    messages = [None] * dist.get_world_size(group)
    dist.all_gather_object(messages, None if error is None else str(error), group=group)
    failed = [(rank, message) for rank, message in enumerate(messages) if message is not None]
    if failed:
        prefix = f"{op}: "
        detail = "; ".join(
            f"on rank {rank}: {message[len(prefix) :] if message.startswith(prefix) else message}"
            for rank, message in failed
        )
        raise ValueError(f"{op}: {detail}") from error


def _ranges(op: str, start: int | Sequence[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    if isinstance(start, int) and not isinstance(start, bool):
        return [(start, length)]
    ranges = [(int(a), int(n)) for a, n in start]
    if sum(n for _, n in ranges) != length or any(n < 0 or a < 0 for a, n in ranges):
        raise ValueError(
            f"{op}: ranges must be (start >= 0, length >= 0) pairs whose lengths add up to "
            f"params.numel() = {length}, got {ranges}"
        )
    return ranges


def _segment_of(offsets: torch.Tensor, position: int) -> int:
    """The segment of the entry at position (the largest s with offsets[s] <= position)."""
    return int(torch.searchsorted(offsets, torch.tensor([position]), right=True)[0]) - 1


def _local_cut(
    ranges: list[tuple[int, int]], offsets: torch.Tensor
) -> tuple[Segments, torch.Tensor]:
    """The local tensor (the ranges laid end to end) cut where global segments start, and the
    global segment of each piece; a segment that goes on into the next range stays one piece."""
    ids, lengths = [], []
    for start, length in ranges:
        if length == 0:
            continue
        end = start + length
        segment = torch.arange(_segment_of(offsets, start), _segment_of(offsets, end - 1) + 1)
        low = offsets[segment].clamp(min=start)
        high = offsets[segment + 1].clamp(max=end)
        nonempty = high > low
        ids.append(segment[nonempty])
        lengths.append((high - low)[nonempty])
    if not ids:
        return Segments.from_lengths(torch.zeros(0, dtype=torch.int64)), torch.zeros(
            0, dtype=torch.int64
        )
    ids, lengths = torch.cat(ids), torch.cat(lengths)
    new = torch.ones(ids.numel(), dtype=torch.bool)
    new[1:] = ids[1:] != ids[:-1]
    group = new.cumsum(0) - 1
    merged = torch.zeros(int(new.sum()), dtype=torch.int64).index_add_(0, group, lengths)
    return Segments.from_lengths(merged), ids[new]


def _global_segments(op: str, segments) -> Segments:
    if isinstance(segments, Segments):
        return segments
    if isinstance(segments, torch.Tensor):
        return Segments(segments, _op=op)
    raise TypeError(
        f"{op}: segments must be a sap_kernels.Segments or a 1-D int64 offsets tensor, got "
        f"{type(segments).__name__}"
    )


def make_layout(op: str, params: torch.Tensor, segments, start, group) -> tuple[Layout, Segments]:
    """Checks this rank's part (agreeing with the others) and gathers every rank's ranges."""
    error, ranges, seg = None, [], None
    try:
        params = check_params(op, params)
        seg = _global_segments(op, segments)
        ranges = _ranges(op, start, params.numel())
        if any(a + n > seg.numel for a, n in ranges):
            raise ValueError(f"{op}: ranges {ranges} reach past the buffer's {seg.numel} entries")
    except (TypeError, ValueError) as failure:
        error = failure
    agree(op, group, error)
    everyone = [None] * dist.get_world_size(group)
    dist.all_gather_object(everyone, ranges, group=group)
    covered = sorted((a, n) for rank_ranges in everyone for a, n in rank_ranges if n > 0)
    position = 0
    for a, n in covered:
        if a != position:
            raise ValueError(
                f"{op}: the ranks' parts must cover the buffer once, without overlap: entry "
                f"{min(a, position)} is {'covered twice' if a < position else 'in no part'}"
            )
        position = a + n
    if position != seg.numel:
        raise ValueError(f"{op}: the ranks' parts end at {position}, the buffer at {seg.numel}")
    local, ids = _local_cut(ranges, seg.offsets)
    owners = torch.zeros(seg.num_segments, dtype=torch.int64)
    for rank_ranges in everyone:
        _, rank_ids = _local_cut(rank_ranges, seg.offsets)
        owners[rank_ids.unique()] += 1
    return Layout(ranges, local, ids, owners, seg.numel), seg


def _merge_power_sums(
    local: PowerSums, layout: Layout, num_segments: int, p: float, q: float, group
) -> PowerSums:
    """The whole buffer's power sums from every rank's: max scale, rescaled sums added up."""
    ids = layout.global_ids.to(local.scale.device)
    scale = local.scale.new_zeros(num_segments)
    scale[ids] = local.scale
    scale = all_reduced(scale, group, dist.ReduceOp.MAX)
    top = torch.where(scale[ids] > 0, scale[ids], 1.0)
    ratio = torch.where(local.scale > 0, local.scale / top, 0.0)
    totals = local.scale.new_zeros(3, num_segments)
    totals[0, ids] = local.sum_p * torch.where(ratio > 0, ratio**p, 0.0)
    totals[1, ids] = local.sum_q * torch.where(ratio > 0, ratio**q, 0.0)
    totals[2, ids] = local.count.double()  # a NaN partial sum stays NaN through the products
    totals = all_reduced(totals, group)
    return PowerSums(scale, totals[0], totals[1], totals[2].round().long())


def power_sums_of(op, params, segments, p, q, start, mask, nan_policy, group, backend):
    """(PowerSums of the whole buffer, Layout, Segments); raises on every rank for NaN / inf."""
    layout, seg = make_layout(op, params, segments, start, group)
    error = None
    try:
        mask = check_mask(op, mask, params)
        p, q = check_exponents(op, p, q)
    except (TypeError, ValueError) as failure:
        error = failure
    agree(op, group, error)
    local = segmented_power_sums(
        params, layout.local, p, q, mask, nan_policy="propagate", backend=backend
    )
    sums = _merge_power_sums(local, layout, seg.num_segments, p, q, group)
    bad = all_reduced(torch.count_nonzero(reference.nonfinite_live(params, mask)).view(1), group)
    if int(bad) and nan_policy == "raise":
        segments_bad = sums.sum_p.isnan().nonzero().view(-1)
        raise nonfinite_error(op, int(bad), segments_bad, can_propagate=op != "sap_step")
    return sums, layout, seg, mask


def segmented_power_sums_distributed(
    params, segments, p, q, start=0, mask=None, *, nan_policy="raise", group=None, backend=None
) -> PowerSums:
    """segmented_power_sums of the whole buffer, from this rank's part (every rank gets all S).

    Args:
        params: this rank's entries, 1-D contiguous (float32 / float64 / float16 / bfloat16).
        segments: the global Segments (or offsets), the same on every rank.
        p, q: exponents, 0 < p < q.
        start: where params starts in the global buffer, or its (start, length) ranges.
        mask: this rank's part of the live mask (bool, params' size) or None.
        group: the process group (None: the default one).
    """
    return power_sums_of(
        "segmented_power_sums", params, segments, p, q, start, mask, nan_policy, group, backend
    )[0]


def segmented_pqi_distributed(
    params, segments, p, q, start=0, mask=None, *, nan_policy="raise", group=None, backend=None
) -> torch.Tensor:
    """segmented_pqi of the whole buffer (float64 [S] on every rank); arguments as above."""
    sums = power_sums_of(
        "segmented_pqi", params, segments, p, q, start, mask, nan_policy, group, backend
    )[0]
    return reference.pqi_from_power_sums(sums.sum_p, sums.sum_q, sums.count, p, q)


def segmented_topk_mask_distributed(
    params, segments, k, start=0, mask=None, *, group=None, backend=None
) -> torch.Tensor:
    """This rank's part of segmented_topk_mask of the whole buffer (bool, params' size): in
    each segment the min(k, d) live entries of largest |w|, ties to the lower global index."""
    op = "segmented_topk_mask"
    layout, seg = make_layout(op, params, segments, start, group)
    error, keep = None, None
    try:
        mask = check_mask(op, mask, params)
        keep = torch.full((seg.num_segments,), k, dtype=torch.int64) if isinstance(k, int) else k
        if keep.shape != (seg.num_segments,) or (keep.numel() and int(keep.min()) < 0):
            raise ValueError(f"{op}: k must be >= 0, one per segment ([{seg.num_segments}])")
        if bool(reference.nonfinite_live(params, mask).any()):
            raise ValueError(f"{op}: params must be finite where live")
    except (TypeError, ValueError, RuntimeError) as failure:
        error = failure
    agree(op, group, error)
    return distributed_topk(params, mask, keep.to(torch.int64).cpu(), layout, group, backend)


def sap_step_distributed(
    params,
    segments,
    p,
    q,
    start=0,
    mask=None,
    eta_r=0.0,
    gamma=1.0,
    beta=0.9,
    *,
    group=None,
    backend=None,
) -> SAPStep:
    """One SAP step over the whole buffer: SAPStep(this rank's new mask, pqi [S], count [S],
    n_prune [S]); the mask is bit for bit that of the single-process step with these counts."""
    op = "sap_step"
    error = None
    try:
        check_sap_parameters(op, eta_r, gamma, beta)
    except (TypeError, ValueError) as failure:
        error = failure
    agree(op, group, error)
    sums, layout, seg, mask = power_sums_of(
        op, params, segments, p, q, start, mask, "raise", group, backend
    )
    pqi = reference.pqi_from_power_sums(sums.sum_p, sums.sum_q, sums.count, p, q)
    n_prune = sap_prune_counts(pqi, sums.count, p, q, eta_r, gamma, beta)
    keep = sums.count - n_prune
    new_mask = distributed_topk(params, mask, keep, layout, group, backend)
    return SAPStep(new_mask, pqi, sums.count, n_prune)
