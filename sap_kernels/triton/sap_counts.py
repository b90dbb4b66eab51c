"""SAP's retained bound and prune counts in Triton (elementwise over segments, float64).

    r = d (1 + eta_r)^(-q/(q-p)) (1 - I)^(qp/(q-p))
    c = floor(max(0, min(gamma (d - r), beta d)))       (0 where I is NaN or d = 0)

The factors that depend on the parameters alone are computed once on the host, in float64.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .terms import float_bits, from_bits

BLOCK = tl.constexpr(1024)


@triton.jit
def _power(x, exponent, EXPONENT_KIND: tl.constexpr):
    """x^exponent for x in [0, 1] (NaN stays NaN): exactly x for 1, x * x for 2."""
    if EXPONENT_KIND == 1:
        value = x
    elif EXPONENT_KIND == 2:
        value = x * x
    else:
        safe = tl.where(x > 0, x, 1.0)
        value = tl.where(x > 0, tl.exp2(exponent * tl.log2(safe)), tl.where(x == 0, 0.0, x))
    return value


@triton.jit
def retain_bound(pqi, count, eta_factor, exponent, EXPONENT_KIND: tl.constexpr):
    """r per segment (NaN where the PQI is NaN)."""
    return count.to(tl.float64) * eta_factor * _power(1.0 - pqi, exponent, EXPONENT_KIND)


@triton.jit
def prune_count(pqi, count, eta_factor, exponent, gamma, beta, EXPONENT_KIND: tl.constexpr):
    """c per segment, as an int64."""
    d = count.to(tl.float64)
    r = retain_bound(pqi, count, eta_factor, exponent, EXPONENT_KIND)
    wanted = tl.floor(tl.maximum(tl.minimum(gamma * (d - r), beta * d), 0.0))
    return tl.where((pqi != pqi) | (count == 0), 0, wanted.to(tl.int64))


@triton.jit(do_not_specialize=["eta_bits", "exponent_bits", "gamma_bits", "beta_bits"])
def _counts_kernel(
    pqi, count, out, num_segments, eta_bits, exponent_bits, gamma_bits, beta_bits,
    PRUNE: tl.constexpr, EXPONENT_KIND: tl.constexpr,
):  # fmt: skip
    s = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = s < num_segments
    value = tl.load(pqi + s, mask=inside, other=0.0)
    d = tl.load(count + s, mask=inside, other=0)
    eta_factor = from_bits(eta_bits)
    exponent = from_bits(exponent_bits)
    if PRUNE:
        gamma = from_bits(gamma_bits)
        beta = from_bits(beta_bits)
        result = prune_count(value, d, eta_factor, exponent, gamma, beta, EXPONENT_KIND)
    else:
        result = retain_bound(value, d, eta_factor, exponent, EXPONENT_KIND)
    tl.store(out + s, result, mask=inside)


def count_settings(p: float, q: float, eta_r: float, gamma: float, beta: float) -> dict:
    """The kernels' arguments for these parameters: the factors as float64 bits."""
    exponent = q * p / (q - p)
    return {
        "eta_bits": float_bits((1.0 + eta_r) ** (-q / (q - p))),
        "exponent_bits": float_bits(exponent),
        "gamma_bits": float_bits(gamma),
        "beta_bits": float_bits(beta),
        "EXPONENT_KIND": 1 if exponent == 1.0 else 2 if exponent == 2.0 else 0,
    }


def _run(pqi, count, dtype, prune: bool, settings: dict) -> torch.Tensor:
    out = torch.empty(pqi.numel(), dtype=dtype, device=pqi.device)
    if pqi.numel():
        grid = (triton.cdiv(pqi.numel(), BLOCK.value),)
        _counts_kernel[grid](pqi, count, out, pqi.numel(), PRUNE=prune, **settings)
    return out


def retain_bound_of(pqi, count, p, q, eta_r) -> torch.Tensor:
    """r for validated float64 pqi and int64 count on one device."""
    return _run(pqi, count, torch.float64, False, count_settings(p, q, eta_r, 1.0, 1.0))


def prune_counts(pqi, count, p, q, eta_r, gamma, beta) -> torch.Tensor:
    """c for validated float64 pqi and int64 count on one device."""
    return _run(pqi, count, torch.int64, True, count_settings(p, q, eta_r, gamma, beta))
