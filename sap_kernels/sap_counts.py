"""SAP's adaptive prune counts from the PQ Index (Diao et al., ICLR 2023, Theorem 2, Alg. 1)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import reference
from ._checks import check_exponents
from ._dispatch import check_backend_argument, resolve_backend
from ._native import native


def sap_retain_bound(
    pqi: torch.Tensor,
    count: torch.Tensor,
    p: float,
    q: float,
    eta_r: float = 0.0,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Lower bound on the entries to retain (Theorem 2):

        r = d * (1 + eta_r)^(-q / (q - p)) * (1 - I)^(q p / (q - p))

    Args:
        pqi: PQ Index per segment, float tensor [S] (``segmented_pqi``).
        count: live entries d per segment, integer tensor [S].
        p, q: the exponents the PQI was computed with, 0 < p < q.
        eta_r: the paper's eta_r >= 0 (0 is the safe default).
        backend: ``"cpu"``, ``"cuda"``, ``"triton"``, ``"torch"`` or None.

    Returns:
        float64 tensor [S]; NaN where the PQI is NaN.
    """
    op = "sap_retain_bound"
    pqi, count = _check_tensor_types(op, pqi, count)
    p, q = check_exponents(op, p, q)
    eta_r = _check_real(op, "eta_r", eta_r, low=0.0)
    backend = check_backend_argument(op, backend)
    return torch.ops.sap_kernels.sap_retain_bound(pqi, count, p, q, eta_r, backend)


@torch.library.custom_op("sap_kernels::sap_retain_bound", mutates_args=())
def _retain_bound_op(
    pqi: Tensor, count: Tensor, p: float, q: float, eta_r: float, backend: str | None
) -> Tensor:
    op = "sap_retain_bound"
    pqi, count, p, q = _check_inputs(op, pqi, count, p, q)
    eta_r = _check_real(op, "eta_r", eta_r, low=0.0)
    backend = resolve_backend(op, backend, pqi.device)
    if backend == "cpu":
        out = torch.empty(pqi.numel(), dtype=torch.float64)
        native(op).retain_bound(
            pqi.data_ptr(), count.data_ptr(), pqi.numel(), p, q, eta_r, out.data_ptr()
        )
        return out
    if backend == "triton":
        from .triton import sap_counts as triton_counts

        return triton_counts.retain_bound_of(pqi, count, p, q, eta_r)
    if backend == "cuda":
        from . import _cuda

        return _cuda.retain_bound(op, pqi, count, p, q, eta_r)
    return reference.retain_bound(pqi, count, p, q, eta_r)


@_retain_bound_op.register_fake
def _(pqi, count, p, q, eta_r, backend):
    return pqi.new_empty(pqi.shape, dtype=torch.float64)


def sap_prune_counts(
    pqi: torch.Tensor,
    count: torch.Tensor,
    p: float,
    q: float,
    eta_r: float = 0.0,
    gamma: float = 1.0,
    beta: float = 0.9,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Entries to prune per segment (Algorithm 1), evaluated in float64:

        c = floor(d * min(gamma * (1 - r / d), beta)) = floor(max(0, min(gamma (d - r), beta d)))

    with r from ``sap_retain_bound``; 0 where the PQI is NaN or d = 0.

    Args:
        pqi: PQ Index per segment, float tensor [S].
        count: live entries d per segment, integer tensor [S].
        p, q: the exponents the PQI was computed with, 0 < p < q.
        eta_r: eta_r >= 0. gamma: scaling factor >= 0. beta: maximum prune ratio in [0, 1].
        backend: ``"cpu"``, ``"cuda"``, ``"triton"``, ``"torch"`` or None.

    Returns:
        int64 tensor [S].
    """
    op = "sap_prune_counts"
    pqi, count = _check_tensor_types(op, pqi, count)
    p, q = check_exponents(op, p, q)
    eta_r, gamma, beta = check_sap_parameters(op, eta_r, gamma, beta)
    backend = check_backend_argument(op, backend)
    return torch.ops.sap_kernels.sap_prune_counts(pqi, count, p, q, eta_r, gamma, beta, backend)


@torch.library.custom_op("sap_kernels::sap_prune_counts", mutates_args=())
def _prune_counts_op(
    pqi: Tensor,
    count: Tensor,
    p: float,
    q: float,
    eta_r: float,
    gamma: float,
    beta: float,
    backend: str | None,
) -> Tensor:
    op = "sap_prune_counts"
    pqi, count, p, q = _check_inputs(op, pqi, count, p, q)
    eta_r, gamma, beta = check_sap_parameters(op, eta_r, gamma, beta)
    backend = resolve_backend(op, backend, pqi.device)
    return prune_counts_of(op, pqi, count, p, q, eta_r, gamma, beta, backend)


@_prune_counts_op.register_fake
def _(pqi, count, p, q, eta_r, gamma, beta, backend):
    return pqi.new_empty(pqi.shape, dtype=torch.int64)


def prune_counts_of(
    op: str,
    pqi: torch.Tensor,
    count: torch.Tensor,
    p: float,
    q: float,
    eta_r: float,
    gamma: float,
    beta: float,
    backend: str,
) -> torch.Tensor:
    """The prune counts of validated float64 pqi and int64 count, on backend."""
    if backend == "cpu":
        out = torch.empty(pqi.numel(), dtype=torch.int64)
        native(op).prune_counts(
            pqi.data_ptr(), count.data_ptr(), pqi.numel(), p, q, eta_r, gamma, beta, out.data_ptr()
        )
        return out
    if backend == "triton":
        from .triton import sap_counts as triton_counts

        return triton_counts.prune_counts(pqi, count, p, q, eta_r, gamma, beta)
    if backend == "cuda":
        from . import _cuda

        return _cuda.prune_counts(op, pqi, count, p, q, eta_r, gamma, beta)
    return reference.prune_counts(pqi, count, p, q, eta_r, gamma, beta)


def check_sap_parameters(
    op: str, eta_r: float, gamma: float, beta: float
) -> tuple[float, float, float]:
    """eta_r >= 0, gamma >= 0 and 0 <= beta <= 1, as floats; errors carry op's name."""
    return (
        _check_real(op, "eta_r", eta_r, low=0.0),
        _check_real(op, "gamma", gamma, low=0.0),
        _check_real(op, "beta", beta, low=0.0, high=1.0),
    )


def _check_tensor_types(
    op: str, pqi: torch.Tensor, count: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """pqi a floating-point tensor, count an integer one (checks that trace under compile)."""
    if not isinstance(pqi, torch.Tensor) or not pqi.is_floating_point():
        got = pqi.dtype if isinstance(pqi, torch.Tensor) else type(pqi).__name__
        raise TypeError(f"{op}: pqi must be a floating-point tensor, got {got}")
    if (
        not isinstance(count, torch.Tensor)
        or count.is_floating_point()
        or count.dtype == torch.bool
    ):
        got = count.dtype if isinstance(count, torch.Tensor) else type(count).__name__
        raise TypeError(f"{op}: count must be an integer tensor, got {got}")
    return pqi, count


def _check_inputs(
    op: str, pqi: torch.Tensor, count: torch.Tensor, p: float, q: float
) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    pqi, count = _check_tensor_types(op, pqi, count)
    if pqi.dim() != 1 or count.shape != pqi.shape:
        raise ValueError(
            f"{op}: pqi and count must be 1-D of the same length, got shapes "
            f"{tuple(pqi.shape)} and {tuple(count.shape)}"
        )
    if count.device != pqi.device:
        raise ValueError(f"{op}: count must be on {pqi.device} like pqi, got {count.device}")
    if count.numel() and int(count.min()) < 0:
        raise ValueError(f"{op}: count must be >= 0, got {int(count.min())}")
    p, q = check_exponents(op, p, q)
    return pqi.double().contiguous(), count.to(torch.int64).contiguous(), p, q


def _check_real(op: str, name: str, value: float, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
    if not (low <= value <= high) or math.isnan(value):
        bounds = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ValueError(f"{op}: {name} must be {bounds}, got {name} = {value}")
    return float(value)
