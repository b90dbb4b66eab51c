"""Benchmark inputs: seeded float32 buffers and the segment layouts cut over them.

Layouts (n elements in all):

- ``global``: one segment of n elements.
- ``rows``: n / 1000 rows of 1000 elements (neuron scope of a (rows, 1000) weight).
- ``ragged``: about n / 90 segments of LogNormal(4, 1) lengths (median 55, mean ~90),
  rounded and clamped >= 1, the last one cut or stretched to end at n.

``paper_layers`` maps a layout to the per-layer tensors and bool masks that the paper's eager
code walks over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sap_kernels import Segments

LAYOUTS = ("global", "rows", "ragged")
DTYPES = ("float32", "bfloat16", "float16")
ROW_LENGTH = 1000
RAGGED_LOG_MEAN = 4.0
RAGGED_LOG_SIGMA = 1.0
SEED = 0


@dataclass
class Layout:
    """One layout over a buffer of n elements: its segments and, for rows, the 2-D shape."""

    name: str
    n: int
    segments: Segments
    rows: int = 0
    cols: int = 0

    @property
    def num_segments(self) -> int:
        return self.segments.num_segments


def make_buffer(n: int, seed: int = SEED, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """n standard normal values, the same for a given (n, seed): float32 ones, rounded to
    dtype."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=generator, dtype=torch.float32).to(dtype)


def make_live_mask(n: int, fraction: float, seed: int = SEED) -> torch.Tensor:
    """A bool mask of n entries, each live with probability `fraction`, the same for a given
    (n, fraction, seed)."""
    generator = torch.Generator().manual_seed(seed + 2)
    return torch.rand(n, generator=generator) < fraction


def ragged_lengths(n: int, seed: int = SEED) -> torch.Tensor:
    """int64 lengths >= 1 of lognormal size, summing to n."""
    generator = torch.Generator().manual_seed(seed + 1)
    mean_length = math.exp(RAGGED_LOG_MEAN + RAGGED_LOG_SIGMA**2 / 2)
    lengths = torch.empty(0, dtype=torch.int64)
    while int(lengths.sum()) < n:
        draws = max(16, int(1.2 * (n - int(lengths.sum())) / mean_length))
        normal = torch.randn(draws, generator=generator, dtype=torch.float64)
        more = (RAGGED_LOG_MEAN + RAGGED_LOG_SIGMA * normal).exp().round().clamp(min=1)
        lengths = torch.cat([lengths, more.to(torch.int64)])
    ends = lengths.cumsum(0)
    keep = int(torch.searchsorted(ends, n)) + 1  # the first segment reaching n is the last
    lengths = lengths[:keep].clone()
    lengths[-1] -= int(ends[keep - 1]) - n
    return lengths


def make_layout(name: str, n: int, seed: int = SEED) -> Layout:
    """The named layout over n elements."""
    if name == "global":
        return Layout(name, n, Segments.from_lengths([n]))
    if name == "rows":
        if n % ROW_LENGTH:
            raise ValueError(f"rows layout needs n divisible by {ROW_LENGTH}, got {n}")
        rows = n // ROW_LENGTH
        lengths = torch.full((rows,), ROW_LENGTH, dtype=torch.int64)
        return Layout(name, n, Segments.from_lengths(lengths), rows=rows, cols=ROW_LENGTH)
    if name == "ragged":
        return Layout(name, n, Segments.from_lengths(ragged_lengths(n, seed)))
    raise ValueError(f"layout must be one of {LAYOUTS}, got {name!r}")


def paper_layers(
    layout: Layout, params: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor], str]:
    """(layers, masks, scope) for the paper-style eager PQI: views of params and all-True bool
    masks of the same shapes (the paper keeps a bool mask per layer on the CPU).

    global -> one layer of n, scope "global"; rows -> one (rows, 1000) layer, scope "neuron";
    ragged -> one 1-D layer per segment, scope "layer".
    """
    mask = torch.ones(params.numel(), dtype=torch.bool)
    if layout.name == "global":
        return [params], [mask], "global"
    if layout.name == "rows":
        shape = (layout.rows, layout.cols)
        return [params.view(shape)], [mask.view(shape)], "neuron"
    bounds = layout.segments.offsets.tolist()
    pieces = list(zip(bounds[:-1], bounds[1:]))
    layers = [params[start:end] for start, end in pieces]
    masks = [mask[start:end] for start, end in pieces]
    return layers, masks, "layer"


def parse_size(text: str) -> int:
    """'1e7' or '10000000' -> 10000000."""
    value = float(text)
    if value != int(value) or value < 1:
        raise ValueError(f"size must be a positive integer, got {text!r}")
    return int(value)


def format_n(n: int) -> str:
    """10000000 -> '1e7'; sizes that are not d * 10^k stay as integers."""
    exponent = len(str(n)) - 1
    lead, rest = divmod(n, 10**exponent)
    return str(n) if rest or n < 10 else f"{lead}e{exponent}"
