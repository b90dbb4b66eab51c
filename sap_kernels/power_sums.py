"""segmented_power_sums: Σ|w|^p and Σ|w|^q per segment, scale-stable."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from . import reference
from ._checks import (
    DTYPE_CODES,
    check_exponents,
    check_mask,
    check_nan_policy,
    check_params,
    nonfinite_error,
)
from ._dispatch import check_backend_argument, resolve_backend
from ._native import native
from .segments import Segments, check_offsets, offsets_argument


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


def segment_op_arguments(
    op: str,
    params: torch.Tensor,
    segments: Segments | torch.Tensor,
    p: float,
    q: float,
    mask: torch.Tensor | None,
    nan_policy: str,
    backend: str | None,
) -> tuple:
    """The arguments of a segmented custom op, from those of the public call. Checks only what
    needs no look at tensor values (so that it traces under torch.compile); the op checks the
    rest (`check_power_sums_inputs`)."""
    params = check_params(op, params)
    mask = check_mask(op, mask, params)
    p, q = check_exponents(op, p, q)
    nan_policy = check_nan_policy(op, nan_policy)
    offsets = offsets_argument(op, segments, params)
    return params, offsets, p, q, mask, nan_policy, check_backend_argument(op, backend)


def check_power_sums_inputs(
    op: str,
    params: torch.Tensor,
    offsets: torch.Tensor,
    p: float,
    q: float,
    mask: torch.Tensor | None,
    nan_policy: str,
    backend: str | None,
) -> ValidInputs:
    """Validates the inputs of op (whose name its errors carry), inside the custom op, before
    any work is done."""
    params = check_params(op, params)
    mask = check_mask(op, mask, params)
    p, q = check_exponents(op, p, q)
    nan_policy = check_nan_policy(op, nan_policy)
    offsets = check_offsets(op, offsets, params)
    backend = resolve_backend(op, backend, params.device)
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
        backend: ``"cpu"`` (C++), ``"cuda"``, ``"triton"``, ``"torch"`` (reference) or None
            (the default for the device; ``$SAP_KERNELS_BACKEND`` overrides it).

    Returns:
        PowerSums(scale, sum_p, sum_q, count).
    """
    op = "segmented_power_sums"
    arguments = segment_op_arguments(op, params, segments, p, q, mask, nan_policy, backend)
    return PowerSums(*torch.ops.sap_kernels.segmented_power_sums(*arguments))


@torch.library.custom_op("sap_kernels::segmented_power_sums", mutates_args=())
def _power_sums_op(
    params: Tensor,
    offsets: Tensor,
    p: float,
    q: float,
    mask: Tensor | None,
    nan_policy: str,
    backend: str | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    op = "segmented_power_sums"
    inputs = check_power_sums_inputs(op, params, offsets, p, q, mask, nan_policy, backend)
    return tuple(_power_sums(op, inputs))


@_power_sums_op.register_fake
def _(params, offsets, p, q, mask, nan_policy, backend):
    return (
        *per_segment_like(params, offsets, torch.float64, 3),
        *per_segment_like(params, offsets, torch.int64, 1),
    )


def per_segment_like(params: Tensor, offsets: Tensor, dtype: torch.dtype, how_many: int) -> list:
    """how_many fresh [S] tensors of dtype on params' device (a fake implementation's outputs)."""
    num_segments = offsets.shape[0] - 1
    return [params.new_empty(num_segments, dtype=dtype) for _ in range(how_many)]


def _power_sums(op: str, inputs: ValidInputs) -> PowerSums:
    """The power sums on inputs' backend; raises for NaN / inf under nan_policy="raise"."""
    sums, nonfinite = _BACKENDS[inputs.backend](op, inputs)
    if nonfinite and inputs.nan_policy == "raise":
        bad_segments = sums.sum_p.isnan().nonzero().view(-1)
        raise nonfinite_error(op, nonfinite, bad_segments, can_propagate=inputs.has_nan_policy)
    return sums


def count_nonfinite_where_nan(sums: PowerSums, inputs: ValidInputs) -> int:
    """The number of NaN / inf live entries, counted only when some segment's sum is NaN (a
    backend gives NaN sums exactly to the segments that hold one)."""
    if not bool(sums.sum_p.isnan().any()):
        return 0
    return int(torch.count_nonzero(reference.nonfinite_live(inputs.params, inputs.mask)))


def _power_sums_torch(op: str, inputs: ValidInputs) -> tuple[PowerSums, int]:
    sums = PowerSums(
        *reference.power_sums(inputs.params, inputs.offsets, inputs.p, inputs.q, inputs.mask)
    )
    return sums, count_nonfinite_where_nan(sums, inputs)


def _power_sums_cuda(op: str, inputs: ValidInputs) -> tuple[PowerSums, int]:
    from . import _cuda

    sums, nonfinite = _cuda.power_sums(op, inputs, want_pqi=False)
    sums = PowerSums(*sums[:4])
    return sums, count_nonfinite_where_nan(sums, inputs) if nonfinite else 0


def _power_sums_triton(op: str, inputs: ValidInputs) -> tuple[PowerSums, int]:
    from .triton import power_sums as triton_power_sums

    sums, nonfinite = triton_power_sums.segmented_power_sums(inputs)
    sums = PowerSums(*sums)
    return sums, count_nonfinite_where_nan(sums, inputs) if nonfinite else 0


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


def buffer_arguments(
    params: torch.Tensor, mask: torch.Tensor | None, offsets: torch.Tensor
) -> tuple:
    """A segmented buffer as the extension's kernels take it (raw addresses of validated
    tensors, which the caller keeps alive): params, dtype code, mask (0: none), numel, offsets,
    number of segments."""
    return (
        params.data_ptr(),
        DTYPE_CODES[params.dtype],
        0 if mask is None else mask.data_ptr(),
        params.numel(),
        offsets.data_ptr(),
        offsets.numel() - 1,
    )


def native_arguments(inputs: ValidInputs) -> tuple:
    """The segmented buffer and exponents of validated inputs, as the kernels take them."""
    return (*buffer_arguments(inputs.params, inputs.mask, inputs.offsets), inputs.p, inputs.q)


_BACKENDS = {
    "cpu": _power_sums_cpu,
    "cuda": _power_sums_cuda,
    "torch": _power_sums_torch,
    "triton": _power_sums_triton,
}
