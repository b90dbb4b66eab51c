"""The pruners: masks only shrink; SAP prunes exactly sap_step's counts, the baselines floor(d P)
of every segment; pruned weights get no gradient and stay 0 through optimizer steps; rewinding
restores w_init on the survivors; a resumed pruner makes the same masks."""

from __future__ import annotations

import pytest
import torch
from mask_oracle import per_segment_counts
from torch import nn

import sap_kernels as sk
from sap_kernels.sap import FixedRatioPruner, SAPPruner, make_pruner


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def perturb(pruner, seed: int) -> None:
    """Stands in for training: moves the live weights (deterministically)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        pruner.flat.buffer.add_(torch.randn(pruner.flat.buffer.shape, generator=generator) * 0.1)
    pruner.apply_mask()


@pytest.mark.parametrize("scope", ["neuron", "layer", "global"])
def test_sap_prunes_exactly_the_counts_of_sap_step(scope: str) -> None:
    pruner = SAPPruner(model(), scope, p=0.5, q=1.0, gamma=1.5)
    for iteration in range(4):
        perturb(pruner, iteration)
        before = pruner.mask.clone()
        weights = pruner.flat.buffer.detach().clone()
        expected = sk.sap_step(weights, pruner.segments, 0.5, 1.0, before, 0.0, 1.5, 0.9)
        record = pruner.step()
        assert not bool((pruner.mask & ~before).any()), "the mask grew"
        assert torch.equal(pruner.mask, expected.mask)
        dropped = per_segment_counts(before, pruner.segments.offsets) - per_segment_counts(
            pruner.mask, pruner.segments.offsets
        )
        assert torch.equal(dropped, expected.n_prune) and torch.equal(
            record.prune_counts, expected.n_prune
        )
        assert record.pruned == int(expected.n_prune.sum()) and record.iteration == iteration
        assert bool((pruner.flat.buffer[~pruner.mask] == 0).all()), "pruned weights are zero"


@pytest.mark.parametrize("method", ["lottery_ticket", "one_shot"])
def test_fixed_ratio_prunes_floor_d_times_ratio(method: str) -> None:
    pruner = FixedRatioPruner(model(), method, "neuron", ratio=0.3)
    first = pruner.flat.buffer.detach().clone()
    for iteration in range(3):
        live = per_segment_counts(pruner.mask, pruner.segments.offsets)
        record = pruner.step()
        kept = per_segment_counts(pruner.mask, pruner.segments.offsets)
        assert torch.equal(live - kept, torch.floor(live * 0.3).long())
        assert torch.equal(record.prune_counts, live - kept)
        perturb(pruner, iteration)
    if method == "one_shot":  # every step ranked the first step's weights
        magnitude = first.abs()
        for s in range(pruner.segments.num_segments):
            lo, hi = pruner.segments.offsets[s], pruner.segments.offsets[s + 1]
            kept, dead = magnitude[lo:hi][pruner.mask[lo:hi]], magnitude[lo:hi][~pruner.mask[lo:hi]]
            if kept.numel() and dead.numel():
                assert float(kept.min()) >= float(dead.max())


def test_pruned_weights_get_no_gradient_and_stay_zero() -> None:
    net = model()
    pruner = SAPPruner(net, "global", gamma=2.0)
    pruner.step()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    handle = pruner.attach(optimizer)
    for _ in range(3):
        optimizer.zero_grad()
        net(torch.randn(4, 20)).square().sum().backward()
        for index, parameter in enumerate(pruner.flat.parameters):
            dead = ~pruner.mask[pruner.flat.piece(index)].view(parameter.shape)
            assert bool((parameter.grad[dead] == 0).all()), "a pruned weight got a gradient"
        optimizer.step()
        assert bool((pruner.flat.buffer[~pruner.mask] == 0).all())
    handle.remove()


def test_rewind_restores_initial_weights_on_survivors() -> None:
    pruner = SAPPruner(model(), "neuron")
    w_init = pruner.flat.buffer.detach().clone()
    perturb(pruner, 0)
    pruner.step()
    perturb(pruner, 1)
    pruner.rewind()
    buffer = pruner.flat.buffer
    assert torch.equal(buffer[pruner.mask], w_init[pruner.mask])
    assert bool((buffer[~pruner.mask] == 0).all())


@pytest.mark.parametrize("method", ["sap", "lottery_ticket", "one_shot"])
def test_resume_gives_the_same_masks(method: str) -> None:
    options = {"gamma": 1.2} if method == "sap" else {"ratio": 0.25}
    straight = make_pruner(method, model(), "layer", **options)
    for iteration in range(4):
        perturb(straight, iteration)
        straight.step()
    first = make_pruner(method, model(), "layer", **options)
    for iteration in range(2):
        perturb(first, iteration)
        first.step()
    saved, weights = first.state_dict(), first.flat.buffer.detach().clone()
    net = model(seed=5)  # another initialisation: the state brings back w_init and the mask
    resumed = make_pruner(method, net, "layer", **options)
    with torch.no_grad():
        resumed.flat.buffer.copy_(weights)  # the model's own state_dict, in a real run
    resumed.load_state_dict(saved)
    assert torch.equal(resumed.w_init, first.w_init) and len(resumed.history) == 2
    for iteration in range(2, 4):
        perturb(resumed, iteration)
        resumed.step()
    assert torch.equal(resumed.mask, straight.mask)
    assert [r.pruned for r in resumed.history] == [r.pruned for r in straight.history]


def test_records_hold_the_pqi_per_scope() -> None:
    pruner = SAPPruner(model(), "neuron")
    record = pruner.step()
    assert set(record.pqi) == {"neuron", "layer", "global"}
    assert record.pqi["layer"].shape == (3,) and record.pqi["neuron"].shape == (27,)
    assert record.live == record.total == pruner.flat.buffer.numel()
    assert record.remaining == pytest.approx(pruner.remaining)


@pytest.mark.parametrize("scope", ["neuron", "layer", "global"])
@pytest.mark.parametrize("exponents", [(0.5, 1.0), (0.7, 1.3)])
def test_records_match_the_ops_on_the_weights_before_each_step(scope, exponents) -> None:
    """The record of every step (its PQI per scope, the live count) is what segmented_pqi and
    the mask give on the weights and mask before it: with the paper's exponents the step's own
    PQI stands for its scope's, otherwise every scope is computed apart."""
    pruner = SAPPruner(model(), scope, *exponents, gamma=1.5)
    for iteration in range(3):
        perturb(pruner, iteration)
        before, weights = pruner.mask.clone(), pruner.flat.buffer.detach().clone()
        record = pruner.step()
        assert record.live == int(torch.count_nonzero(before))
        for name in ("neuron", "layer", "global"):
            expected = sk.segmented_pqi(weights, pruner.flat.segments(name), 0.5, 1.0, before)
            torch.testing.assert_close(record.pqi[name], expected, rtol=0, atol=0, equal_nan=True)


def test_errors() -> None:
    with pytest.raises(ValueError, match="scope must be one of"):
        SAPPruner(model(), "row")
    with pytest.raises(ValueError, match="0 < p < q"):
        SAPPruner(model(), "layer", p=2.0, q=1.0)
    with pytest.raises(ValueError, match="ratio must be in"):
        FixedRatioPruner(model(), "lottery_ticket", "layer", ratio=1.5)
    with pytest.raises(ValueError, match="method must be one of"):
        make_pruner("magnitude", model(), "layer")
    state = SAPPruner(model(), "layer").state_dict()
    with pytest.raises(ValueError, match="state is of method 'sap', scope 'layer'"):
        SAPPruner(model(), "global").load_state_dict(state)
