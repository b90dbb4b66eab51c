"""segmented_topk_mask: every backend against the reference and an independent sorted oracle,
its counting and tie-breaking contract, scale invariance, the out= path, and large cases whose
ties span many thousands of positions."""

from __future__ import annotations

import pytest
import torch
from conftest import DTYPES
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from mask_oracle import assert_masks_equal, keep_counts_tensor, per_segment_counts, sorted_topk
from strategies import HUGE_K, Case, cases, keep_counts

import sap_kernels as sk
from sap_kernels import reference


def dtype_id(dtype: torch.dtype) -> str:
    """A short test id ("float32"), so that -k torch selects the torch backend alone."""
    return str(dtype).split(".")[-1]


def topk(case: Case, k: int | torch.Tensor, backend: str, **kwargs) -> torch.Tensor:
    """segmented_topk_mask of case on backend."""
    return sk.segmented_topk_mask(
        case.params, case.segments, k, case.mask, backend=backend, **kwargs
    )


def reference_topk(case: Case, k: int | torch.Tensor) -> torch.Tensor:
    """reference.topk_mask of case."""
    keep = keep_counts_tensor(k, case.segments.num_segments)
    return reference.topk_mask(case.params, case.offsets, keep, case.mask)


def live_mask(case: Case) -> torch.Tensor:
    """The live entries of case (all of them without a mask)."""
    if case.mask is None:
        return torch.ones(case.params.numel(), dtype=torch.bool)
    return case.mask.clone()


@settings(max_examples=40)
@given(case=cases(), data=st.data())
def test_matches_reference(backend: str, case: Case, data: st.DataObject) -> None:
    """The mask equals reference.topk_mask bit for bit, for ints and per-segment k tensors."""
    k = data.draw(keep_counts(case), label="k")
    got = topk(case, k, backend)
    assert got.dtype == torch.bool and got.shape == (case.params.numel(),)
    assert_masks_equal(got, reference_topk(case, k), case.params, case.offsets, f"{backend} {case}")


@settings(max_examples=40)
@given(case=cases(), data=st.data())
def test_keeps_largest_live_entries(backend: str, case: Case, data: st.DataObject) -> None:
    """Exactly min(k, d) True per segment, none of them dead, and they are the first min(k, d)
    live entries in the order (|w| descending, flat index ascending)."""
    k = data.draw(keep_counts(case), label="k")
    got = topk(case, k, backend)
    live = live_mask(case)
    dead_kept = (got & ~live).nonzero().view(-1)
    assert dead_kept.numel() == 0, f"{backend}: dead entries kept at {dead_kept.tolist()[:10]}"
    keep = keep_counts_tensor(k, case.segments.num_segments)
    want_counts = torch.minimum(keep, per_segment_counts(case.mask, case.offsets))
    got_counts = per_segment_counts(got, case.offsets)
    assert torch.equal(got_counts, want_counts), (
        f"{backend}: kept {got_counts.tolist()[:20]}, expected min(k, d) = "
        f"{want_counts.tolist()[:20]}"
    )
    want = sorted_topk(case.params, case.offsets, k, case.mask)
    assert_masks_equal(got, want, case.params, case.offsets, f"{backend} vs sorted oracle")


def exact_scale(params: torch.Tensor, candidates: tuple[float, ...]) -> float | None:
    """The first power of two that scales every entry of params exactly (no overflow, no bits
    lost to subnormals), or None."""
    for scale in candidates:
        scaled = params * scale
        if torch.equal(scaled.double(), params.double() * scale):
            return scale
    return None


@settings(max_examples=25)
@given(case=cases(), data=st.data(), up_first=st.booleans())
def test_power_of_two_scaling_keeps_mask(
    backend: str, case: Case, data: st.DataObject, up_first: bool
) -> None:
    """Multiplying params by 8 or 2^-3 (exact, so the order of |w| is unchanged) gives the same
    mask."""
    candidates = (8.0, 2.0**-3) if up_first else (2.0**-3, 8.0)
    scale = exact_scale(case.params, candidates)
    assume(scale is not None)
    k = data.draw(keep_counts(case), label="k")
    scaled = Case(case.params * scale, case.segments, case.mask, case.kind)
    assert_masks_equal(
        topk(scaled, k, backend),
        topk(case, k, backend),
        case.params,
        case.offsets,
        f"{backend} scaled by {scale}",
    )


@settings(max_examples=20)
@given(case=cases(), extra=st.sampled_from((0, 1, 7, HUGE_K)), as_int=st.booleans())
def test_k_at_least_live_count_keeps_live_mask(
    backend: str, case: Case, extra: int, as_int: bool
) -> None:
    """k >= d in every segment (per segment d + extra, or one int past the longest segment)
    keeps every live entry and nothing else."""
    if as_int:
        lengths = case.segments.lengths()
        k: int | torch.Tensor = (int(lengths.max()) if lengths.numel() else 0) + extra
    else:
        k = per_segment_counts(case.mask, case.offsets) + extra
    got = topk(case, k, backend)
    assert_masks_equal(got, live_mask(case), case.params, case.offsets, f"{backend} k >= d")


@settings(max_examples=15)
@given(case=cases(), as_int=st.booleans())
def test_k_zero_keeps_nothing(backend: str, case: Case, as_int: bool) -> None:
    """k = 0 (an int or a tensor of zeros) returns an all-False mask."""
    k = 0 if as_int else torch.zeros(case.segments.num_segments, dtype=torch.int64)
    got = topk(case, k, backend)
    assert got.dtype == torch.bool and got.shape == (case.params.numel(),)
    assert not bool(got.any()), f"{backend}: k = 0 kept {int(got.sum())} entries"


# ---- small examples written by hand ----


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_tie_breaking_example(backend: str, dtype: torch.dtype) -> None:
    """Among equal |w| the lower flat index is kept, whatever the sign."""
    params = torch.tensor([1, -3, 3, 0, 2, 2, 5, 1, 1], dtype=dtype)
    seg = sk.Segments.from_lengths([4, 0, 5])
    got = sk.segmented_topk_mask(params, seg, 2, backend=backend)
    assert got.tolist() == [False, True, True, False, True, False, True, False, False]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_signed_zeros_tie(backend: str, dtype: torch.dtype) -> None:
    """-0.0 and 0.0 have the same |w|: the lower index wins, and a zero loses to any non-zero."""
    params = torch.tensor([-0.0, 0.0, -0.0, 0.0, 1e-3, -0.0], dtype=dtype)
    seg = sk.Segments.from_lengths([3, 3])
    got = sk.segmented_topk_mask(params, seg, torch.tensor([2, 1]), backend=backend)
    assert got.tolist() == [True, True, False, False, True, False]


def test_per_segment_k_with_mask_example(backend: str) -> None:
    """Per-segment k over a mask: dead entries never count, even when larger."""
    params = torch.tensor([9.0, 1.0, -4.0, 4.0, 2.0, 7.0, -7.0, 3.0, 8.0, 0.5])
    mask = torch.tensor([False, True, True, True, True, True, False, True, True, True])
    seg = sk.Segments([0, 5, 5, 10])
    k = torch.tensor([2, 3, 10])
    got = sk.segmented_topk_mask(params, seg, k, mask, backend=backend)
    want = [False, False, True, True, False, True, False, True, True, True]
    assert got.tolist() == want


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_empty_segments(backend: str, dtype: torch.dtype) -> None:
    """Empty segments anywhere (first, last, in a row) take no entries and shift nothing."""
    params = torch.tensor([3.0, -1.0, 2.0, 5.0, -5.0], dtype=dtype)
    seg = sk.Segments.from_lengths([0, 3, 0, 0, 2, 0])
    got = sk.segmented_topk_mask(params, seg, torch.tensor([4, 1, 4, 0, 1, 9]), backend=backend)
    assert got.tolist() == [True, False, False, True, False]


@pytest.mark.parametrize("offsets", [[0], [0, 0, 0]], ids=["no segments", "two empty"])
def test_empty_buffer(backend: str, offsets: list[int]) -> None:
    """An empty buffer gives an empty bool mask."""
    got = sk.segmented_topk_mask(torch.zeros(0), sk.Segments(offsets), 3, backend=backend)
    assert got.dtype == torch.bool and got.shape == (0,)


def test_offsets_tensor_equals_segments(backend: str) -> None:
    """Segments given as a Segments or as its int64 offsets tensor give the same mask."""
    gen = torch.Generator().manual_seed(3)
    params = torch.randn(500, generator=gen)
    seg = sk.Segments.from_lengths([100, 0, 250, 150])
    by_segments = sk.segmented_topk_mask(params, seg, 40, backend=backend)
    by_offsets = sk.segmented_topk_mask(params, seg.offsets.clone(), 40, backend=backend)
    assert_masks_equal(by_offsets, by_segments, params, seg.offsets, f"{backend} offsets")
    assert int(by_segments.sum()) == 120


def test_out_is_written_and_returned(backend: str) -> None:
    """out= is overwritten entirely (whatever it held) and is the tensor returned."""
    gen = torch.Generator().manual_seed(4)
    params = torch.randn(1000, generator=gen)
    mask = torch.rand(1000, generator=gen) < 0.6
    seg = sk.Segments.from_lengths([300, 0, 700])
    k = torch.tensor([50, 3, 1000])
    want = reference.topk_mask(params, seg.offsets, k, mask)
    for fill in (True, False):
        out = torch.full((1000,), fill, dtype=torch.bool)
        got = sk.segmented_topk_mask(params, seg, k, mask, out=out, backend=backend)
        assert got is out
        assert_masks_equal(out, want, params, seg.offsets, f"{backend} out filled with {fill}")


def test_k_tensor_not_contiguous(backend: str) -> None:
    """A strided int64 k tensor is read by value, not by its storage."""
    gen = torch.Generator().manual_seed(5)
    params = torch.randn(90, generator=gen)
    seg = sk.Segments.from_lengths([30, 30, 30])
    storage = torch.tensor([5, 99, 0, 99, 30, 99])
    got = sk.segmented_topk_mask(params, seg, storage[::2], backend=backend)
    want = reference.topk_mask(params, seg.offsets, torch.tensor([5, 0, 30]), None)
    assert_masks_equal(got, want, params, seg.offsets, f"{backend} strided k")


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The raw bits of a tensor (so that NaN and -0.0 compare by representation)."""
    if not tensor.is_floating_point():
        return tensor
    return tensor.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_inputs_unchanged(backend: str, dtype: torch.dtype) -> None:
    """params (a NaN in a dead entry included), mask, k and the offsets are not modified."""
    gen = torch.Generator().manual_seed(6)
    params = torch.randn(3000, generator=gen).to(dtype)
    params[7] = -0.0
    params[11] = float("nan")
    mask = torch.rand(3000, generator=gen) < 0.7
    mask[11] = False
    offsets = torch.tensor([0, 10, 10, 2000, 3000])
    seg = sk.Segments(offsets.clone())
    k = torch.tensor([3, 0, 500, 2000])
    inputs = {"params": params, "mask": mask, "offsets": offsets, "Segments": seg.offsets, "k": k}
    before = {name: bits(tensor).clone() for name, tensor in inputs.items()}
    for segments in (seg, offsets):
        sk.segmented_topk_mask(params, segments, k, mask, backend=backend)
    for name, tensor in inputs.items():
        assert torch.equal(bits(tensor), before[name]), f"{name} changed by segmented_topk_mask"


# ---- large deterministic cases: ties across tiles, many small segments, size boundaries ----


def tie_rich(n: int, probabilities: tuple[float, ...], seed: int) -> torch.Tensor:
    """n signed values whose magnitudes are 1, 2, 3, ... drawn with the given probabilities."""
    gen = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(torch.tensor(probabilities), n, replacement=True, generator=gen)
    signs = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    return (draws + 1).double() * signs


THRESHOLD_CASES = [(torch.float32, kept) for kept in (1, 65536, 70000)] + [
    (dtype, 70000) for dtype in (torch.float64, torch.float16, torch.bfloat16)
]


@pytest.mark.parametrize(
    ("dtype", "kept_ties"),
    THRESHOLD_CASES,
    ids=[f"{dtype_id(dtype)}-{kept} ties kept" for dtype, kept in THRESHOLD_CASES],
)
def test_threshold_tied_across_tiles(backend: str, dtype: torch.dtype, kept_ties: int) -> None:
    """One segment of 200_000 entries whose threshold magnitude (2) occurs at ~150_000 positions,
    more than a 65536-entry tile: the kept 2s are exactly its lowest-index ones."""
    params = tie_rich(200_000, (0.15, 0.75, 0.10), seed=7).to(dtype)
    magnitude = params.double().abs()
    above, tied = int((magnitude == 3).sum()), (magnitude == 2).nonzero().view(-1)
    assert tied.numel() > 65536 + kept_ties
    k = above + kept_ties
    seg = sk.Segments([0, 200_000])
    got = sk.segmented_topk_mask(params, seg, k, backend=backend)
    want = magnitude == 3
    want[tied[:kept_ties]] = True
    assert_masks_equal(got, want, params, seg.offsets, f"{backend} k = {k}")


def test_thousands_of_small_segments(backend: str) -> None:
    """5000 segments of 0 to 40 tie-rich entries under a mask, with k from 0 to past d."""
    gen = torch.Generator().manual_seed(8)
    lengths = torch.randint(0, 41, (5000,), generator=gen)
    n = int(lengths.sum())
    params = tie_rich(n, (0.3, 0.3, 0.2, 0.2), seed=9).float()
    params[torch.rand(n, generator=gen) < 0.1] = 0.0
    mask = torch.rand(n, generator=gen) < 0.8
    k = (torch.rand(5000, generator=gen) * 45).long()
    seg = sk.Segments.from_lengths(lengths)
    got = sk.segmented_topk_mask(params, seg, k, mask, backend=backend)
    assert_masks_equal(
        got,
        reference.topk_mask(params, seg.offsets, k, mask),
        params,
        seg.offsets,
        f"{backend} vs reference",
    )
    assert_masks_equal(
        got,
        sorted_topk(params, seg.offsets, k, mask),
        params,
        seg.offsets,
        f"{backend} vs sorted oracle",
    )


@pytest.mark.parametrize("kind", ["ties", "normal"])
def test_segments_around_size_boundaries(backend: str, kind: str) -> None:
    """Segments just under, at and over 2^15 and 2^16 entries, crossing tile boundaries, with
    k near d / 2 in each, against the reference (and the sorted oracle for tie-rich values)."""
    lengths = torch.tensor([5, 32767, 32768, 32769, 1, 65536, 65537, 3])
    n = int(lengths.sum())
    gen = torch.Generator().manual_seed(10)
    if kind == "ties":
        params = tie_rich(n, (0.4, 0.4, 0.2), seed=11).float()
    else:
        params = torch.randn(n, generator=gen)
    mask = torch.rand(n, generator=gen) < 0.9
    k = lengths // 2 + torch.tensor([0, 1, -1, 0, 0, 7, 0, 1])
    seg = sk.Segments.from_lengths(lengths)
    got = sk.segmented_topk_mask(params, seg, k, mask, backend=backend)
    want = reference.topk_mask(params, seg.offsets, k, mask)
    assert_masks_equal(got, want, params, seg.offsets, f"{backend} vs reference")
    live = per_segment_counts(mask, seg.offsets)
    assert torch.equal(per_segment_counts(got, seg.offsets), torch.minimum(k, live))
    if kind == "ties":
        want = sorted_topk(params, seg.offsets, k, mask)
        assert_masks_equal(got, want, params, seg.offsets, f"{backend} vs sorted oracle")


def test_every_dtype_agrees_when_exact(backend: str) -> None:
    """Values exactly representable in every dtype (small integers and zeros) give the same mask
    in every dtype."""
    params = tie_rich(3000, (0.2, 0.2, 0.2, 0.2, 0.2), seed=12)
    params[::7] = 0.0
    seg = sk.Segments.from_lengths([1000, 1, 0, 1999])
    k = torch.tensor([400, 1, 5, 1500])
    masks = [sk.segmented_topk_mask(params.to(dtype), seg, k, backend=backend) for dtype in DTYPES]
    for dtype, got in zip(DTYPES[1:], masks[1:]):
        assert_masks_equal(got, masks[0], params, seg.offsets, f"{backend} {dtype} vs float32")
