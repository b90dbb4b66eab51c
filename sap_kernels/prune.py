"""SAP in the conventions of torch.nn.utils.prune: a pruning method for one tensor and
global_sap, shaped like ``prune.global_unstructured``. Both leave torch's usual state (the
parameter ``name + "_orig"``, the buffer ``name + "_mask"`` and a forward pre-hook), so that
``prune.is_pruned``, ``prune.remove`` and repeated pruning work as with torch's own methods.

    from torch.nn.utils import prune
    import sap_kernels.prune as sap_prune

    sap_prune.global_sap([(model.fc1, "weight"), (model.fc2, "weight")], p=0.5, q=1.0)
    sap_prune.sap_unstructured(model.fc1, "weight", scope="neuron")
    prune.remove(model.fc1, "weight")
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.utils import prune

from .sap_counts import check_sap_parameters
from .sap_step import sap_step
from .segments import SCOPES, Segments


def _sap_keep_mask(
    values: torch.Tensor,
    live: torch.Tensor,
    segments: Segments,
    p: float,
    q: float,
    eta_r: float,
    gamma: float,
    beta: float,
) -> torch.Tensor:
    """The mask (bool, values' numel) after one SAP step over values cut by segments."""
    flat = values.detach().reshape(-1).contiguous()
    return sap_step(flat, segments, p, q, live.reshape(-1), eta_r, gamma, beta).mask


class SAPPruningMethod(prune.BasePruningMethod):
    """One SAP step on one tensor: per segment of the scope ("layer": the whole tensor;
    "neuron": each output row, ``t.view(t.shape[0], -1)``), prune the c smallest live entries
    (c from the PQ Index of the live entries, Diao et al., ICLR 2023, Algorithm 1).

    The mask is computed over the whole tensor, honoring the entries a previous mask pruned
    (PRUNING_TYPE "global", in torch's terms), so that repeated pruning keeps the rows.
    """

    PRUNING_TYPE = "global"

    def __init__(
        self,
        p: float = 0.5,
        q: float = 1.0,
        eta_r: float = 0.0,
        gamma: float = 1.0,
        beta: float = 0.9,
        scope: str = "layer",
    ) -> None:
        if scope not in ("layer", "neuron"):
            raise ValueError(f"SAPPruningMethod: scope must be 'layer' or 'neuron', got {scope!r}")
        self.p, self.q, self.scope = p, q, scope
        self.eta_r, self.gamma, self.beta = check_sap_parameters(
            "SAPPruningMethod", eta_r, gamma, beta
        )

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        segments = Segments.for_shapes([t.shape], self.scope)
        keep = _sap_keep_mask(
            t, default_mask != 0, segments, self.p, self.q, self.eta_r, self.gamma, self.beta
        )
        return default_mask * keep.view_as(t).to(default_mask.dtype)

    @classmethod
    def apply(cls, module, name, p=0.5, q=1.0, eta_r=0.0, gamma=1.0, beta=0.9, scope="layer"):
        return super().apply(module, name, p=p, q=q, eta_r=eta_r, gamma=gamma, beta=beta,
                             scope=scope)  # fmt: skip


def sap_unstructured(
    module: nn.Module,
    name: str,
    p: float = 0.5,
    q: float = 1.0,
    eta_r: float = 0.0,
    gamma: float = 1.0,
    beta: float = 0.9,
    scope: str = "layer",
) -> nn.Module:
    """Prunes module.<name> by one SAP step, as ``prune.l1_unstructured`` does by a fixed
    amount: adds ``name + "_mask"``, keeps the original in ``name + "_orig"``.

    Args:
        module: the module holding the tensor.
        name: the parameter's name in it ("weight").
        p, q, eta_r, gamma, beta: SAP's parameters.
        scope: "layer" (the tensor as one segment) or "neuron" (each output row).

    Returns:
        module.
    """
    SAPPruningMethod.apply(module, name, p, q, eta_r, gamma, beta, scope)
    return module


def global_sap(
    parameters: Iterable[tuple[nn.Module, str]],
    p: float = 0.5,
    q: float = 1.0,
    eta_r: float = 0.0,
    gamma: float = 1.0,
    beta: float = 0.9,
    *,
    scope: str = "global",
    importance_scores: dict | None = None,
) -> None:
    """One SAP step over several tensors at once, like ``prune.global_unstructured``: the
    tensors' entries (or their importance scores) laid end to end, their existing masks as the
    live entries, one fused sap_step, and each tensor's part of the new mask applied with
    ``prune.custom_from_mask``.

    Args:
        parameters: (module, name) pairs.
        p, q, eta_r, gamma, beta: SAP's parameters.
        scope: "global" (all entries one segment, the default), "layer" (one per tensor) or
            "neuron" (one per output row of each tensor).
        importance_scores: {(module, name): tensor of the parameter's shape} used in place of
            the parameters' values, as in torch.
    """
    op = "global_sap"
    parameters = list(parameters)
    if not parameters:
        raise ValueError(f"{op}: parameters must hold at least one (module, name) pair")
    if scope not in SCOPES:
        raise ValueError(f"{op}: scope must be one of {SCOPES}, got {scope!r}")
    scores = importance_scores or {}
    tensors = [scores.get((module, name), getattr(module, name)) for module, name in parameters]
    masks = [
        getattr(module, name + "_mask", torch.ones_like(getattr(module, name)))
        for module, name in parameters
    ]
    values = torch.cat([tensor.detach().reshape(-1) for tensor in tensors])
    live = torch.cat([mask.reshape(-1) != 0 for mask in masks])
    segments = Segments.for_shapes([tensor.shape for tensor in tensors], scope)
    keep = _sap_keep_mask(values, live, segments, p, q, eta_r, gamma, beta)
    start = 0
    for (module, name), tensor in zip(parameters, tensors):
        piece = keep[start : start + tensor.numel()].view(tensor.shape)
        prune.custom_from_mask(module, name, mask=piece.to(masks[0].dtype))
        start += tensor.numel()
