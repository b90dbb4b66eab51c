"""Iterative pruning on the kernels: SAP (Diao et al., ICLR 2023, Algorithm 1) and the paper's
two baselines with a fixed ratio, lottery ticket and one shot.

A pruner holds the flat buffer of a module's prunable weights (``flatten_parameters``), the
mask, and the initial weights w_init. It masks the gradients of pruned weights (and, attached
to an optimizer, zeroes them again after every step). An iteration of Algorithm 1 is::

    pruner.rewind()          # w_t = w_init * m_t
    train(model, epochs)     # pruned weights stay 0
    record = pruner.step()   # PQI of w_t, the counts, the new mask m_{t+1}
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .flatten import FlatParameters, flatten_parameters
from .power_sums import segmented_power_sums
from .pqi import segmented_pqi
from .sap_counts import check_sap_parameters
from .sap_step import sap_step
from .segments import SCOPES
from .topk_mask import apply_mask, segmented_topk_mask

METHODS = ("sap", "lottery_ticket", "one_shot")


@dataclass
class IterationRecord:
    """What one pruning step saw and did.

    iteration: 0, 1, ...; live: prunable weights live before the step; total: all of them;
    pruned: weights the step pruned; pqi: the PQI of the live weights before the step, per
    scope ("global": [1], "layer": one per weight, "neuron": one per output row), float64;
    prune_counts: weights pruned per segment of the pruner's scope.
    """

    iteration: int
    live: int
    total: int
    pruned: int
    pqi: dict[str, torch.Tensor]
    prune_counts: torch.Tensor

    @property
    def remaining(self) -> float:
        """The fraction of prunable weights live after the step."""
        return (self.live - self.pruned) / self.total if self.total else 0.0


class Pruner:
    """What every method shares: the flat weights, the mask, w_init, gradient masking,
    rewinding, the records and the state. See SAPPruner and FixedRatioPruner."""

    method = ""

    def __init__(
        self,
        module: nn.Module,
        scope: str = "neuron",
        *,
        flat: FlatParameters | None = None,
        backend: str | None = None,
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(f"{type(self).__name__}: scope must be one of {SCOPES}, got {scope!r}")
        self.flat = flat if flat is not None else flatten_parameters(module)
        self.scope = scope
        self.backend = backend
        self.segments = self.flat.segments(scope)
        buffer = self.flat.buffer
        self.mask = torch.ones(buffer.numel(), dtype=torch.bool, device=buffer.device)
        self.w_init = buffer.detach().clone()
        self.history: list[IterationRecord] = []
        self._hooks = [
            parameter.register_hook(functools.partial(self._masked_gradient, index))
            for index, parameter in enumerate(self.flat.parameters)
        ]

    def _masked_gradient(self, index: int, gradient: torch.Tensor) -> torch.Tensor:
        live = self.mask[self.flat.piece(index)].view(gradient.shape)
        return gradient.masked_fill(~live, 0)

    @property
    def remaining(self) -> float:
        """The fraction of prunable weights still live."""
        # count_nonzero: Tensor.sum() of a bool tensor takes ~20x longer on the CPU
        return int(torch.count_nonzero(self.mask)) / self.mask.numel()

    def apply_mask(self) -> None:
        """Zeroes the pruned weights (after an optimizer step, weight decay or momentum may
        have moved them)."""
        with torch.no_grad():
            apply_mask(self.flat.buffer, self.mask)

    def attach(self, optimizer: torch.optim.Optimizer):
        """Zeroes the pruned weights after every step of optimizer; returns the hook's handle."""
        return optimizer.register_step_post_hook(lambda *_: self.apply_mask())

    def rewind(self) -> None:
        """w = w_init * m: the surviving weights back at their initial values (Algorithm 1)."""
        with torch.no_grad():
            self.flat.buffer.copy_(self.w_init)
        self.apply_mask()

    def scope_pqi(self, known: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The PQI (p = 0.5, q = 1, the paper's) of the live weights, per scope; the scopes in
        `known` (already computed on these weights and mask) are taken from there."""
        weights = self.flat.buffer.detach()
        known = known or {}
        return {
            scope: known[scope]
            if scope in known
            else segmented_pqi(
                weights, self.flat.segments(scope), 0.5, 1.0, self.mask, backend=self.backend
            )
            for scope in SCOPES
        }

    def step(self) -> IterationRecord:
        """One pruning step on the current weights: the new mask, applied to them."""
        raise NotImplementedError

    def _commit(
        self, new_mask: torch.Tensor, live: torch.Tensor, n_prune: torch.Tensor, pqi: dict
    ) -> IterationRecord:
        """Records the step (live: the live weights of each segment before it) and takes its
        mask, which keeps no weight the old one pruned (the ops leave masked entries False), so
        masks only shrink."""
        record = IterationRecord(
            iteration=len(self.history),
            live=int(live.sum()),
            total=self.mask.numel(),
            pruned=int(n_prune.sum()),
            pqi={scope: values.cpu() for scope, values in pqi.items()},
            prune_counts=n_prune.cpu(),
        )
        self.mask = new_mask
        self.apply_mask()
        self.history.append(record)
        return record

    def state_dict(self) -> dict:
        """mask, w_init, the settings and the records: all that resuming needs (with the
        model's own state_dict)."""
        return {
            "method": self.method,
            "scope": self.scope,
            "settings": self._settings(),
            "mask": self.mask.clone(),
            "w_init": self.w_init.clone(),
            "history": [asdict(record) for record in self.history],
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("method") != self.method or state.get("scope") != self.scope:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state is of method "
                f"{state.get('method')!r}, scope {state.get('scope')!r}; this pruner is "
                f"{self.method!r}, {self.scope!r}"
            )
        if state["mask"].numel() != self.mask.numel():
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state's mask has "
                f"{state['mask'].numel()} entries, this model {self.mask.numel()} prunable weights"
            )
        self.mask = state["mask"].to(self.mask.device).clone()
        self.w_init = state["w_init"].to(self.w_init.device, self.w_init.dtype).clone()
        self.history = [IterationRecord(**record) for record in state["history"]]
        self._load_settings(state["settings"])
        self.apply_mask()

    def _settings(self) -> dict:
        return {}

    def _load_settings(self, settings: dict) -> None:
        pass

    def remove(self) -> None:
        """Takes off the gradient hooks (the weights stay as they are)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


class SAPPruner(Pruner):
    """Sparsity-informed Adaptive Pruning: each step prunes, per segment of the scope, the

        c = floor(d min(gamma (1 - r / d), beta)),  r = d (1 + eta_r)^(-q/(q-p)) (1 - I)^(qp/(q-p))

    smallest live weights, I the PQ Index of the segment's live weights (one fused sap_step).

    Args:
        module: the model (its weights with more than one dimension are pruned).
        scope: "neuron", "layer" or "global".
        p, q: the PQ Index's exponents, 0 < p < q (the paper: 0.5 and 1).
        eta_r, gamma, beta: the paper's hyper-parameters (0, 1, 0.9 by default).
        flat: the module's FlatParameters, if already flattened.
        backend: the sap_kernels backend (None: the default for the device).
    """

    method = "sap"

    def __init__(
        self,
        module: nn.Module,
        scope: str = "neuron",
        p: float = 0.5,
        q: float = 1.0,
        eta_r: float = 0.0,
        gamma: float = 1.0,
        beta: float = 0.9,
        *,
        flat: FlatParameters | None = None,
        backend: str | None = None,
    ) -> None:
        if not (isinstance(p, (int, float)) and isinstance(q, (int, float)) and 0 < p < q):
            raise ValueError(f"SAPPruner: needs 0 < p < q, got p = {p}, q = {q}")
        self.p, self.q = float(p), float(q)
        self.eta_r, self.gamma, self.beta = check_sap_parameters("SAPPruner", eta_r, gamma, beta)
        super().__init__(module, scope, flat=flat, backend=backend)

    def step(self) -> IterationRecord:
        weights = self.flat.buffer.detach()
        result = sap_step(
            weights, self.segments, self.p, self.q, self.mask, self.eta_r, self.gamma,
            self.beta, backend=self.backend,
        )  # fmt: skip
        # with the paper's exponents the step's PQI is its scope's record (the same values as
        # segmented_pqi's, bit for bit), one read of the weights fewer
        paper_exponents = (self.p, self.q) == (0.5, 1.0)
        pqi = self.scope_pqi({self.scope: result.pqi} if paper_exponents else None)
        return self._commit(result.mask, result.count, result.n_prune, pqi)

    def _settings(self) -> dict:
        return {
            "p": self.p,
            "q": self.q,
            "eta_r": self.eta_r,
            "gamma": self.gamma,
            "beta": self.beta,
        }

    def _load_settings(self, settings: dict) -> None:
        for name, value in settings.items():
            setattr(self, name, value)


class FixedRatioPruner(Pruner):
    """The paper's baselines: each step prunes floor(d * ratio) of the d live weights of every
    segment of the scope, the smallest first (an exact top-k mask).

    method "lottery_ticket" (Frankle & Carbin, 2018) ranks the current weights (retrained
    after each rewind); "one_shot" ranks, at every step, the weights seen at the first step
    (the model trained once), as the paper's One Shot does.
    """

    def __init__(
        self,
        module: nn.Module,
        method: str = "lottery_ticket",
        scope: str = "neuron",
        ratio: float = 0.2,
        *,
        flat: FlatParameters | None = None,
        backend: str | None = None,
    ) -> None:
        if method not in ("lottery_ticket", "one_shot"):
            raise ValueError(
                f"FixedRatioPruner: method must be 'lottery_ticket' or 'one_shot', got {method!r}"
            )
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise ValueError(f"FixedRatioPruner: ratio must be in [0, 1], got {ratio!r}")
        self.method, self.ratio = method, float(ratio)
        self.w_first: torch.Tensor | None = None
        super().__init__(module, scope, flat=flat, backend=backend)

    def step(self) -> IterationRecord:
        weights = self.flat.buffer.detach()
        if self.method == "one_shot":
            if self.w_first is None:
                self.w_first = weights.clone()
            weights = self.w_first
        pqi = self.scope_pqi()
        live = segmented_power_sums(weights, self.segments, 1.0, 2.0, self.mask).count
        n_prune = torch.floor(live.double() * self.ratio).long()
        keep = segmented_topk_mask(
            weights, self.segments, live - n_prune, self.mask, backend=self.backend
        )
        return self._commit(keep, live, n_prune, pqi)

    def _settings(self) -> dict:
        return {"ratio": self.ratio, "w_first": self.w_first}

    def _load_settings(self, settings: dict) -> None:
        self.ratio = settings["ratio"]
        self.w_first = settings["w_first"]


def make_pruner(method: str, module: nn.Module, scope: str, **options) -> Pruner:
    """The pruner of method ("sap", "lottery_ticket", "one_shot") with its options (sap: p, q,
    eta_r, gamma, beta; the others: ratio), plus flat= and backend=."""
    if method == "sap":
        return SAPPruner(module, scope, **options)
    if method in ("lottery_ticket", "one_shot"):
        return FixedRatioPruner(module, method, scope, **options)
    raise ValueError(f"make_pruner: method must be one of {METHODS}, got {method!r}")
