"""segmented_topk_mask: exact per-segment magnitude masks; apply_mask: zero what they prune."""

from __future__ import annotations

import torch
from torch import Tensor

from . import reference
from ._checks import DTYPE_CODES, check_mask, check_params, nonfinite_error
from ._dispatch import check_backend_argument, resolve_backend
from ._native import empty_mask, native, native_available
from .power_sums import buffer_arguments
from .segments import Segments, check_offsets, offsets_argument

INT64_MAX = 2**63 - 1


def keep_counts_argument(op: str, k: object, num_segments: int) -> torch.Tensor:
    """k as the custom op takes it: an int64 tensor (an int is the same k for every segment).
    Its values are checked by the op (`check_keep_counts`)."""
    if isinstance(k, bool):
        raise TypeError(f"{op}: k must be an int or an int64 tensor, got bool")
    if isinstance(k, int):
        if k < 0 or k > INT64_MAX:
            raise ValueError(f"{op}: k must be >= 0 and fit in int64 (<= 2^63 - 1), got k = {k}")
        return torch.full((num_segments,), k, dtype=torch.int64)
    if not isinstance(k, torch.Tensor):
        raise TypeError(f"{op}: k must be an int or an int64 tensor, got {type(k).__name__}")
    return k


def check_keep_counts(op: str, k: torch.Tensor, num_segments: int) -> torch.Tensor:
    """k as a contiguous CPU int64 tensor [S] of non-negative counts."""
    if k.dtype != torch.int64:
        raise TypeError(f"{op}: k must have dtype torch.int64, got {k.dtype}")
    if k.dim() != 1 or k.numel() != num_segments:
        raise ValueError(
            f"{op}: k must be an int or a 1-D tensor of one count per segment, shape "
            f"[{num_segments}]; got shape {list(k.shape)}"
        )
    k = k.to("cpu").contiguous()
    if num_segments and int(k.min()) < 0:
        first = int((k < 0).nonzero()[0, 0])
        raise ValueError(f"{op}: k must be >= 0 in every segment, got k[{first}] = {int(k[first])}")
    return k


def _byte_range(tensor: torch.Tensor) -> tuple[int, int]:
    start = tensor.data_ptr()
    return start, start + tensor.numel() * tensor.element_size()


def check_no_overlap(op: str, out: torch.Tensor, inputs: dict[str, torch.Tensor | None]) -> None:
    """out may share no memory with an input the kernel reads while it writes out (params and
    the live mask, both contiguous here): the mask would come out silently wrong."""
    out_start, out_end = _byte_range(out)
    for name, tensor in inputs.items():
        if tensor is None or tensor.device != out.device or tensor.numel() == 0:
            continue
        start, end = _byte_range(tensor)
        if start < out_end and out_start < end:
            raise ValueError(
                f"{op}: out must not share memory with {name}, which is read while out is "
                f"written; got out overlapping {name} (pass a separate tensor, e.g. "
                f"{name}.clone() as {name})"
            )


def check_out(
    op: str, out: object, params: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """out as given (checked: a contiguous bool tensor like params, sharing no memory with
    params or mask), or a fresh one."""
    if out is None:
        if params.device.type == "cpu":
            return empty_mask(params.numel())
        return torch.empty(params.numel(), dtype=torch.bool, device=params.device)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{op}: out must be a bool torch.Tensor or None, got {type(out).__name__}")
    if out.dtype != torch.bool or out.dim() != 1 or out.numel() != params.numel():
        raise ValueError(
            f"{op}: out must be a 1-D bool tensor of params.numel() = {params.numel()} "
            f"elements, got dtype {out.dtype}, shape {tuple(out.shape)}"
        )
    if not out.is_contiguous():
        raise ValueError(f"{op}: out must be contiguous, got stride {out.stride()}")
    if out.device != params.device:
        raise ValueError(f"{op}: out must be on {params.device} like params, got {out.device}")
    check_no_overlap(op, out, {"params": params, "mask": mask})
    return out


def raise_if_nonfinite(
    op: str, params: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor | None
) -> None:
    """NaN / inf live entries have no place in a magnitude order: a clear error."""
    if params.device.type == "cpu" and native_available():
        native_count = native(op).count_nonfinite(
            params.data_ptr(),
            DTYPE_CODES[params.dtype],
            0 if mask is None else mask.data_ptr(),
            params.numel(),
        )
        if native_count == 0:
            return
    raise_nonfinite_found(op, params, offsets, mask)


def raise_nonfinite_found(
    op: str, params: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor | None
) -> None:
    """The error for the live NaN / inf entries of params, naming how many and their segments
    (found by the reference; returns if there are none)."""
    bad = reference.nonfinite_live(params, mask)
    how_many = int(torch.count_nonzero(bad))
    if how_many:
        positions = bad.nonzero().flatten()
        segments = torch.searchsorted(offsets, positions, right=True) - 1
        raise nonfinite_error(op, how_many, segments.unique(), can_propagate=False)


def segmented_topk_mask(
    params: torch.Tensor,
    segments: Segments | torch.Tensor,
    k: int | torch.Tensor,
    mask: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """The mask that keeps, in each segment, the ``min(k, d)`` live entries of largest ``|w|``
    (d = live entries of the segment); among equal ``|w|`` the lower flat index is kept.
    Dead entries (mask False) stay False.

    Args:
        params: 1-D contiguous float32 / float64 / float16 / bfloat16 buffer, finite where live.
        segments: a ``Segments`` or 1-D int64 offsets (length S + 1, ending at params.numel()).
        k: entries to keep per segment: an int, or an int64 tensor [S]; every k >= 0.
        mask: optional bool tensor of params.numel() elements; False entries take no part.
        out: optional contiguous bool tensor [params.numel()] to write the mask into (left as
            it was when the call fails).
        backend: ``"cpu"`` (C++), ``"cuda"``, ``"triton"``, ``"torch"`` (reference) or None
            (the default for the device; ``$SAP_KERNELS_BACKEND`` overrides it).

    Returns:
        bool tensor [params.numel()] (``out`` when given).
    """
    op = "segmented_topk_mask"
    params = check_params(op, params)
    mask = check_mask(op, mask, params)
    offsets = offsets_argument(op, segments, params)
    keep = keep_counts_argument(op, k, offsets.shape[0] - 1)
    backend = check_backend_argument(op, backend)
    if out is None:
        return torch.ops.sap_kernels.segmented_topk_mask(params, offsets, keep, mask, backend)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{op}: out must be a bool torch.Tensor or None, got {type(out).__name__}")
    torch.ops.sap_kernels.segmented_topk_mask_out(params, offsets, keep, mask, backend, out)
    return out


def _topk_mask_into(
    op: str,
    params: Tensor,
    offsets: Tensor,
    k: Tensor,
    mask: Tensor | None,
    backend: str | None,
    out: Tensor | None,
) -> Tensor:
    """Validates the op's inputs (before anything is written), then writes the mask."""
    params = check_params(op, params)
    mask = check_mask(op, mask, params)
    offsets = check_offsets(op, offsets, params)
    keep = check_keep_counts(op, k, offsets.numel() - 1)
    given_out = out is not None
    out = check_out(op, out, params, mask)
    backend = resolve_backend(op, backend, params.device)
    if given_out or backend != "cpu":
        # Checked before anything is written: a failed call leaves the caller's out as it was.
        raise_if_nonfinite(op, params, offsets, mask)
    # Into a fresh mask the CPU kernel counts NaN / inf as it selects (topk_mask_of raises).
    return topk_mask_of(op, params, offsets, keep, mask, out, backend)


@torch.library.custom_op("sap_kernels::segmented_topk_mask", mutates_args=())
def _topk_mask_op(
    params: Tensor, offsets: Tensor, k: Tensor, mask: Tensor | None, backend: str | None
) -> Tensor:
    return _topk_mask_into("segmented_topk_mask", params, offsets, k, mask, backend, None)


@_topk_mask_op.register_fake
def _(params, offsets, k, mask, backend):
    return params.new_empty(params.shape, dtype=torch.bool)


@torch.library.custom_op("sap_kernels::segmented_topk_mask_out", mutates_args=("out",))
def _topk_mask_out_op(
    params: Tensor,
    offsets: Tensor,
    k: Tensor,
    mask: Tensor | None,
    backend: str | None,
    out: Tensor,
) -> None:
    _topk_mask_into("segmented_topk_mask", params, offsets, k, mask, backend, out)


@_topk_mask_out_op.register_fake
def _(params, offsets, k, mask, backend, out):
    return None


def topk_mask_of(
    op: str,
    params: torch.Tensor,
    offsets: torch.Tensor,
    keep: torch.Tensor,
    mask: torch.Tensor | None,
    out: torch.Tensor,
    backend: str,
) -> torch.Tensor:
    """The mask of validated inputs into out, on backend (keep: CPU int64 [S]). params must be
    finite where live; backend "cpu" checks it as it selects, and raises for NaN / inf (out
    then partly written)."""
    if backend == "triton":
        from .triton import topk_mask as triton_topk

        return triton_topk.segmented_topk_mask(params, offsets, keep, mask, out)
    if backend == "cuda":
        from . import _cuda

        return _cuda.topk_mask(op, params, offsets, keep, mask, out)
    if backend != "cpu":
        out.copy_(reference.topk_mask(params, offsets, keep, mask))
        return out
    arguments = buffer_arguments(params, mask, offsets)
    if native(op).topk_mask(*arguments, keep.data_ptr(), out.data_ptr()):
        raise_nonfinite_found(op, params, offsets, mask)
    return out


def apply_mask(params: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zeroes, in place, the entries of params where mask is False (one pass), for pruners that
    keep the zeros in the weights.

    Args:
        params: contiguous tensor of any shape and floating dtype.
        mask: bool tensor of params.numel() elements.

    Returns:
        params.
    """
    op = "apply_mask"
    if not isinstance(params, torch.Tensor) or not params.is_floating_point():
        raise TypeError(f"{op}: params must be a floating-point torch.Tensor, got {params!r:.80}")
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"{op}: mask must be a bool torch.Tensor or None, got {type(mask).__name__}"
        )
    torch.ops.sap_kernels.apply_mask(params, mask)
    return params


@torch.library.custom_op("sap_kernels::apply_mask", mutates_args=("params",))
def _apply_mask_op(params: Tensor, mask: Tensor) -> None:
    op = "apply_mask"
    if not params.is_floating_point():
        raise TypeError(f"{op}: params must be a floating-point torch.Tensor, got {params.dtype}")
    if not params.is_contiguous():
        raise ValueError(f"{op}: params must be contiguous; got stride {params.stride()}")
    mask = check_mask(op, mask, params)
    if params.device.type == "cpu" and native_available() and params.element_size() in (2, 4, 8):
        size = params.element_size()
        native(op).apply_mask(params.data_ptr(), size, mask.data_ptr(), mask.numel())
    else:
        params.view(-1).masked_fill_(mask.logical_not(), 0)


@_apply_mask_op.register_fake
def _(params, mask):
    return None
