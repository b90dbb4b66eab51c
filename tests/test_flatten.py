"""flatten_parameters: the prunable weights become views of one buffer, and the module,
its optimizer and its state_dict work as before."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sap_kernels as sk
from sap_kernels.flatten import flatten_parameters


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def test_weights_become_views_of_one_buffer() -> None:
    model = small_model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    flat = flatten_parameters(model)
    assert flat.names == ["0.weight", "3.weight"]  # no biases: dim > 1 only
    assert flat.buffer.numel() == 4 * 9 + 5 * 144 and flat.buffer.is_contiguous()
    assert flat.is_intact()
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]), f"{name} changed value"
    flat.buffer[0] = 42.0
    assert float(model[0].weight.detach().view(-1)[0]) == 42.0, "the weight is a view of the buffer"


def test_optimizer_and_state_dict_keep_working() -> None:
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    flat = flatten_parameters(model)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    gradient = model[3].weight.grad.clone()
    before = flat.buffer.clone()
    optimizer.step()
    piece = flat.buffer[flat.piece(1)].view(5, 144)
    assert torch.allclose(piece, before[flat.piece(1)].view(5, 144) - 0.1 * gradient)
    state = model.state_dict()
    other = small_model()
    other_flat = flatten_parameters(other)
    other.load_state_dict(state)
    assert torch.equal(other_flat.buffer, flat.buffer) and other_flat.is_intact()


def test_segments_per_scope() -> None:
    flat = flatten_parameters(small_model())
    assert flat.segments("neuron").lengths().tolist() == [9] * 4 + [144] * 5
    assert flat.segments("layer").lengths().tolist() == [36, 720]
    assert flat.segments("global").lengths().tolist() == [756]
    pqi = sk.segmented_pqi(flat.buffer, flat.segments("neuron"), 0.5, 1.0)
    assert pqi.shape == (9,)
    with pytest.raises(ValueError, match="scope must be one of"):
        flat.segments("row")


def test_moving_the_module_is_detected() -> None:
    model = small_model()
    flat = flatten_parameters(model)
    model.double()
    assert not flat.is_intact()


def test_errors() -> None:
    with pytest.raises(ValueError, match="^flatten_parameters: no parameter"):
        flatten_parameters(nn.Sequential(nn.ReLU()))
    mixed = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3).double())
    with pytest.raises(ValueError, match="^flatten_parameters: .*one dtype and device"):
        flatten_parameters(mixed)
