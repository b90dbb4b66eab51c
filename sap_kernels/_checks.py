"""Validation shared by every op. Errors name the op, what was expected and what came."""

from __future__ import annotations

import math

import torch

# dtype -> code of sap_kernels::ScalarType (csrc/include/sap_kernels/scalar_type.h)
DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
NAN_POLICIES = ("raise", "propagate")


def check_params(op: str, params: object) -> torch.Tensor:
    if not isinstance(params, torch.Tensor):
        raise TypeError(f"{op}: params must be a torch.Tensor, got {type(params).__name__}")
    if params.dtype not in DTYPE_CODES:
        expected = ", ".join(str(dtype) for dtype in DTYPE_CODES)
        raise TypeError(f"{op}: params must have dtype {expected}; got {params.dtype}")
    if params.dim() != 1:
        raise ValueError(
            f"{op}: params must be 1-D (flatten it, e.g. params.view(-1)); "
            f"got shape {tuple(params.shape)}"
        )
    if not params.is_contiguous():
        raise ValueError(
            f"{op}: params must be contiguous; got stride {params.stride()} "
            "(call .contiguous() first)"
        )
    return params


def check_mask(op: str, mask: object, params: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"{op}: mask must be a bool torch.Tensor or None, got {type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise TypeError(f"{op}: mask must have dtype torch.bool, got {mask.dtype}")
    if mask.numel() != params.numel():
        raise ValueError(
            f"{op}: mask must have params.numel() = {params.numel()} elements, "
            f"got {mask.numel()} (shape {tuple(mask.shape)})"
        )
    if mask.device != params.device:
        raise ValueError(f"{op}: mask must be on {params.device} like params, got {mask.device}")
    return mask.reshape(-1).contiguous()


def check_exponents(op: str, p: object, q: object) -> tuple[float, float]:
    for name, value in (("p", p), ("q", q)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{op}: {name} must be finite and > 0, got {name} = {value}")
    if not p < q:
        raise ValueError(f"{op}: needs 0 < p < q, got p = {p}, q = {q}")
    return float(p), float(q)


def check_nan_policy(op: str, nan_policy: str) -> str:
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"{op}: nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    return nan_policy


def nonfinite_error(
    op: str, how_many: int, bad_segments: torch.Tensor, *, can_propagate: bool = True
) -> ValueError:
    """The error for NaN / inf in live entries; bad_segments lists the segments that hold them.
    can_propagate: whether op has a nan_policy that would accept them."""
    shown = bad_segments[:10].tolist()
    more = f" and {bad_segments.numel() - 10} more" if bad_segments.numel() > 10 else ""
    hint = (
        "; pass nan_policy='propagate' to get NaN for those segments instead"
        if can_propagate
        else " (mask them out or make them finite)"
    )
    return ValueError(
        f"{op}: params must be finite where live, got {how_many} NaN or inf live "
        f"entr{'y' if how_many == 1 else 'ies'} in segment(s) {shown}{more}{hint}"
    )
