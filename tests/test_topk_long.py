"""segmented_topk_mask on segments long enough to be selected by all threads (over 2^15
entries): the bracket taken from a strided sample, its fallbacks when the sample misleads or
the bracket holds too many ties, against the reference."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import BACKENDS_HERE, DTYPES
from hypothesis import given, settings
from hypothesis import strategies as st
from mask_oracle import assert_masks_equal, check_topk_against_reference
from strategies import Case, cases_of_lengths, huge_float16_normal, kept_fractions

import sap_kernels as sk
from sap_kernels import reference

LONG_KINDS = ("normal", "wide", "sparse", "ties")


@settings(max_examples=12)
@given(
    case=cases_of_lengths(
        st.lists(st.integers(32_769, 120_000), min_size=1, max_size=2),
        DTYPES,
        LONG_KINDS,
        ("none", "random"),
        (0.3, 0.9),
    ),
    kept=kept_fractions((0.0, 1e-4, 0.5, 0.9999, 1.0)),
)
def test_long_segments_match_reference(backend: str, case: Case, kept: float) -> None:
    """Long segments of every dtype and value kind, k anywhere from 0 to d: the mask equals
    reference.topk_mask and keeps min(k, d) entries per segment."""
    check_topk_against_reference(backend, case.params, case.segments, kept, case.mask, repr(case))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kept", [0.01, 0.5, 0.99])
def test_misleading_sample(backend: str, kept: float, dtype: torch.dtype) -> None:
    """A periodic buffer: the entries at 8 mod 16 (the phase the strided sample of a segment
    this short looks at, every 16th key from the 8th) are far larger than the rest, so a
    threshold guessed from the sample is wrong: the mask is still exact."""
    n = 200_000
    gen = torch.Generator().manual_seed(21)
    params = torch.randn(n, generator=gen)
    params[8::16] = 1000.0 + torch.rand(params[8::16].numel(), generator=gen)
    params = params.to(dtype)
    seg = sk.Segments([0, n])
    k = int(n * kept)
    got = sk.segmented_topk_mask(params, seg, k, backend=backend)
    want = reference.topk_mask(params, seg.offsets, torch.tensor([k]), None)
    assert_masks_equal(got, want, params, seg.offsets, f"{backend} k = {k}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
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


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
def test_dead_entries_at_the_threshold(backend: str, dtype: torch.dtype) -> None:
    """The dead entries are those nearest the threshold's magnitude (where a bracket about it
    gathers its candidates): none of them is kept or counted among the live ones."""
    n = 200_000
    gen = torch.Generator().manual_seed(23)
    params = torch.randn(n, generator=gen).to(dtype)
    magnitude = params.double().abs()
    distance = (magnitude - magnitude.median()).abs()
    mask = distance > distance.kthvalue(n // 200).values  # the 0.5% nearest the median dead
    k = int(mask.sum()) // 2
    seg = sk.Segments([0, n])
    got = sk.segmented_topk_mask(params, seg, k, mask, backend=backend)
    want = reference.topk_mask(params, seg.offsets, torch.tensor([k]), mask)
    assert_masks_equal(got, want, params, seg.offsets, f"{backend} {dtype} k = {k}")


def exact_in_chunks(params: torch.Tensor, got: torch.Tensor, lo: int, hi: int, k: int) -> None:
    """got[lo:hi] keeps k entries, none smaller in magnitude than one it drops, and of the
    entries at the boundary magnitude the kept ones come first: the exact top-k mask, checked
    chunk by chunk (no sort, no copy of the whole segment)."""
    chunk = 1 << 26
    kept, kept_min, dropped_max = 0, math.inf, -math.inf
    for start in range(lo, hi, chunk):
        end = min(hi, start + chunk)
        magnitude, keep = params[start:end].float().abs(), got[start:end]
        kept += int(keep.sum())
        if bool(keep.any()):
            kept_min = min(kept_min, float(magnitude[keep].min()))
        if not bool(keep.all()):
            dropped_max = max(dropped_max, float(magnitude[~keep].max()))
    assert kept == k, f"kept {kept} entries of [{lo}, {hi}), wanted {k}"
    assert kept_min >= dropped_max, f"kept {kept_min} while dropping {dropped_max}"
    if kept_min != dropped_max:
        return
    last_kept_tie, first_dropped_tie = -1, hi
    for start in range(lo, hi, chunk):
        end = min(hi, start + chunk)
        tie = params[start:end].float().abs() == kept_min
        kept_ties = (tie & got[start:end]).nonzero().view(-1)
        dropped_ties = (tie & ~got[start:end]).nonzero().view(-1)
        if kept_ties.numel():
            last_kept_tie = start + int(kept_ties[-1])
        if dropped_ties.numel() and first_dropped_tie == hi:
            first_dropped_tie = start + int(dropped_ties[0])
    assert last_kept_tie < first_dropped_tie, "a dropped tie comes before a kept one"


@pytest.mark.slow
@pytest.mark.skipif("cpu" not in BACKENDS_HERE, reason="needs the compiled extension")
def test_masks_beyond_int32_offsets() -> None:
    """A float16 buffer of 2^31 + 10 entries: a segment of nearly 2^31, one that crosses 2^31,
    an empty one and one past it. segmented_topk_mask is exact in each, and sap_step's mask is
    segmented_topk_mask's with sap_step's counts."""
    n = 2**31 + 10
    params = huge_float16_normal(n, seed=23)
    lengths = [2**31 - 1000, 1005, 0, 5]
    seg = sk.Segments.from_lengths(lengths)
    keep = torch.tensor([2**30 + 12345, 400, 0, 2])
    got = sk.segmented_topk_mask(params, seg, keep, backend="cpu")
    bounds = seg.offsets.tolist()
    for s in range(len(lengths)):
        exact_in_chunks(params, got, bounds[s], bounds[s + 1], int(keep[s]))
    step = sk.sap_step(params, seg, 0.5, 1.0, backend="cpu")
    want = sk.segmented_topk_mask(params, seg, step.count - step.n_prune, backend="cpu")
    assert torch.equal(step.mask, want)
