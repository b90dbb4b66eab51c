"""The CUDA backend's calls into the extension: device addresses of validated tensors, the
current CUDA stream of their device, and a workspace from PyTorch's caching allocator (the
kernels allocate nothing themselves and never wait for the device)."""

from __future__ import annotations

import contextlib

import torch

from ._checks import DTYPE_CODES
from ._native import native
from .power_sums import buffer_arguments

OUTPUTS_F64, OUTPUTS_I64 = torch.float64, torch.int64


def _workspace(device: torch.device, nbytes: int) -> torch.Tensor:
    return torch.empty(max(int(nbytes), 1), dtype=torch.uint8, device=device)


def _stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


def _on(device: torch.device):
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def power_sums(op: str, inputs, want_pqi: bool) -> tuple[tuple[torch.Tensor, ...], bool]:
    """((scale, sum_p, sum_q, count, pqi or None), whether a live entry is NaN or inf)."""
    params, device = inputs.params, inputs.params.device
    num_segments = inputs.offsets.numel() - 1
    sums = [torch.empty(num_segments, dtype=OUTPUTS_F64, device=device) for _ in range(3)]
    count = torch.empty(num_segments, dtype=OUTPUTS_I64, device=device)
    pqi = torch.empty(num_segments, dtype=OUTPUTS_F64, device=device) if want_pqi else None
    nonfinite = torch.zeros(1, dtype=torch.int32, device=device)
    extension = native(op)
    with _on(device):
        nbytes = extension.power_sums_cuda_workspace(
            params.numel(), num_segments, DTYPE_CODES[params.dtype], inputs.q
        )
        workspace = _workspace(device, nbytes)
        extension.power_sums_cuda(
            *buffer_arguments(params, inputs.mask, inputs.offsets),
            inputs.p,
            inputs.q,
            *(t.data_ptr() for t in sums),
            count.data_ptr(),
            0 if pqi is None else pqi.data_ptr(),
            nonfinite.data_ptr(),
            _stream(device),
            workspace.data_ptr(),
            workspace.numel(),
        )
    return (*sums, count, pqi), bool(nonfinite.item())


def topk_mask(op: str, params, offsets, keep, mask, out) -> torch.Tensor:
    """Writes the mask of validated, finite inputs into out (keep: int64 [S])."""
    device = params.device
    keep = keep.to(device=device, dtype=torch.int64).contiguous()
    extension = native(op)
    with _on(device):
        nbytes = extension.topk_mask_cuda_workspace(
            params.numel(), offsets.numel() - 1, DTYPE_CODES[params.dtype]
        )
        workspace = _workspace(device, nbytes)
        extension.topk_mask_cuda(
            *buffer_arguments(params, mask, offsets),
            keep.data_ptr(),
            out.data_ptr(),
            _stream(device),
            workspace.data_ptr(),
            workspace.numel(),
        )
    return out


def sap_step(op: str, inputs, eta_r: float, gamma: float, beta: float, out):
    """(out, pqi, count, n_prune, whether a live entry is NaN or inf), the mask written into
    out."""
    params, device = inputs.params, inputs.params.device
    num_segments = inputs.offsets.numel() - 1
    pqi = torch.empty(num_segments, dtype=OUTPUTS_F64, device=device)
    count = torch.empty(num_segments, dtype=OUTPUTS_I64, device=device)
    n_prune = torch.empty(num_segments, dtype=OUTPUTS_I64, device=device)
    nonfinite = torch.zeros(1, dtype=torch.int32, device=device)
    extension = native(op)
    with _on(device):
        nbytes = extension.sap_step_cuda_workspace(
            params.numel(), num_segments, DTYPE_CODES[params.dtype], inputs.q
        )
        workspace = _workspace(device, nbytes)
        extension.sap_step_cuda(
            *buffer_arguments(params, inputs.mask, inputs.offsets),
            inputs.p,
            inputs.q,
            eta_r,
            gamma,
            beta,
            pqi.data_ptr(),
            count.data_ptr(),
            n_prune.data_ptr(),
            out.data_ptr(),
            nonfinite.data_ptr(),
            _stream(device),
            workspace.data_ptr(),
            workspace.numel(),
        )
    return out, pqi, count, n_prune, bool(nonfinite.item())


def retain_bound(op: str, pqi, count, p, q, eta_r) -> torch.Tensor:
    out = torch.empty(pqi.numel(), dtype=OUTPUTS_F64, device=pqi.device)
    with _on(pqi.device):
        native(op).retain_bound_cuda(
            pqi.data_ptr(), count.data_ptr(), pqi.numel(), p, q, eta_r, out.data_ptr(),
            _stream(pqi.device),
        )  # fmt: skip
    return out


def prune_counts(op: str, pqi, count, p, q, eta_r, gamma, beta) -> torch.Tensor:
    out = torch.empty(pqi.numel(), dtype=OUTPUTS_I64, device=pqi.device)
    with _on(pqi.device):
        native(op).prune_counts_cuda(
            pqi.data_ptr(), count.data_ptr(), pqi.numel(), p, q, eta_r, gamma, beta,
            out.data_ptr(), _stream(pqi.device),
        )  # fmt: skip
    return out
