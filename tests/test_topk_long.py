"""segmented_topk_mask on segments long enough to be selected by all threads (over 2^15
entries): the bracket taken from a strided sample, its fallbacks when the sample misleads or
the bracket holds too many ties, against the reference."""

from __future__ import annotations

import pytest
import torch
from conftest import DTYPES
from hypothesis import given, settings
from hypothesis import strategies as st
from mask_oracle import assert_masks_equal, per_segment_counts
from strategies import make_mask, make_params

import sap_kernels as sk
from sap_kernels import reference

LONG_KINDS = ("normal", "wide", "sparse", "ties")


@settings(max_examples=12)
@given(
    lengths=st.lists(st.integers(32_769, 120_000), min_size=1, max_size=2),
    dtype=st.sampled_from(DTYPES),
    kind=st.sampled_from(LONG_KINDS),
    mask_mode=st.sampled_from(("none", "random")),
    density=st.sampled_from((0.3, 0.9)),
    kept=st.one_of(st.floats(0.0, 1.0), st.sampled_from((0.0, 1e-4, 0.5, 0.9999, 1.0))),
    seed=st.integers(0, 2**32 - 1),
)
def test_long_segments_match_reference(
    backend: str,
    lengths: list[int],
    dtype: torch.dtype,
    kind: str,
    mask_mode: str,
    density: float,
    kept: float,
    seed: int,
) -> None:
    """Long segments of every dtype and value kind, k anywhere from 0 to d: the mask equals
    reference.topk_mask and keeps min(k, d) entries per segment."""
    gen = torch.Generator().manual_seed(seed)
    params = make_params(kind, lengths, dtype, gen, zero_rate=0.0)
    mask = make_mask(mask_mode, lengths, gen, density)
    seg = sk.Segments.from_lengths(torch.tensor(lengths))
    live = per_segment_counts(mask, seg.offsets)
    k = (live.double() * kept).round().long()
    got = sk.segmented_topk_mask(params, seg, k, mask, backend=backend)
    want = reference.topk_mask(params, seg.offsets, k, mask)
    assert_masks_equal(got, want, params, seg.offsets, f"{backend} {kind} {dtype}")
    assert torch.equal(per_segment_counts(got, seg.offsets), torch.minimum(k, live))


@pytest.mark.parametrize("kept", [0.01, 0.5, 0.99])
def test_misleading_sample(backend: str, kept: float) -> None:
    """A periodic buffer: the entries at 2 mod 4 (the phase a strided sample of a short segment
    looks at) are far larger than the rest, so a threshold guessed from the sample is wrong:
    the mask is still exact."""
    n = 200_000
    gen = torch.Generator().manual_seed(21)
    params = torch.randn(n, generator=gen)
    params[2::4] = 1000.0 + torch.rand(params[2::4].numel(), generator=gen)
    seg = sk.Segments([0, n])
    k = int(n * kept)
    got = sk.segmented_topk_mask(params, seg, k, backend=backend)
    want = reference.topk_mask(params, seg.offsets, torch.tensor([k]), None)
    assert_masks_equal(got, want, params, seg.offsets, f"{backend} k = {k}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_bracket_full_of_ties(backend: str, dtype: torch.dtype) -> None:
    """Half of a long segment holds one magnitude, the threshold's: the bracket around it holds
    more entries than its scratch space, and the kept ties are still the lowest-index ones."""
    n = 150_000
    gen = torch.Generator().manual_seed(22)
    params = torch.where(torch.rand(n, generator=gen) < 0.5, 0.5, torch.rand(n, generator=gen))
    params = params.to(dtype)
    magnitude = params.double().abs()
    above, tied = int((magnitude > 0.5).sum()), (magnitude == 0.5).nonzero().view(-1)
    k = above + tied.numel() // 3
    seg = sk.Segments([0, n])
    got = sk.segmented_topk_mask(params, seg, k, backend=backend)
    want = magnitude > 0.5
    want[tied[: tied.numel() // 3]] = True
    assert_masks_equal(got, want, params, seg.offsets, f"{backend} {dtype}")
