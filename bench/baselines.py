"""The competitors of sap_kernels.segmented_pqi: per-segment PQ Index of a float32 buffer
(or bfloat16 / float16: report.py --dtype).

Every implementation returns float64 [S]:

- ``paper_eager_pqi``: the paper's own code style (Diao et al., ICLR 2023): per layer a mask
  multiply and two ``torch.linalg.norm`` calls, in the params' dtype.
- ``eager_reference_pqi``: ``sap_kernels.reference.pqi`` (vectorised eager float64, scatter /
  index_add over segment ids).
- ``compiled_reference_pqi``: ``torch.compile(reference.pqi, dynamic=False)``.
- ``compiled_rows_pqi``: ``torch.compile`` of a 2-D row-wise formula, uniform rows only.
- ``torch_sum``: the yardstick, ``torch.sum`` of the same buffer (one read of it).

The compiled factories bake p and q in as constants (closure cells), so Inductor specialises
the powers; the caller warms them up (compiles) outside any timing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch._dynamo

from sap_kernels import Segments, reference, segmented_pqi
from sap_kernels._native import using_cpu_isa

PqiFn = Callable[[], torch.Tensor]

# one compile per (shape, p, q) of the same code object: keep Dynamo from falling back to eager
torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
if hasattr(torch._dynamo.config, "recompile_limit"):
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)


def sap_kernels_pqi(params: torch.Tensor, segments: Segments, p: float, q: float) -> torch.Tensor:
    """The contender: the native CPU kernel, validated offsets (Segments) built once."""
    return segmented_pqi(params, segments, p, q, backend="cpu")


def sap_kernels_pqi_with_copy(
    isa: str, params: torch.Tensor, segments: Segments, p: float, q: float
) -> torch.Tensor:
    """The same through one copy of the CPU kernels (sap_kernels.cpu_isas()), the active one
    restored after the call."""
    with using_cpu_isa(isa):
        return segmented_pqi(params, segments, p, q, backend="cpu")


def paper_eager_pqi(
    layers: list[torch.Tensor],
    masks: list[torch.Tensor],
    p: float,
    q: float,
    scope: str = "neuron",
) -> torch.Tensor:
    """The paper's eager PQI: for each layer w (and its bool mask), rows of
    ``w.view(out, -1)`` (neuron scope) or the whole flattened layer (layer scope), or all
    layers concatenated (global scope); I = 1 - d^(1/q - 1/p) ||w||_p / ||w||_q per row, d
    the live count."""
    if scope == "global":
        layers = [_flat_concat(layers).view(1, -1)]
        masks = [_flat_concat(masks).view(1, -1)]
    results = []
    for weight, mask in zip(layers, masks):
        rows = weight.shape[0] if scope == "neuron" else 1
        w = weight.view(rows, -1)
        m = mask.view(rows, -1)
        w = w * m
        d = m.sum(dim=1)
        norm_p = torch.linalg.norm(w, p, dim=1)
        norm_q = torch.linalg.norm(w, q, dim=1)
        results.append(1 - d ** (1 / q - 1 / p) * norm_p / norm_q)
    return torch.cat(results).double()


def _flat_concat(tensors: list[torch.Tensor]) -> torch.Tensor:
    if len(tensors) == 1:
        return tensors[0].reshape(-1)
    return torch.cat([tensor.reshape(-1) for tensor in tensors])


def eager_reference_pqi(
    params: torch.Tensor, offsets: torch.Tensor, p: float, q: float
) -> torch.Tensor:
    """sap_kernels.reference.pqi: vectorised eager PyTorch in float64."""
    return reference.pqi(params, offsets, p, q)


def compiled_reference_pqi(
    p: float, q: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """torch.compile (dynamic=False) of reference.pqi with p, q fixed; call as fn(params,
    offsets). The data-dependent repeat_interleave of the segment ids breaks the graph."""

    def pqi(params: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return reference.pqi(params, offsets, p, q)

    return torch.compile(pqi, dynamic=False)


def compiled_rows_pqi(
    rows: int, cols: int, p: float, q: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """torch.compile (dynamic=False) of the row-wise PQI of params viewed as (rows, cols):
    float32 |w| (16-bit params widened to it), its p-th and q-th powers summed along dim 1, the
    formula in float64. The strongest compiled peer on uniform rows (no segment ids, no
    scatter)."""
    exponent = 1.0 / q - 1.0 / p

    def pqi(params: torch.Tensor) -> torch.Tensor:
        a = params.view(rows, cols).abs().float()
        sum_p = (a**p).sum(dim=1).double()
        sum_q = (a**q).sum(dim=1).double()
        return 1.0 - cols**exponent * sum_p ** (1.0 / p) / sum_q ** (1.0 / q)

    return torch.compile(pqi, dynamic=False)


def torch_sum(params: torch.Tensor) -> torch.Tensor:
    """The yardstick: one streaming read of the buffer."""
    return torch.sum(params)
