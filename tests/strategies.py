"""Hypothesis strategies shared by the tests: ragged segmentations, values of several kinds in
every dtype, optional masks, exponent pairs.

Structure (segment lengths, value kind, dtype, mask density) is drawn by Hypothesis, so it
shrinks; the values themselves come from a seeded torch.Generator (the seed is drawn too), so
that segments of thousands of entries stay cheap to generate.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

import sap_kernels as sk

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

# Magnitudes that the "wide" kind spans, per dtype: the whole finite range, subnormals included
# (float64 stops at 1e307, below 2^1023: see test_float64_near_max_scale_is_finite).
MAGNITUDE_RANGE = {
    torch.float32: (1e-38, 3e38),
    torch.float64: (1e-320, 1e307),
    torch.float16: (6e-8, 6.5e4),
    torch.bfloat16: (1e-38, 3e38),
}

TIE_VALUES = (0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0)
VALUE_KINDS = ("normal", "ties", "wide", "sparse", "zeros")

FAST_PAIRS = ((0.5, 1.0), (1.0, 2.0), (0.5, 2.0), (1.0, 1.5), (2.0, 3.0), (3.0, 4.0), (1.0, 4.0))
GENERIC_PAIRS = ((0.7, 1.3), (0.3, 2.5), (1.2, 3.7), (2.0, 7.0))
EXPONENT_PAIRS = FAST_PAIRS + GENERIC_PAIRS


class Case:
    """One segmented input, ready for any op (a plain class, so that Hypothesis reports a
    falsifying example by its short repr rather than every tensor entry)."""

    def __init__(
        self, params: torch.Tensor, segments: sk.Segments, mask: torch.Tensor | None, kind: str
    ) -> None:
        self.params = params
        self.segments = segments
        self.mask = mask
        self.kind = kind

    @property
    def offsets(self) -> torch.Tensor:
        return self.segments.offsets

    def __repr__(self) -> str:  # short, for Hypothesis' falsifying-example report
        lengths = self.segments.lengths().tolist()
        shown = lengths if len(lengths) <= 20 else lengths[:20] + ["..."]
        masked = "no mask" if self.mask is None else f"{int(self.mask.sum())} live"
        return f"Case({self.params.dtype}, {self.kind}, lengths={shown}, {masked})"

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # Hypothesis' pretty printer
        printer.text(repr(self))


def exponent_pairs() -> st.SearchStrategy[tuple[float, float]]:
    return st.sampled_from(EXPONENT_PAIRS)


@st.composite
def ragged_lengths(draw: st.DrawFn, max_segments: int = 50, max_length: int = 300) -> list[int]:
    """Segment lengths: often 0 and 1, up to max_length, now and then one long segment."""
    if draw(st.integers(0, 9)) == 0:
        return [draw(st.integers(1000, 4000))]
    length = st.one_of(st.sampled_from((0, 1, 2, 3)), st.integers(0, max_length))
    return draw(st.lists(length, min_size=0, max_size=max_segments))


def magnitudes(kind: str, n: int, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """n non-negative float64 magnitudes of the given kind, representable in dtype."""
    if kind == "zeros":
        return torch.zeros(n, dtype=torch.float64)
    if kind == "ties":
        ties = torch.tensor(TIE_VALUES, dtype=torch.float64).abs()
        return ties[torch.randint(len(TIE_VALUES), (n,), generator=gen)]
    if kind == "wide":
        low, high = MAGNITUDE_RANGE[dtype]
        exponent = torch.rand(n, generator=gen, dtype=torch.float64)
        values = torch.exp(math.log(low) + exponent * (math.log(high) - math.log(low)))
        return values.clamp(max=high)
    scale = 10.0 ** float(torch.randint(-3, 4, (1,), generator=gen))
    values = torch.randn(n, generator=gen, dtype=torch.float64).abs() * scale
    if kind == "sparse":
        values = values * (torch.rand(n, generator=gen) < 0.1)
    return values


def make_params(
    kind: str, lengths: list[int], dtype: torch.dtype, gen: torch.Generator, zero_rate: float
) -> torch.Tensor:
    """Signed values of the given kind, with each segment zeroed with probability zero_rate."""
    n = sum(lengths)
    values = magnitudes(kind, n, dtype, gen)
    signs = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()
    values = values * signs
    if zero_rate > 0 and lengths:
        zero_segment = torch.rand(len(lengths), generator=gen) < zero_rate
        values = values * (~zero_segment).repeat_interleave(torch.tensor(lengths))
    return values.to(dtype)


def make_mask(
    mode: str, lengths: list[int], gen: torch.Generator, density: float
) -> torch.Tensor | None:
    """None, a random bool mask of the given density, or one with whole segments dead too."""
    if mode == "none":
        return None
    n = sum(lengths)
    mask = torch.rand(n, generator=gen) < density
    if mode == "segments" and lengths:
        dead = torch.rand(len(lengths), generator=gen) < 0.3
        mask &= (~dead).repeat_interleave(torch.tensor(lengths))
    return mask


@st.composite
def cases(
    draw: st.DrawFn,
    dtypes: tuple[torch.dtype, ...] = DTYPES,
    kinds: tuple[str, ...] = VALUE_KINDS,
    masks: bool = True,
    max_segments: int = 50,
    max_length: int = 300,
) -> Case:
    """A ragged segmented buffer of some dtype and value kind, with an optional mask."""
    lengths = draw(ragged_lengths(max_segments=max_segments, max_length=max_length))
    dtype = draw(st.sampled_from(dtypes))
    kind = draw(st.sampled_from(kinds))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    zero_rate = draw(st.sampled_from((0.0, 0.0, 0.2)))
    params = make_params(kind, lengths, dtype, gen, zero_rate)
    mode = draw(st.sampled_from(("none", "random", "segments"))) if masks else "none"
    density = draw(st.sampled_from((0.1, 0.5, 0.9, 1.0)))
    mask = make_mask(mode, lengths, gen, density)
    # an int64 tensor, not the list: from_lengths([]) is refused (see test_errors.py)
    segments = sk.Segments.from_lengths(torch.tensor(lengths, dtype=torch.int64))
    return Case(params, segments, mask, kind)


@st.composite
def cases_of_lengths(
    draw: st.DrawFn,
    lengths: st.SearchStrategy[list[int]],
    dtypes: tuple[torch.dtype, ...],
    kinds: tuple[str, ...],
    mask_modes: tuple[str, ...],
    densities: tuple[float, ...],
) -> Case:
    """A segmented buffer whose segment lengths come from the given strategy (no zeroed
    segments), for the tests of one size class of segments."""
    drawn = draw(lengths)
    dtype = draw(st.sampled_from(dtypes))
    kind = draw(st.sampled_from(kinds))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    params = make_params(kind, drawn, dtype, gen, zero_rate=0.0)
    mask = make_mask(
        draw(st.sampled_from(mask_modes)), drawn, gen, draw(st.sampled_from(densities))
    )
    return Case(
        params, sk.Segments.from_lengths(torch.tensor(drawn, dtype=torch.int64)), mask, kind
    )


def kept_fractions(special: tuple[float, ...]) -> st.SearchStrategy[float]:
    """The fraction of each segment's live entries to keep: anything in [0, 1], or one of
    the special ones."""
    return st.one_of(st.floats(0.0, 1.0), st.sampled_from(special))


@st.composite
def positive_vectors(
    draw: st.DrawFn, min_size: int = 2, max_size: int = 40, low: float = 0.1, high: float = 10.0
) -> torch.Tensor:
    """A well-conditioned float64 vector of magnitudes in [low, high] (for the property tests)."""
    element = st.floats(low, high, allow_nan=False, allow_infinity=False)
    values = draw(st.lists(element, min_size=min_size, max_size=max_size))
    return torch.tensor(values, dtype=torch.float64)


# k beyond any segment: an int64 count no kernel may add to or narrow without overflowing
HUGE_K = 2**62


@st.composite
def keep_counts(draw: st.DrawFn, case: Case) -> int | torch.Tensor:
    """k for segmented_topk_mask over case: an int (0, small, up to the longest segment and
    past it, or huge), or an int64 tensor [S] whose counts are each 0, d - 1, d, d + 1, past
    the segment, huge or anything from 0 to past the segment (d = live entries)."""
    lengths = case.segments.lengths()
    if draw(st.booleans()):
        longest = int(lengths.max()) if lengths.numel() else 0
        small = st.sampled_from((0, 1, 2))
        return draw(st.one_of(small, st.integers(0, longest + 2), st.just(HUGE_K)))
    if case.mask is None:
        live = lengths.clone()
    else:
        running = torch.cat([torch.zeros(1, dtype=torch.int64), case.mask.long().cumsum(0)])
        live = running[case.offsets].diff()
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    anything = (torch.rand(lengths.numel(), generator=gen) * (lengths + 3)).long()
    options = torch.stack(
        [
            torch.zeros_like(live),
            (live - 1).clamp(min=0),
            live,
            live + 1,
            lengths + 5,
            torch.full_like(live, HUGE_K),
            anything,
            anything,
        ]
    )
    choice = torch.randint(options.shape[0], (1, lengths.numel()), generator=gen)
    return options.gather(0, choice).view(-1)


def huge_float16_normal(n: int, seed: int) -> torch.Tensor:
    """n float16 standard normal values (for buffers beyond 2^31 entries), generated 2^26 at a
    time so that no float32 copy of the whole exists."""
    params = torch.empty(n, dtype=torch.float16)
    gen = torch.Generator().manual_seed(seed)
    for lo in range(0, n, 1 << 26):
        hi = min(n, lo + (1 << 26))
        params[lo:hi] = torch.randn(hi - lo, generator=gen).to(torch.float16)
    return params
