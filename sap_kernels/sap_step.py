"""sap_step: one whole SAP iteration (Diao et al., ICLR 2023, Algorithm 1) over a flat buffer."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._native import native
from .power_sums import (
    ValidInputs,
    _power_sums,
    check_power_sums_inputs,
    native_arguments,
    per_segment_like,
    segment_op_arguments,
)
from .pqi import pqi_and_count
from .sap_counts import check_sap_parameters, prune_counts_of
from .segments import Segments
from .topk_mask import check_out, topk_mask_of


class SAPStep(NamedTuple):
    """The result of one SAP iteration.

    mask: bool [numel], the new mask; pqi: float64 [S]; count: int64 [S], live entries before
    the step; n_prune: int64 [S], entries pruned by the step in each segment.
    """

    mask: torch.Tensor
    pqi: torch.Tensor
    count: torch.Tensor
    n_prune: torch.Tensor


def sap_step(
    params: torch.Tensor,
    segments: Segments | torch.Tensor,
    p: float,
    q: float,
    mask: torch.Tensor | None = None,
    eta_r: float = 0.0,
    gamma: float = 1.0,
    beta: float = 0.9,
    *,
    out: torch.Tensor | None = None,
    backend: str | None = None,
) -> SAPStep:
    """One SAP iteration: per segment the PQ Index I of the live entries, the prune count

        c = floor(max(0, min(gamma (d - r), beta d))),
        r = d (1 + eta_r)^(-q/(q-p)) (1 - I)^(qp/(q-p))

    and the new mask, which prunes exactly c live entries, the smallest |w| first (among equal
    |w| the higher flat index first). It equals, bit for bit, ``segmented_pqi`` then
    ``sap_prune_counts`` then ``segmented_topk_mask(k = d - c)``.

    Args:
        params: 1-D contiguous float32 / float64 / float16 / bfloat16 buffer, finite where live.
        segments: a ``Segments`` or 1-D int64 offsets (length S + 1, ending at params.numel()).
        p, q: exponents, 0 < p < q.
        mask: optional bool tensor of params.numel() elements; False entries are already pruned.
        eta_r, gamma, beta: the paper's hyper-parameters (eta_r >= 0, gamma >= 0, 0 <= beta <= 1).
        out: optional contiguous bool tensor [params.numel()] to write the new mask into,
            sharing no memory with params or mask (a pruner can keep two and alternate: a fresh
            mask of 1e8 entries costs ~25,000 page faults). The CPU step finds NaN / inf in the
            same read that selects, so after that error out may be partly written.
        backend: ``"cpu"`` (C++), ``"cuda"``, ``"triton"``, ``"torch"`` (reference) or None
            (the default for the device; ``$SAP_KERNELS_BACKEND`` overrides it).

    Returns:
        SAPStep(mask, pqi, count, n_prune); mask is ``out`` when given.
    """
    op = "sap_step"
    arguments = segment_op_arguments(op, params, segments, p, q, mask, "raise", backend)
    params, offsets, p, q, mask, _, backend = arguments
    eta_r, gamma, beta = check_sap_parameters(op, eta_r, gamma, beta)
    hyper = (eta_r, gamma, beta)
    if out is None:
        step = torch.ops.sap_kernels.sap_step(params, offsets, p, q, mask, *hyper, backend)
        return SAPStep(*step)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{op}: out must be a bool torch.Tensor or None, got {type(out).__name__}")
    counts = torch.ops.sap_kernels.sap_step_out(params, offsets, p, q, mask, *hyper, backend, out)
    return SAPStep(out, *counts)


def _step_into(
    params: Tensor,
    offsets: Tensor,
    p: float,
    q: float,
    mask: Tensor | None,
    hyper: tuple[float, float, float],
    backend: str | None,
    out: Tensor | None,
) -> SAPStep:
    """Validates the op's inputs (before anything is written), then runs the step."""
    op = "sap_step"
    inputs = check_power_sums_inputs(op, params, offsets, p, q, mask, "raise", backend)
    inputs = inputs._replace(has_nan_policy=False)
    eta_r, gamma, beta = check_sap_parameters(op, *hyper)
    out = check_out(op, out, inputs.params, inputs.mask)
    if inputs.backend == "cpu":
        return fused_step(op, inputs, eta_r, gamma, beta, out)
    if inputs.backend == "cuda":
        from . import _cuda

        *step, nonfinite = _cuda.sap_step(op, inputs, eta_r, gamma, beta, out)
        if nonfinite:
            _power_sums(op, inputs)  # raises, naming the segments that hold them
        return SAPStep(*step)
    return composed_step(op, inputs, eta_r, gamma, beta, out)


@torch.library.custom_op("sap_kernels::sap_step", mutates_args=())
def _sap_step_op(
    params: Tensor,
    offsets: Tensor,
    p: float,
    q: float,
    mask: Tensor | None,
    eta_r: float,
    gamma: float,
    beta: float,
    backend: str | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return tuple(_step_into(params, offsets, p, q, mask, (eta_r, gamma, beta), backend, None))


@_sap_step_op.register_fake
def _(params, offsets, p, q, mask, eta_r, gamma, beta, backend):
    new_mask = params.new_empty(params.shape, dtype=torch.bool)
    pqi = per_segment_like(params, offsets, torch.float64, 1)[0]
    return (new_mask, pqi, *per_segment_like(params, offsets, torch.int64, 2))


@torch.library.custom_op("sap_kernels::sap_step_out", mutates_args=("out",))
def _sap_step_out_op(
    params: Tensor,
    offsets: Tensor,
    p: float,
    q: float,
    mask: Tensor | None,
    eta_r: float,
    gamma: float,
    beta: float,
    backend: str | None,
    out: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    step = _step_into(params, offsets, p, q, mask, (eta_r, gamma, beta), backend, out)
    return step.pqi, step.count, step.n_prune


@_sap_step_out_op.register_fake
def _(params, offsets, p, q, mask, eta_r, gamma, beta, backend, out):
    pqi = per_segment_like(params, offsets, torch.float64, 1)[0]
    return (pqi, *per_segment_like(params, offsets, torch.int64, 2))


def composed_step(
    op: str, inputs: ValidInputs, eta_r: float, gamma: float, beta: float, out: torch.Tensor
) -> SAPStep:
    """The step as the composition of the three ops on inputs' backend ("torch", "triton").

    The same kernels compute the same values, so the step equals the separate ops bit for bit.
    (On Triton, fusing the selection of segments whole in a tile into the read of their power
    sums would save a read, but a kernel with more in it may reduce its float64 sums in
    another order, which would break that equality.)"""
    p, q = inputs.p, inputs.q
    pqi, count = pqi_and_count(op, inputs)
    n_prune = prune_counts_of(op, pqi, count, p, q, eta_r, gamma, beta, inputs.backend)
    # The power sums have checked that every live entry is finite.
    keep = count - n_prune  # on the params' device, where the backend takes it
    topk_mask_of(op, inputs.params, inputs.offsets, keep, inputs.mask, out, inputs.backend)
    return SAPStep(out, pqi, count, n_prune)


def fused_step(
    op: str, inputs: ValidInputs, eta_r: float, gamma: float, beta: float, out: torch.Tensor
) -> SAPStep:
    """The whole step in one native call: a segment that fits a tile is read from memory once."""
    num_segments = inputs.offsets.numel() - 1
    pqi = torch.empty(num_segments, dtype=torch.float64)
    count = torch.empty(num_segments, dtype=torch.int64)
    n_prune = torch.empty(num_segments, dtype=torch.int64)
    nonfinite = native(op).sap_step(
        *native_arguments(inputs),
        eta_r,
        gamma,
        beta,
        pqi.data_ptr(),
        count.data_ptr(),
        n_prune.data_ptr(),
        out.data_ptr(),
    )
    if nonfinite:
        _power_sums(op, inputs)  # raises, naming the segments that hold them
    return SAPStep(out, pqi, count, n_prune)
