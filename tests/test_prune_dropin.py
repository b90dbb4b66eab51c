"""sap_kernels.prune in torch.nn.utils.prune's conventions: the same state (weight_orig,
weight_mask, a forward pre-hook) as torch's own global_unstructured, is_pruned and remove work,
repeated pruning composes, and the masks are those of sap_step."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import sap_kernels as sk
from sap_kernels import prune as sap_prune


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 10))


def pairs(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(model[0], "weight"), (model[2], "weight")]


def test_same_state_as_torch_global_unstructured() -> None:
    ours, theirs = net(), net()
    sap_prune.global_sap(pairs(ours), p=0.5, q=1.0, gamma=2.0)
    prune.global_unstructured(pairs(theirs), pruning_method=prune.L1Unstructured, amount=0.3)
    for model in (ours, theirs):
        for module, _ in pairs(model):
            assert prune.is_pruned(module)
            assert {name for name, _ in module.named_parameters()} == {"weight_orig", "bias"}
            assert {name for name, _ in module.named_buffers()} == {"weight_mask"}
            assert torch.equal(module.weight, module.weight_orig * module.weight_mask)
            assert module.weight_mask.dtype == module.weight_orig.dtype
    for (a, _), (b, _) in zip(pairs(ours), pairs(theirs)):
        assert torch.equal(a.weight_orig, b.weight_orig)  # the original stays untouched


@pytest.mark.parametrize("scope", ["global", "layer", "neuron"])
def test_global_sap_mask_is_sap_step_on_the_concatenation(scope: str) -> None:
    model = net()
    weights = [module.weight.detach().clone() for module, _ in pairs(model)]
    sap_prune.global_sap(pairs(model), p=0.5, q=1.0, gamma=1.5, scope=scope)
    flat = torch.cat([w.reshape(-1) for w in weights])
    segments = sk.Segments.for_shapes([w.shape for w in weights], scope)
    want = sk.sap_step(flat, segments, 0.5, 1.0, gamma=1.5).mask
    got = torch.cat([module.weight_mask.reshape(-1) for module, _ in pairs(model)]) != 0
    assert torch.equal(got, want) and not bool(got.all())


def test_repeated_pruning_composes_and_remove_keeps_the_zeros() -> None:
    model = net()
    sap_prune.global_sap(pairs(model), gamma=2.0)
    first = [module.weight_mask.clone() for module, _ in pairs(model)]
    sap_prune.global_sap(pairs(model), gamma=2.0)
    for (module, _), old in zip(pairs(model), first):
        assert bool((module.weight_mask <= old).all()), "a pruned entry came back"
        assert int(module.weight_mask.sum()) < int(old.sum())
    kept = [module.weight.detach().clone() for module, _ in pairs(model)]
    for module, name in pairs(model):
        prune.remove(module, name)
        assert not prune.is_pruned(module)
    for (module, _), weight in zip(pairs(model), kept):
        assert torch.equal(module.weight, weight)


@pytest.mark.parametrize("scope", ["layer", "neuron"])
def test_one_tensor_method(scope: str) -> None:
    model = net()
    weight = model[0].weight.detach().clone()
    sap_prune.sap_unstructured(model[0], "weight", p=0.5, q=1.0, gamma=1.5, scope=scope)
    segments = sk.Segments.for_shapes([weight.shape], scope)
    want = sk.sap_step(weight.reshape(-1), segments, 0.5, 1.0, gamma=1.5).mask
    mask = model[0].weight_mask
    assert torch.equal(mask.reshape(-1) != 0, want)
    # again, after torch's own method: the rows stay rows, pruned entries stay pruned
    prune.l1_unstructured(model[0], "weight", amount=5)
    before = model[0].weight_mask.clone()
    sap_prune.sap_unstructured(model[0], "weight", gamma=1.5, scope=scope)
    after = model[0].weight_mask
    assert bool((after <= before).all()) and int(after.sum()) < int(before.sum())
    live = before.reshape(-1) != 0
    again = sk.sap_step(weight.reshape(-1), segments, 0.5, 1.0, live, gamma=1.5).mask
    assert torch.equal(after.reshape(-1) != 0, again)


def test_errors() -> None:
    with pytest.raises(ValueError, match="^global_sap: parameters must hold"):
        sap_prune.global_sap([])
    with pytest.raises(ValueError, match="^global_sap: scope must be one of"):
        sap_prune.global_sap(pairs(net()), scope="row")
    with pytest.raises(ValueError, match="scope must be 'layer' or 'neuron'"):
        sap_prune.sap_unstructured(net()[0], "weight", scope="global")
    with pytest.raises(ValueError, match="beta must be in"):
        sap_prune.sap_unstructured(net()[0], "weight", beta=2.0)
