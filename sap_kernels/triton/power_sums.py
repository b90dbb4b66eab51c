"""segmented_power_sums and segmented_pqi in Triton.

Unscaled mode (float32 / float16 / bfloat16 params, q small enough that every term fits
float64's range, terms.py): one read of the buffer. Scaled mode (float64 params, or larger q):
a first read takes each segment's scale (the power of two of its largest live magnitude), a
second sums (a / scale)^r. Both reads are tile kernels (tiles.py): a tile writes the outputs of
the segments whole inside it and one record for each of its first and last segments, which the
combine kernel reduces, a chunk of records per program, level by level, until one chunk is left.
Every reduction runs in a fixed order, so results do not depend on scheduling.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from . import config
from .finalize import empty_segments, finalize_max, finalize_sums, live_values, magnitude_key
from .terms import (
    exponent_kind,
    fits_unscaled,
    float_bits,
    from_bits,
    power_of_two,
    scaled_term,
    split_exponent,
    unscaled_term,
)
from .tiles import (
    owned_segments,
    segment_ids,
    segmented_max_count,
    segmented_sum3,
    tile_plan,
)

MAX_STAGE, SUMS_STAGE = tl.constexpr(0), tl.constexpr(1)


@triton.jit
def _max_tile_kernel(
    buffer, mask, offsets, tile_first, tile_last,
    out_scale, out_scale_exp, out_count,
    rec_key, rec_a, rec_count,
    numel, num_tiles, num_segments,
    HAS_MASK: tl.constexpr, FP64: tl.constexpr, TILE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    tile_start = t * TILE
    offs = tile_start + tl.arange(0, TILE)
    x, live = live_values(buffer, mask, offs, offs < numel, HAS_MASK)
    key = magnitude_key(x, live, FP64)
    ones = live.to(tl.int32)
    first = tl.load(tile_first + t)
    last = tl.load(tile_last + t)
    sid, piece_start, piece_end, repeated = segment_ids(
        offsets, first, last, tile_start, TILE, BLOCK
    )
    in_first = sid == first
    in_last = (sid == last) & (last != first)
    tl.store(rec_key + 2 * t, first)
    tl.store(rec_a + 2 * t, tl.max(tl.where(in_first, key, 0), 0).to(tl.int64))
    tl.store(rec_count + 2 * t, tl.sum(tl.where(in_first, ones, 0), 0).to(tl.int64))
    tl.store(rec_key + 2 * t + 1, last)
    tl.store(rec_a + 2 * t + 1, tl.max(tl.where(in_last, key, 0), 0).to(tl.int64))
    tl.store(rec_count + 2 * t + 1, tl.sum(tl.where(in_last, ones, 0), 0).to(tl.int64))
    if last > first + 1:  # segments whole inside the tile
        scan = tl.associative_scan((piece_start.to(tl.int32), key, ones), 0, segmented_max_count)
        whole = piece_end & (sid > first) & (sid < last)
        finalize_max(sid, scan[1], scan[2], whole, out_scale, out_scale_exp, out_count, FP64)
    lo, hi = owned_segments(tile_first, tile_last, t, num_tiles, num_segments)
    if repeated | (lo < first) | (hi > last):
        for chunk in range(lo, hi + 1, BLOCK):
            s, empty = empty_segments(offsets, chunk, hi, BLOCK)
            zero = tl.zeros([BLOCK], tl.int64)
            finalize_max(s, zero, zero, empty, out_scale, out_scale_exp, out_count, FP64)


@triton.jit(do_not_specialize=["p_bits", "q_bits"])
def _sums_tile_kernel(
    buffer, mask, offsets, tile_first, tile_last, scale_exp,
    out_scale, out_sum_p, out_sum_q, out_count, out_pqi, flag,
    rec_key, rec_p, rec_q, rec_count,
    numel, num_tiles, num_segments,
    p, p_hi, p_lo, q, q_hi, q_lo, p_bits, q_bits,
    P_KIND: tl.constexpr, Q_KIND: tl.constexpr, HAS_MASK: tl.constexpr, SCALED: tl.constexpr,
    WRITE_PQI: tl.constexpr, TILE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    tile_start = t * TILE
    offs = tile_start + tl.arange(0, TILE)
    valid = offs < numel
    x, live = live_values(buffer, mask, offs, valid, HAS_MASK)
    first = tl.load(tile_first + t)
    last = tl.load(tile_last + t)
    sid, piece_start, piece_end, repeated = segment_ids(
        offsets, first, last, tile_start, TILE, BLOCK
    )
    if SCALED:  # x / scale, exactly: the power of two split in two factors within range
        exponent = tl.load(scale_exp + sid, mask=valid, other=0)
        half = exponent >> 1
        wide = tl.where(live, tl.abs(x.to(tl.float64)), 0.0)
        scaled = wide * power_of_two(-half) * power_of_two(half - exponent)
        term_p = scaled_term(scaled, from_bits(p_bits), P_KIND)
        term_q = scaled_term(scaled, from_bits(q_bits), Q_KIND)
    else:
        magnitude = tl.where(live, tl.abs(x.to(tl.float32)), 0.0)
        term_p = unscaled_term(magnitude, p, p_hi, p_lo, P_KIND)
        term_q = unscaled_term(magnitude, q, q_hi, q_lo, Q_KIND)
    ones = live.to(tl.int32)
    in_first = sid == first
    in_last = (sid == last) & (last != first)
    tl.store(rec_key + 2 * t, first)
    tl.store(rec_p + 2 * t, tl.sum(tl.where(in_first, term_p, 0.0), 0))
    tl.store(rec_q + 2 * t, tl.sum(tl.where(in_first, term_q, 0.0), 0))
    tl.store(rec_count + 2 * t, tl.sum(tl.where(in_first, ones, 0), 0).to(tl.int64))
    tl.store(rec_key + 2 * t + 1, last)
    tl.store(rec_p + 2 * t + 1, tl.sum(tl.where(in_last, term_p, 0.0), 0))
    tl.store(rec_q + 2 * t + 1, tl.sum(tl.where(in_last, term_q, 0.0), 0))
    tl.store(rec_count + 2 * t + 1, tl.sum(tl.where(in_last, ones, 0), 0).to(tl.int64))
    inv_p = 1.0 / from_bits(p_bits)
    inv_q = 1.0 / from_bits(q_bits)
    if last > first + 1:  # segments whole inside the tile
        scan = tl.associative_scan(
            (piece_start.to(tl.int32), term_p, term_q, ones), 0, segmented_sum3
        )
        whole = piece_end & (sid > first) & (sid < last)
        finalize_sums(
            sid, scan[1], scan[2], scan[3], whole, out_scale, out_sum_p, out_sum_q, out_count,
            out_pqi, flag, inv_p, inv_q, not SCALED, WRITE_PQI,
        )  # fmt: skip
    lo, hi = owned_segments(tile_first, tile_last, t, num_tiles, num_segments)
    if repeated | (lo < first) | (hi > last):
        for chunk in range(lo, hi + 1, BLOCK):
            s, empty = empty_segments(offsets, chunk, hi, BLOCK)
            zero = tl.zeros([BLOCK], tl.float64)
            finalize_sums(
                s, zero, zero, zero.to(tl.int64), empty, out_scale, out_sum_p, out_sum_q,
                out_count, out_pqi, flag, inv_p, inv_q, not SCALED, WRITE_PQI,
            )  # fmt: skip


@triton.jit(do_not_specialize=["p_bits", "q_bits"])
def _combine_kernel(
    rec_key, rec_a, rec_b, rec_count, num_records,
    next_key, next_a, next_b, next_count,
    out_scale, out_scale_exp, out_sum_p, out_sum_q, out_count, out_pqi, flag,
    p_bits, q_bits,
    STAGE: tl.constexpr, FP64: tl.constexpr, SCALED: tl.constexpr, WRITE_PQI: tl.constexpr,
    IS_TOP: tl.constexpr, CHUNK: tl.constexpr,
):  # fmt: skip
    """Reduces a chunk of records (sorted by segment): the segments strictly between its first
    and last are complete and written out; the first and the last are carried to the next level
    as one record each (at the top level, one chunk, every segment is complete)."""
    c = tl.program_id(0).to(tl.int64)
    r0 = c * CHUNK
    index = r0 + tl.arange(0, CHUNK)
    r_end = tl.minimum(r0 + CHUNK, num_records)
    valid = index < r_end
    key = tl.load(rec_key + index, mask=valid, other=-1)
    before = tl.load(rec_key + index - 1, mask=valid & (index > r0), other=-1)
    after = tl.load(rec_key + index + 1, mask=index + 1 < r_end, other=-1)
    piece_start = (key != before) | (index == r0)
    piece_end = valid & ((key != after) | (index == r_end - 1))
    k_first = tl.load(rec_key + r0)
    k_last = tl.load(rec_key + r_end - 1)
    done = piece_end if IS_TOP else piece_end & (key > k_first) & (key < k_last)
    in_first = valid & (key == k_first)
    in_last = valid & (key == k_last) & (k_last != k_first)
    count = tl.load(rec_count + index, mask=valid, other=0)
    if STAGE == MAX_STAGE:
        a = tl.load(rec_a + index, mask=valid, other=0)
        scan = tl.associative_scan((piece_start.to(tl.int32), a, count), 0, segmented_max_count)
        finalize_max(key, scan[1], scan[2], done, out_scale, out_scale_exp, out_count, FP64)
        if not IS_TOP:
            tl.store(next_a + 2 * c, tl.max(tl.where(in_first, a, 0), 0))
            tl.store(next_a + 2 * c + 1, tl.max(tl.where(in_last, a, 0), 0))
    else:
        a = tl.load(rec_a + index, mask=valid, other=0.0)
        b = tl.load(rec_b + index, mask=valid, other=0.0)
        scan = tl.associative_scan((piece_start.to(tl.int32), a, b, count), 0, segmented_sum3)
        inv_p = 1.0 / from_bits(p_bits)
        inv_q = 1.0 / from_bits(q_bits)
        finalize_sums(
            key, scan[1], scan[2], scan[3], done, out_scale, out_sum_p, out_sum_q, out_count,
            out_pqi, flag, inv_p, inv_q, not SCALED, WRITE_PQI,
        )  # fmt: skip
        if not IS_TOP:
            tl.store(next_a + 2 * c, tl.sum(tl.where(in_first, a, 0.0), 0))
            tl.store(next_b + 2 * c, tl.sum(tl.where(in_first, b, 0.0), 0))
            tl.store(next_a + 2 * c + 1, tl.sum(tl.where(in_last, a, 0.0), 0))
            tl.store(next_b + 2 * c + 1, tl.sum(tl.where(in_last, b, 0.0), 0))
    if not IS_TOP:
        tl.store(next_key + 2 * c, k_first)
        tl.store(next_key + 2 * c + 1, k_last)
        tl.store(next_count + 2 * c, tl.sum(tl.where(in_first, count, 0), 0))
        tl.store(next_count + 2 * c + 1, tl.sum(tl.where(in_last, count, 0), 0))


class Records(NamedTuple):
    """Per piece of a segment that crosses tiles: its segment and partial values."""

    key: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    count: torch.Tensor


def new_records(size: int, value_dtype: torch.dtype, device: torch.device) -> Records:
    empty = torch.empty
    return Records(
        empty(size, dtype=torch.int64, device=device),
        empty(size, dtype=value_dtype, device=device),
        empty(size, dtype=value_dtype, device=device),
        empty(size, dtype=torch.int64, device=device),
    )


class Outputs(NamedTuple):
    """The per-segment outputs the kernels write (pqi may be a placeholder)."""

    scale: torch.Tensor
    scale_exp: torch.Tensor
    sum_p: torch.Tensor
    sum_q: torch.Tensor
    count: torch.Tensor
    pqi: torch.Tensor
    flag: torch.Tensor  # int32 [1]: 1 when some live entry is NaN or inf


def combine_records(records: Records, outputs: Outputs, stage: int, settings: dict) -> None:
    """Runs the combine kernel level by level until one chunk of records is left."""
    chunk = config.COMBINE_CHUNK
    size = records.key.numel()
    while True:
        chunks = triton.cdiv(size, chunk)
        top = chunks == 1
        after = records if top else new_records(2 * chunks, records.a.dtype, records.key.device)
        _combine_kernel[(chunks,)](
            *records, size, *after, *outputs, **settings, STAGE=stage, IS_TOP=top, CHUNK=chunk
        )
        if top:
            return
        records, size = after, 2 * chunks


def run(inputs, want_pqi: bool) -> Outputs:
    """The power sums (and PQI) of validated inputs (sap_kernels.power_sums.ValidInputs)."""
    params, mask, offsets = inputs.params, inputs.mask, inputs.offsets
    device, numel, num_segments = params.device, params.numel(), offsets.numel() - 1
    f64 = torch.float64
    outputs = Outputs(
        scale=torch.zeros(num_segments, dtype=f64, device=device),
        scale_exp=torch.zeros(num_segments, dtype=torch.int32, device=device),
        sum_p=torch.zeros(num_segments, dtype=f64, device=device),
        sum_q=torch.zeros(num_segments, dtype=f64, device=device),
        count=torch.zeros(num_segments, dtype=torch.int64, device=device),
        pqi=torch.full((num_segments,) if want_pqi else (1,), torch.nan, dtype=f64, device=device),
        flag=torch.zeros(1, dtype=torch.int32, device=device),
    )
    if numel == 0:  # every segment is empty: the outputs above are theirs
        return outputs
    plan = tile_plan(offsets, numel, config.TILE)
    scaled = not fits_unscaled(str(params.dtype).split(".")[-1], inputs.q)
    fp64 = params.dtype == torch.float64
    mask_arg = params if mask is None else mask
    sizes = {"TILE": plan.tile, "BLOCK": config.SEGMENT_BLOCK}
    shape = (numel, plan.num_tiles, num_segments)
    p, q = inputs.p, inputs.q
    settings = {
        "p_bits": float_bits(p), "q_bits": float_bits(q), "FP64": fp64,
        "SCALED": scaled, "WRITE_PQI": want_pqi,
    }  # fmt: skip
    if scaled:
        records = new_records(2 * plan.num_tiles, torch.int64, device)
        _max_tile_kernel[(plan.num_tiles,)](
            params, mask_arg, offsets, plan.first, plan.last,
            outputs.scale, outputs.scale_exp, outputs.count,
            records.key, records.a, records.count, *shape,
            HAS_MASK=mask is not None, FP64=fp64, **sizes, num_warps=config.NUM_WARPS,
        )  # fmt: skip
        combine_records(records, outputs, MAX_STAGE, settings)
    records = new_records(2 * plan.num_tiles, f64, device)
    (p_hi, p_lo), (q_hi, q_lo) = split_exponent(p), split_exponent(q)
    _sums_tile_kernel[(plan.num_tiles,)](
        params, mask_arg, offsets, plan.first, plan.last, outputs.scale_exp,
        outputs.scale, outputs.sum_p, outputs.sum_q, outputs.count, outputs.pqi, outputs.flag,
        *records, *shape, p, p_hi, p_lo, q, q_hi, q_lo, settings["p_bits"], settings["q_bits"],
        P_KIND=exponent_kind(p), Q_KIND=exponent_kind(q), HAS_MASK=mask is not None,
        SCALED=scaled, WRITE_PQI=want_pqi, **sizes, num_warps=config.NUM_WARPS,
    )  # fmt: skip
    combine_records(records, outputs, SUMS_STAGE, settings)
    return outputs


def segmented_power_sums(inputs) -> tuple[tuple[torch.Tensor, ...], bool]:
    """((scale, sum_p, sum_q, count), whether some live entry is NaN or inf)."""
    out = run(inputs, want_pqi=False)
    return (out.scale, out.sum_p, out.sum_q, out.count), bool(out.flag.item())


def segmented_pqi(inputs) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(pqi, count, whether some live entry is NaN or inf)."""
    out = run(inputs, want_pqi=True)
    return out.pqi, out.count, bool(out.flag.item())
