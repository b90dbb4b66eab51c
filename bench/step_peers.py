"""The SAP step as the peers do it, for report_step.py: each returns the new bool mask [n].

- ``paper_step``: the paper code's eager way: norms per row / per layer / of the whole vector,
  the prune count, a full ``torch.sort`` of |w|, the pivot at the count, and a compare.
- ``kthvalue_step``: sap_kernels' counts, then the threshold by ``torch.kthvalue`` of |w|
  (global scope only: kthvalue has no ragged form) and a compare.

Both keep every entry tied with the pivot, as the paper code does; sap_kernels keeps exactly
d - c. The counts come from sap_kernels so that all three prune the same number per segment.
"""

from __future__ import annotations

import torch

import sap_kernels as sk

P, Q = 0.5, 1.0


def sap_step(
    params: torch.Tensor, segments: sk.Segments, live: torch.Tensor | None = None
) -> torch.Tensor:
    """The step into a fresh mask; `live`: the mask of the live entries, if any (as a pruner's
    steps past its first)."""
    return sk.sap_step(params, segments, P, Q, live, backend="cpu").mask


def sap_step_into(params: torch.Tensor, segments: sk.Segments, out: torch.Tensor) -> torch.Tensor:
    """The same into a mask buffer the caller keeps (no fresh pages to fault in each call)."""
    return sk.sap_step(params, segments, P, Q, out=out, backend="cpu").mask


def paper_counts(magnitude: torch.Tensor) -> torch.Tensor:
    """Per row of a 2-D |w|: the paper's prune count from two norms (eta_r = 0, gamma = 1,
    beta = 0.9), as int64 [rows]."""
    d = magnitude.shape[-1]
    norm_p = torch.linalg.vector_norm(magnitude, P, dim=-1)
    norm_q = torch.linalg.vector_norm(magnitude, Q, dim=-1)
    pqi = 1 - d ** (1 / Q - 1 / P) * norm_p / norm_q
    retain = d * (1 - pqi) ** (Q * P / (Q - P))
    prune = torch.minimum(d - retain, torch.full_like(retain, 0.9 * d)).clamp(min=0).floor()
    return prune.long()


def paper_step(params: torch.Tensor, rows: int) -> torch.Tensor:
    """The paper's step on params viewed as (rows, n / rows): rows = 1 is global scope."""
    magnitude = params.view(rows, -1).abs()
    prune = paper_counts(magnitude)
    sorted_magnitude = torch.sort(magnitude, dim=-1).values
    pivot = sorted_magnitude.gather(-1, (prune - 1).clamp(min=0).unsqueeze(-1))
    keep = (magnitude > pivot) | (prune == 0).unsqueeze(-1)
    return keep.view(-1)


def kthvalue_step(params: torch.Tensor, segments: sk.Segments) -> torch.Tensor:
    """Global scope: sap_kernels' count c, the c-th smallest |w| by torch.kthvalue, a compare."""
    pqi = sk.segmented_pqi(params, segments, P, Q, backend="cpu")
    count = torch.tensor([params.numel()])
    prune = int(sk.sap_prune_counts(pqi, count, P, Q, backend="cpu")[0])
    magnitude = params.abs()
    if prune == 0:
        return torch.ones_like(params, dtype=torch.bool)
    pivot = torch.kthvalue(magnitude, prune).values
    return magnitude > pivot
