"""segmented_pqi: the PQ Index of every segment."""

from __future__ import annotations

import torch
from torch import Tensor

from . import reference
from ._native import native
from .power_sums import (
    ValidInputs,
    _power_sums,
    check_power_sums_inputs,
    native_arguments,
    per_segment_like,
    segment_op_arguments,
)
from .segments import Segments


def segmented_pqi(
    params: torch.Tensor,
    segments: Segments | torch.Tensor,
    p: float,
    q: float,
    mask: torch.Tensor | None = None,
    *,
    nan_policy: str = "raise",
    backend: str | None = None,
) -> torch.Tensor:
    """PQ Index per segment (Diao et al., ICLR 2023, Definition 1):

        I = 1 - d^(1/q - 1/p) * ||a||_p / ||a||_q,   a = |w| over the live entries, d = their count

    0 <= I <= 1 - d^(1/q - 1/p); larger is sparser. d = 1 gives 0; d = 0 or all live entries
    zero gives NaN.

    Args:
        params: 1-D contiguous float32 / float64 / float16 / bfloat16 buffer.
        segments: a ``Segments`` or 1-D int64 offsets (length S + 1, ending at params.numel()).
        p, q: exponents, 0 < p < q.
        mask: optional bool tensor of params.numel() elements; False entries take no part.
        nan_policy: ``"raise"`` (a NaN / inf live entry is an error) or ``"propagate"``
            (its segment's PQI is NaN).
        backend: ``"cpu"`` (C++), ``"cuda"``, ``"triton"``, ``"torch"`` (reference) or None
            (the default for the device; ``$SAP_KERNELS_BACKEND`` overrides it).

    Returns:
        float64 tensor [S].
    """
    op = "segmented_pqi"
    arguments = segment_op_arguments(op, params, segments, p, q, mask, nan_policy, backend)
    return torch.ops.sap_kernels.segmented_pqi(*arguments)


@torch.library.custom_op("sap_kernels::segmented_pqi", mutates_args=())
def _pqi_op(
    params: Tensor,
    offsets: Tensor,
    p: float,
    q: float,
    mask: Tensor | None,
    nan_policy: str,
    backend: str | None,
) -> Tensor:
    op = "segmented_pqi"
    inputs = check_power_sums_inputs(op, params, offsets, p, q, mask, nan_policy, backend)
    if inputs.backend == "cpu":
        # Without the counts: one store fewer a segment (8 bytes of the ~360 a ragged one reads)
        return _pqi_cpu(op, inputs, count=None)
    return pqi_and_count(op, inputs)[0]


@_pqi_op.register_fake
def _(params, offsets, p, q, mask, nan_policy, backend):
    return per_segment_like(params, offsets, torch.float64, 1)[0]


def pqi_and_count(op: str, inputs: ValidInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(PQI float64 [S], live count int64 [S]) of validated inputs, in one pass where the
    backend has one."""
    if inputs.backend == "cpu":
        count = torch.empty(inputs.offsets.numel() - 1, dtype=torch.int64)
        return _pqi_cpu(op, inputs, count), count
    if inputs.backend in ("cuda", "triton"):
        pqi, count, nonfinite = _pqi_gpu(op, inputs)
        if nonfinite and inputs.nan_policy == "raise":
            _power_sums(op, inputs)  # raises, naming the segments that hold them
        return pqi, count
    sums = _power_sums(op, inputs)
    pqi = reference.pqi_from_power_sums(sums.sum_p, sums.sum_q, sums.count, inputs.p, inputs.q)
    return pqi, sums.count


def _pqi_gpu(op: str, inputs: ValidInputs) -> tuple[torch.Tensor, torch.Tensor, bool]:
    if inputs.backend == "cuda":
        from . import _cuda

        (_, _, _, count, pqi), nonfinite = _cuda.power_sums(op, inputs, want_pqi=True)
        return pqi, count, nonfinite
    from .triton import power_sums as triton_power_sums

    return triton_power_sums.segmented_pqi(inputs)


def _pqi_cpu(op: str, inputs: ValidInputs, count: torch.Tensor | None) -> torch.Tensor:
    """The PQI by the C++ kernel; the live counts go into `count` (int64 [S]) unless None."""
    pqi = torch.empty(inputs.offsets.numel() - 1, dtype=torch.float64)
    count_address = count.data_ptr() if count is not None else 0
    nonfinite = native(op).pqi(*native_arguments(inputs), pqi.data_ptr(), count_address)
    if nonfinite and inputs.nan_policy == "raise":
        _power_sums(op, inputs)  # raises, naming the segments that hold them
    return pqi
