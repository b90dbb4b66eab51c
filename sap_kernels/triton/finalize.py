"""Writing a segment's outputs, from the tile that holds it whole or from the combine of the
records of a segment that crosses tiles (Triton functions shared by both)."""

from __future__ import annotations

import triton
import triton.language as tl

from .terms import power_of_two, pqi_value


@triton.jit
def live_values(buffer, mask, offs, valid, HAS_MASK: tl.constexpr):
    """The entries at offs and whether each is live (in the buffer and, with a mask, marked)."""
    x = tl.load(buffer + offs, mask=valid, other=0.0)
    live = valid
    if HAS_MASK:
        live = live & (tl.load(mask + offs, mask=valid, other=0) != 0)
    return x, live


@triton.jit
def magnitude_key(x, live, FP64: tl.constexpr):
    """The bits of |x| (monotone in |x| for finite x; NaN and inf above every finite value);
    0 for dead entries. float64: an int64 key; 16/32-bit dtypes: the float32 bits as int32."""
    if FP64:
        key = tl.where(live, x.to(tl.int64, bitcast=True) & 0x7FFFFFFFFFFFFFFF, 0)
    else:
        key = tl.where(live, x.to(tl.float32).to(tl.int32, bitcast=True) & 0x7FFFFFFF, 0)
    return key


@triton.jit
def finalize_max(s, key, count, lanes, out_scale, out_scale_exp, out_count, FP64: tl.constexpr):
    """Writes the scale of segments s (where lanes): the power of two of the exponent of their
    largest live magnitude (that of the smallest normal when it is subnormal), 0 when every live
    entry is 0, NaN when one is NaN or inf; its exponent (0 for those); the live count."""
    if FP64:
        field = (key >> 52).to(tl.int32)
        exponent = tl.maximum(field, 1) - 1023
        nonfinite = field == 2047
    else:
        field = (key >> 23).to(tl.int32)
        exponent = tl.maximum(field, 1) - 127
        nonfinite = field == 255
    zero = key == 0
    scale = tl.where(zero, 0.0, power_of_two(exponent))
    scale = tl.where(nonfinite, float("nan"), scale)
    tl.store(out_scale + s, scale, mask=lanes)
    tl.store(out_scale_exp + s, tl.where(zero | nonfinite, 0, exponent), mask=lanes)
    tl.store(out_count + s, count.to(tl.int64), mask=lanes)


@triton.jit
def finalize_sums(
    s,
    sum_p,
    sum_q,
    count,
    lanes,
    out_scale,
    out_sum_p,
    out_sum_q,
    out_count,
    out_pqi,
    flag,
    inv_p,
    inv_q,
    WRITE_SCALE: tl.constexpr,
    WRITE_PQI: tl.constexpr,
):
    """Writes the sums, live count and (WRITE_PQI) PQI of segments s (where lanes). Non-finite
    sums (a NaN or inf live entry) become NaN, and raise flag. WRITE_SCALE: the unscaled mode's
    scale, 1 (0 where no live entry is non-zero)."""
    finite = (tl.abs(sum_p) < float("inf")) & (tl.abs(sum_q) < float("inf"))
    sum_p = tl.where(finite, sum_p, float("nan"))
    sum_q = tl.where(finite, sum_q, float("nan"))
    tl.store(out_sum_p + s, sum_p, mask=lanes)
    tl.store(out_sum_q + s, sum_q, mask=lanes)
    tl.store(out_count + s, count.to(tl.int64), mask=lanes)
    if WRITE_SCALE:
        scale = tl.where(finite, tl.where(sum_p > 0, 1.0, 0.0), float("nan"))
        tl.store(out_scale + s, scale, mask=lanes)
    if WRITE_PQI:
        tl.store(out_pqi + s, pqi_value(sum_p, sum_q, count, inv_p, inv_q), mask=lanes)
    bad = tl.sum(tl.where(lanes, 1 - finite.to(tl.int32), 0), 0)
    if bad > 0:
        tl.atomic_max(flag, 1)


@triton.jit
def empty_segments(offsets, lo, hi, BLOCK: tl.constexpr):
    """The segments lo .. lo + BLOCK - 1, and which of them are empty and at most hi."""
    s = lo + tl.arange(0, BLOCK)
    inside = s <= hi
    start = tl.load(offsets + s, mask=inside, other=0)
    end = tl.load(offsets + s + 1, mask=inside, other=0)
    return s, inside & (start == end)
