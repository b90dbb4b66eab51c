"""segmented_power_sums: Σ|w|^p and Σ|w|^q per segment, scale-stable."""

from __future__ import annotations

from typing import NamedTuple

import torch

from . import reference
from ._checks import (
    DTYPE_CODES,
    check_exponents,
    check_mask,
    check_nan_policy,
    check_params,
    nonfinite_error,
)
from ._dispatch import resolve_backend
from ._native import native
from .segments import Segments, as_segments


class PowerSums(NamedTuple):
    """Per-segment power sums in scaled form, all tensors of shape [S].

    The true sums are ``scale**p * sum_p`` and ``scale**q * sum_q``, so that
    ``||a||_p = scale * sum_p**(1/p)``. ``scale`` (float64) is 0 for a segment with no non-zero
    live entry; otherwise it is chosen so that every sum stays finite: the largest live ``|w|``
    on the reference backend, a power of two on the CPU backend (1 where the entries need no
    scaling). ``count`` (int64) is the number of live entries d.
    """

    scale: torch.Tensor
    sum_p: torch.Tensor
    sum_q: torch.Tensor
    count: torch.Tensor


class ValidInputs(NamedTuple):
    """The inputs of a segmented op after validation, and the backend that runs it."""

    params: torch.Tensor
    mask: torch.Tensor | None
    offsets: torch.Tensor
    p: float
    q: float
    nan_policy: str
    backend: str
    # whether op takes a nan_policy (its NaN / inf error then suggests "propagate")
    has_nan_policy: bool = True


def check_power_sums_inputs(
    op: str,
    params: torch.Tensor,
    segments: Segments | torch.Tensor,
    p: float,
    q: float,
    mask: torch.Tensor | None,
    nan_policy: str,
    backend: str | None,
) -> ValidInputs:
    """Validates the inputs of op (whose name its errors carry) before any work is done."""
    params = check_params(op, params)
    mask = check_mask(op, mask, params)
    p, q = check_exponents(op, p, q)
    nan_policy = check_nan_policy(op, nan_policy)
    segments = as_segments(op, segments, params.numel())
    backend = resolve_backend(op, backend, params.device)
    offsets = segments.offsets_on(params.device)
    return ValidInputs(params, mask, offsets, p, q, nan_policy, backend)


def segmented_power_sums(
    params: torch.Tensor,
    segments: Segments | torch.Tensor,
    p: float,
    q: float,
    mask: torch.Tensor | None = None,
    *,
    nan_policy: str = "raise",
    backend: str | None = None,
) -> PowerSums:
    """Power sums of the live magnitudes of each segment: S_p = Σ a^p, S_q = Σ a^q, a = |w|.

    Args:
        params: 1-D contiguous float32 / float64 / float16 / bfloat16 buffer.
        segments: a ``Segments`` or 1-D int64 offsets (length S + 1, ending at params.numel()).
        p, q: exponents, 0 < p < q.
        mask: optional bool tensor of params.numel() elements; False entries take no part.
        nan_policy: ``"raise"`` (a NaN / inf live entry is an error) or ``"propagate"``
            (its segment's sums are NaN).
        backend: ``"cpu"`` (C++), ``"torch"`` (reference) or None (fastest available).

    Returns:
        PowerSums(scale, sum_p, sum_q, count).
    """
    op = "segmented_power_sums"
    inputs = check_power_sums_inputs(op, params, segments, p, q, mask, nan_policy, backend)
    return _power_sums(op, inputs)


def _power_sums(op: str, inputs: ValidInputs) -> PowerSums:
    """The power sums on inputs' backend; raises for NaN / inf under nan_policy="raise"."""
    if inputs.backend == "cpu":
        sums, nonfinite = _power_sums_cpu(op, inputs)
    else:
        sums = PowerSums(
            *reference.power_sums(inputs.params, inputs.offsets, inputs.p, inputs.q, inputs.mask)
        )
        has_nan = bool(sums.sum_p.isnan().any())
        nonfinite = (
            int(reference.nonfinite_live(inputs.params, inputs.mask).sum()) if has_nan else 0
        )
    if nonfinite and inputs.nan_policy == "raise":
        bad_segments = sums.sum_p.isnan().nonzero().view(-1)
        raise nonfinite_error(op, nonfinite, bad_segments, can_propagate=inputs.has_nan_policy)
    return sums


def _power_sums_cpu(op: str, inputs: ValidInputs) -> tuple[PowerSums, int]:
    num_segments = inputs.offsets.numel() - 1
    sums = PowerSums(
        scale=torch.empty(num_segments, dtype=torch.float64),
        sum_p=torch.empty(num_segments, dtype=torch.float64),
        sum_q=torch.empty(num_segments, dtype=torch.float64),
        count=torch.empty(num_segments, dtype=torch.int64),
    )
    pointers = (tensor.data_ptr() for tensor in sums)
    nonfinite = native(op).power_sums(*native_arguments(inputs), *pointers)
    return sums, nonfinite


def native_arguments(inputs: ValidInputs) -> tuple:
    """The segmented buffer and exponents as the extension's kernels take them (raw addresses:
    the tensors were validated and stay alive in `inputs`)."""
    return (
        inputs.params.data_ptr(),
        DTYPE_CODES[inputs.params.dtype],
        0 if inputs.mask is None else inputs.mask.data_ptr(),
        inputs.params.numel(),
        inputs.offsets.data_ptr(),
        inputs.offsets.numel() - 1,
        inputs.p,
        inputs.q,
    )
