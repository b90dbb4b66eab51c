"""sap_step in Triton: the PQI and live counts (power_sums.py), the prune counts
(sap_counts.py) and the mask (topk_mask.py), each on the device, composed.

The composition is what makes the step equal the separate ops bit for bit: the same kernels
compute the same values. (Fusing the selection of segments that lie in one tile into the read
of the power sums would save a read, but a kernel with more in it may reduce its float64 sums
in another order, which would break that equality; see bench/README.md.)
"""

from __future__ import annotations

import torch

from . import power_sums, sap_counts, topk_mask


def sap_step(inputs, eta_r: float, gamma: float, beta: float):
    """(mask, pqi, count, n_prune, whether some live entry is NaN or inf) of validated inputs."""
    pqi, count, nonfinite = power_sums.segmented_pqi(inputs)
    if nonfinite:
        return None, pqi, count, None, True
    n_prune = sap_counts.prune_counts(pqi, count, inputs.p, inputs.q, eta_r, gamma, beta)
    out = torch.empty(inputs.params.numel(), dtype=torch.bool, device=inputs.params.device)
    topk_mask.segmented_topk_mask(inputs.params, inputs.offsets, count - n_prune, inputs.mask, out)
    return out, pqi, count, n_prune, False
