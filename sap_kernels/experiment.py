"""The paper's experiment in small (Diao et al., ICLR 2023, Figure 2): an MLP trained on the
digits, pruned iteratively by SAP, lottery ticket and one shot, each iteration recorded.

Lottery ticket and SAP rewind the surviving weights to w_init and retrain them for some epochs
before each pruning step; one shot trains once and prunes those trained weights, unretrained,
a fixed ratio at every step. Every method starts from the same w_init and sees the data in the
same order at the same iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .datasets import Split, train_test_split
from .sap import METHODS, Pruner, make_pruner


@dataclass
class Settings:
    """What the experiment runs; the defaults take about a minute on 2 CPU cores."""

    methods: tuple[str, ...] = METHODS
    scope: str = "global"
    p: float = 0.5
    q: float = 1.0
    eta_r: float = 0.0
    gamma: float = 1.0
    beta: float = 0.9
    ratio: float = 0.2  # lottery ticket and one shot
    iterations: int = 20
    epochs: int = 10
    hidden: tuple[int, ...] = (256, 128)
    learning_rate: float = 3e-3
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    backend: str | None = None


@dataclass
class Row:
    """One iteration of one method: the model w_t * m_t evaluated after its retraining."""

    method: str
    iteration: int
    accuracy: float  # on the test part, in [0, 1]
    remaining: float  # fraction of the prunable weights live
    live: int
    pqi_global: float = 0.0
    pqi_layers: list[float] = field(default_factory=list)
    pruned_next: int = 0  # weights the step after this iteration prunes


def method_label(method: str, settings: Settings) -> str:
    if method == "sap":
        return f"SAP (p={settings.p:g}, q={settings.q:g})"
    return {"lottery_ticket": "Lottery Ticket", "one_shot": "One Shot"}[method]


def mlp(settings: Settings) -> nn.Sequential:
    """64 -> hidden... -> 10 with ReLU, initialised from settings.seed (the same w_init for
    every method)."""
    torch.manual_seed(settings.seed)
    sizes = (64, *settings.hidden, 10)
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).to(settings.device)


def accuracy(model: nn.Module, split: Split) -> float:
    with torch.no_grad():
        predicted = model(split.images).argmax(dim=1)
    return float((predicted == split.labels).float().mean())


def train(model: nn.Module, pruner: Pruner, split: Split, settings: Settings, seed: int) -> None:
    """settings.epochs of Adam on split; the pruned weights stay 0 (masked gradients, and the
    mask applied again after every step)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    handle = pruner.attach(optimizer)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(settings.epochs):
        order = torch.randperm(split.labels.numel(), generator=generator)
        for start in range(0, order.numel(), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(split.images[batch]), split.labels[batch]).backward()
            optimizer.step()
    handle.remove()


def pruner_for(method: str, model: nn.Module, settings: Settings) -> Pruner:
    options: dict = {"backend": settings.backend}
    if method == "sap":
        options.update(p=settings.p, q=settings.q, eta_r=settings.eta_r, gamma=settings.gamma,
                       beta=settings.beta)  # fmt: skip
    else:
        options["ratio"] = settings.ratio
    return make_pruner(method, model, settings.scope, **options)


def run_method(
    method: str,
    settings: Settings,
    data: tuple[Split, Split],
    progress: Callable[[str, int], None] = lambda method, iteration: None,
) -> list[Row]:
    """Iterations 0..settings.iterations of one method; progress(method, t) after each."""
    train_split, test_split = data
    model = mlp(settings)
    pruner = pruner_for(method, model, settings)
    rows = []
    for t in range(settings.iterations + 1):
        if method != "one_shot" or t == 0:
            pruner.rewind()
            train(model, pruner, train_split, settings, seed=settings.seed * 1000 + t)
        live = int(torch.count_nonzero(pruner.mask))
        remaining = live / pruner.mask.numel()  # pruner.remaining, without counting again
        row = Row(method, t, accuracy(model, test_split), remaining, live)
        if t < settings.iterations:  # the step's record holds the PQI of these weights
            record = pruner.step()
            pqi, row.pruned_next = record.pqi, record.pruned
        else:
            pqi = pruner.scope_pqi()
        row.pqi_global = float(pqi["global"][0])
        row.pqi_layers = [float(value) for value in pqi["layer"]]
        rows.append(row)
        progress(method, t)
    return rows


def run(
    settings: Settings, progress: Callable[[str, int], None] = lambda method, iteration: None
) -> dict[str, list[Row]]:
    """Every method of settings on the digits, in turn."""
    data = train_test_split(seed=settings.seed)
    device = torch.device(settings.device)
    data = tuple(Split(split.images.to(device), split.labels.to(device)) for split in data)
    return {method: run_method(method, settings, data, progress) for method in settings.methods}
