"""The reference: every op in plain PyTorch float64, written for clarity, not speed.

It is the oracle of the tests and the baseline of the benchmarks. Inputs are assumed valid
(the public ops validate them); NaN / inf propagate into NaN statistics.
"""

from __future__ import annotations

import torch


def segment_ids(offsets: torch.Tensor) -> torch.Tensor:
    """The segment index of every element of the buffer cut by offsets."""
    lengths = offsets.diff()
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=offsets.device), lengths)


def live_magnitudes(params: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """|w| in float64, 0 where the mask marks an entry dead."""
    magnitudes = params.double().abs()
    return magnitudes if mask is None else torch.where(mask, magnitudes, 0.0)


def power_sums(
    params: torch.Tensor, offsets: torch.Tensor, p: float, q: float, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scale, sum_p, sum_q, count) per segment, with scale = max live |w| (0 if none),
    sum_p = Σ (a / scale)^p and sum_q likewise, count = number of live entries."""
    num_segments = offsets.numel() - 1
    ids = segment_ids(offsets)
    a = live_magnitudes(params, mask)
    zeros = torch.zeros(num_segments, dtype=torch.float64, device=params.device)
    scale = zeros.scatter_reduce(0, ids, a, reduce="amax", include_self=True)
    divisor = torch.where(scale > 0, scale, 1.0)
    x = a / divisor[ids]
    sum_p = zeros.index_add(0, ids, x**p)
    sum_q = zeros.index_add(0, ids, x**q)
    live = torch.ones_like(a) if mask is None else mask.double()
    count = zeros.index_add(0, ids, live).to(torch.int64)
    # a NaN or inf entry makes its segment's sums NaN (inf / inf, or NaN itself)
    return scale, sum_p, sum_q, count


def pqi_from_power_sums(
    sum_p: torch.Tensor, sum_q: torch.Tensor, count: torch.Tensor, p: float, q: float
) -> torch.Tensor:
    """I = 1 - d^(1/q - 1/p) ||a||_p / ||a||_q; NaN if d = 0 or a = 0, and 0 if d = 1."""
    d = count.double()
    pqi = 1.0 - d ** (1.0 / q - 1.0 / p) * sum_p ** (1.0 / p) / sum_q ** (1.0 / q)
    undefined = (count == 0) | (sum_p == 0) | sum_p.isnan()
    pqi = torch.where(count == 1, 0.0, pqi)
    return torch.where(undefined, torch.nan, pqi)


def pqi(
    params: torch.Tensor,
    offsets: torch.Tensor,
    p: float,
    q: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """PQ Index per segment (Diao et al., ICLR 2023, Definition 1)."""
    _, sum_p, sum_q, count = power_sums(params, offsets, p, q, mask)
    return pqi_from_power_sums(sum_p, sum_q, count, p, q)


def retain_bound(
    pqi: torch.Tensor, count: torch.Tensor, p: float, q: float, eta_r: float = 0.0
) -> torch.Tensor:
    """r = d (1 + eta_r)^(-q/(q-p)) (1 - I)^(qp/(q-p))  (Theorem 2)."""
    d = count.double()
    eta_factor = (1.0 + eta_r) ** (-q / (q - p))
    return d * eta_factor * (1.0 - pqi.double()) ** (q * p / (q - p))


def prune_counts(
    pqi: torch.Tensor,
    count: torch.Tensor,
    p: float,
    q: float,
    eta_r: float = 0.0,
    gamma: float = 1.0,
    beta: float = 0.9,
) -> torch.Tensor:
    """c = floor(max(0, min(gamma (d - r), beta d))); 0 where I is NaN or d = 0."""
    d = count.double()
    r = retain_bound(pqi, count, p, q, eta_r)
    wanted = torch.minimum(gamma * (d - r), beta * d).clamp(min=0.0).floor()
    undefined = pqi.isnan() | (count == 0)
    return torch.where(undefined, 0.0, wanted).to(torch.int64)


def nonfinite_live(params: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Bool per element: a live entry that is NaN or inf."""
    bad = ~params.isfinite()
    return bad if mask is None else bad & mask


def topk_mask(
    params: torch.Tensor, offsets: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Bool mask keeping, in each segment, the min(k[s], d) live entries of largest |w|; among
    equal |w| the lower flat index is kept. By sorting: the whole buffer ordered by |w|
    descending (stable, so equal |w| stay in index order), then grouped by segment (stable)."""
    n = params.numel()
    ids = segment_ids(offsets)
    live = torch.ones(n, dtype=torch.bool, device=params.device) if mask is None else mask
    magnitude = torch.where(live, params.double().abs(), -1.0)  # dead entries sort last
    order = torch.sort(magnitude, descending=True, stable=True).indices
    order = order[torch.sort(ids[order], stable=True).indices]
    rank = torch.arange(n, device=params.device) - offsets[ids[order]]
    kept = (rank < k.to(params.device)[ids[order]]) & live[order]
    out = torch.zeros(n, dtype=torch.bool, device=params.device)
    out[order] = kept
    return out


def sap_step(
    params: torch.Tensor,
    offsets: torch.Tensor,
    p: float,
    q: float,
    mask: torch.Tensor | None = None,
    eta_r: float = 0.0,
    gamma: float = 1.0,
    beta: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(new mask, pqi, count, n_prune): one SAP iteration, prune counts from the PQI, then the
    mask that keeps count - n_prune entries of largest |w| per segment."""
    _, sum_p, sum_q, count = power_sums(params, offsets, p, q, mask)
    pqi_values = pqi_from_power_sums(sum_p, sum_q, count, p, q)
    n_prune = prune_counts(pqi_values, count, p, q, eta_r, gamma, beta)
    new_mask = topk_mask(params, offsets, count - n_prune, mask)
    return new_mask, pqi_values, count, n_prune
