"""The data set the main job needs no download for: 1,797 handwritten digits of 8 x 8 pixels
(the UCI "Optical Recognition of Handwritten Digits" test set, CC BY 4.0; data/README.md)."""

from __future__ import annotations

import gzip
from importlib import resources
from typing import NamedTuple

import numpy as np
import torch


class Split(NamedTuple):
    """Images as float32 [n, 64] in [0, 1] and labels int64 [n]."""

    images: torch.Tensor
    labels: torch.Tensor


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: images float32 [1797, 64] scaled to [0, 1], labels int64 [1797]."""
    with resources.files("sap_kernels").joinpath("data/digits.csv.gz").open("rb") as raw:
        with gzip.open(raw, "rt") as text:
            table = np.loadtxt(text, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :-1] / 16.0)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    return images, labels


def train_test_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """The digits cut at random (seeded) into a training and a test part."""
    images, labels = load_digits()
    order = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))
    test_size = int(round(labels.numel() * test_fraction))
    test, train = order[:test_size], order[test_size:]
    return Split(images[train], labels[train]), Split(images[test], labels[test])
