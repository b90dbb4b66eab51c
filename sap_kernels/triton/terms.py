"""The terms a^r of the power sums and the PQ Index of a segment, as Triton functions.

Unscaled terms (float32 / float16 / bfloat16 params): a^r is evaluated in float32 arithmetic
and returned in float64, whose range holds every such term, so that no scale is needed:
multiplies for r = 1, 2, 3, 4 (in float64), the correctly rounded float32 square root for
r = 0.5 and 1.5, and otherwise 2^(r log2 a) with the power of two split off exactly:
a = m 2^e (m in [1, 2)), r = r_hi + r_lo (r_hi of 12 significant bits, so r_hi e is exact),
r log2 a = n + f with n an integer, and a^r = 2^f 2^n (2^n built from its bits). Each term is
then within ~1e-6 relative on GPUs (float32 log2 / exp2 approximations), and the float64 sums
add no error of note.

Scaled terms (float64 params, or exponents too large for that range): x = a / scale in [0, 2)
and x^r in float64.
"""

from __future__ import annotations

import math
import struct

import triton
import triton.language as tl

# Exponent kinds (constexpr, for the kernels to branch on at compile time).
GENERIC, ONE, TWO, THREE, FOUR, HALF, THREE_HALVES = (tl.constexpr(kind) for kind in range(7))
_KINDS = {1.0: 1, 2.0: 2, 3.0: 3, 4.0: 4, 0.5: 5, 1.5: 6}

# log2 of the smallest (subnormal) and of the largest magnitude bound of each 16/32-bit dtype.
# Unscaled terms need r * log2 |a| within float64's normal range [-1022, 1023] for every a.
_EXPONENT_RANGE = {"float32": (-149, 128), "bfloat16": (-133, 128), "float16": (-24, 16)}


def exponent_kind(r: float) -> int:
    """The kind of the exponent r: a fast path (multiplies, square roots) or GENERIC."""
    return _KINDS.get(r, 0)


def split_exponent(r: float) -> tuple[float, float]:
    """(r_hi, r_lo): r_hi = r rounded to 12 significant bits, r_lo = r - r_hi."""
    mantissa, exponent = math.frexp(r)
    r_hi = math.ldexp(round(mantissa * 4096) / 4096, exponent)
    return r_hi, r - r_hi


def float_bits(value: float) -> int:
    """The bits of a float64, as the integer a kernel takes (Triton passes floats as float32);
    the kernel reads it back with from_bits and declares it do_not_specialize."""
    return struct.unpack("<q", struct.pack("<d", value))[0]


def fits_unscaled(dtype_name: str, q: float) -> bool:
    """Whether every term a^q of a dtype_name buffer lies in float64's normal range."""
    if dtype_name not in _EXPONENT_RANGE:
        return False
    low, high = _EXPONENT_RANGE[dtype_name]
    return q * -low <= 1022 and q * high <= 1023


@triton.jit
def from_bits(bits):
    """The float64 whose bits a kernel received as an integer (Triton passes an integer that
    fits in 32 bits as an int32: widen first)."""
    return bits.to(tl.int64).to(tl.float64, bitcast=True)


@triton.jit
def power_of_two(n):
    """2^n as a float64, from its bits (n an integer in [-1022, 1023])."""
    return ((n.to(tl.int64) + 1023) << 52).to(tl.float64, bitcast=True)


@triton.jit
def unscaled_term(a, r, r_hi, r_lo, KIND: tl.constexpr):
    """a^r in float64 for float32 magnitudes a >= 0 (see the module docstring)."""
    if KIND == ONE:
        term = a.to(tl.float64)
    elif KIND == TWO:
        wide = a.to(tl.float64)
        term = wide * wide
    elif KIND == THREE:
        wide = a.to(tl.float64)
        term = wide * wide * wide
    elif KIND == FOUR:
        wide = a.to(tl.float64)
        square = wide * wide
        term = square * square
    elif KIND == HALF:
        term = tl.sqrt_rn(a).to(tl.float64)
    elif KIND == THREE_HALVES:
        term = a.to(tl.float64) * tl.sqrt_rn(a).to(tl.float64)
    else:
        # subnormals are scaled by 2^24 first, so that every mantissa is normal
        subnormal = a < 1.1754943508222875e-38
        normal = tl.where(subnormal, a * 16777216.0, a)
        bits = normal.to(tl.int32, bitcast=True)
        exponent = ((bits >> 23) & 0xFF) - 127 - tl.where(subnormal, 24, 0)
        mantissa = ((bits & 0x7FFFFF) | 0x3F800000).to(tl.float32, bitcast=True)
        e = exponent.to(tl.float32)
        high = r_hi * e  # exact: 12 by at most 8 significant bits
        n_high = tl.floor(high)
        fraction = (high - n_high) + r_lo * e + r * tl.log2(mantissa)
        n_low = tl.floor(fraction)
        scaled = tl.exp2(fraction - n_low).to(tl.float64)
        n = (n_high + n_low).to(tl.int64)
        term = tl.where(a > 0, scaled * power_of_two(n), 0.0)
        # NaN and inf are terms of their own, so that the sums show them
        term = tl.where(a < float("inf"), term, a.to(tl.float64))
    return term


@triton.jit
def scaled_term(x, r, KIND: tl.constexpr):
    """x^r in float64 for float64 x in [0, 2)."""
    if KIND == ONE:
        term = x
    elif KIND == TWO:
        term = x * x
    elif KIND == THREE:
        term = x * x * x
    elif KIND == FOUR:
        square = x * x
        term = square * square
    elif KIND == HALF:
        term = tl.sqrt(x)  # float64: correctly rounded
    elif KIND == THREE_HALVES:
        term = x * tl.sqrt(x)
    else:
        finite = (x > 0) & (x < float("inf"))
        term = tl.where(finite, tl.exp2(r * tl.log2(tl.where(finite, x, 1.0))), 0.0)
        term = tl.where((x == 0) | finite, term, x)  # NaN and inf stay what they are
    return term


@triton.jit
def pqi_value(sum_p, sum_q, count, inv_p, inv_q):
    """I = 1 - d^(1/q - 1/p) ||a||_p / ||a||_q from the (equally scaled) float64 sums; 0 for
    d = 1, NaN for d = 0, all-zero or non-finite sums."""
    d = tl.maximum(count, 1).to(tl.float64)
    positive = sum_p > 0
    log_ratio = (
        (inv_q - inv_p) * tl.log2(d)
        + inv_p * tl.log2(tl.where(positive, sum_p, 1.0))
        - inv_q * tl.log2(tl.where(positive, sum_q, 1.0))
    )
    pqi = 1.0 - tl.exp2(log_ratio)
    pqi = tl.where(count == 1, 0.0, pqi)
    undefined = (count == 0) | (sum_p <= 0) | (sum_p != sum_p) | (sum_q != sum_q)
    return tl.where(undefined, float("nan"), pqi)
