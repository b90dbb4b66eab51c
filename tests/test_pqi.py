"""segmented_pqi: every backend against the float64 reference, edge cases, scale stability,
masks and the NaN / inf policy."""

from __future__ import annotations

import math
import re

import pytest
import torch
from conftest import DTYPES, assert_close_report, pqi_atol, term_rtol
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import EXPONENT_PAIRS, Case, cases, exponent_pairs, ragged_lengths

import sap_kernels as sk
from sap_kernels import reference

EXTRA_PAIRS = ((1.0, 6.0), (1.0, 6.5), (4.0, 5.0), (0.5, 8.0))
NAN, INF = float("nan"), float("inf")


def pqi_of(params, lengths, p, q, mask=None, backend="torch", **kwargs) -> torch.Tensor:
    seg = sk.Segments.from_lengths(torch.tensor(lengths, dtype=torch.int64))
    return sk.segmented_pqi(params, seg, p, q, mask, backend=backend, **kwargs)


def check_against_reference(case: Case, p: float, q: float, backend: str) -> None:
    got = sk.segmented_pqi(case.params, case.segments, p, q, case.mask, backend=backend)
    want = reference.pqi(case.params, case.offsets, p, q, case.mask)
    assert got.dtype == torch.float64
    assert_close_report(
        got, want, 0.0, pqi_atol(case.params.dtype, p, q, backend), f"{backend} {case!r}"
    )


@given(case=cases(), pq=exponent_pairs())
def test_matches_reference(backend: str, case: Case, pq: tuple[float, float]) -> None:
    check_against_reference(case, *pq, backend)


@settings(max_examples=15)
@given(case=cases(kinds=("normal", "wide", "ties")), pq=st.sampled_from(EXTRA_PAIRS))
def test_matches_reference_large_q(backend: str, case: Case, pq: tuple[float, float]) -> None:
    check_against_reference(case, *pq, backend)


# ---- edge cases, for every dtype and exponent pair ----

EDGE_LENGTHS = [0, 1, 1, 3, 4, 5, 4, 2]
EDGE_VALUES = [
    2.5,  # d = 1 -> 0
    0.0,  # d = 1 but zero -> NaN
    0.0,
    0.0,
    0.0,  # all zero -> NaN
    1.5,
    -1.5,
    1.5,
    1.5,  # all equal -> 0
    0.0,
    0.0,
    -3.0,
    0.0,
    0.0,  # one-hot -> 1 - d^(1/q - 1/p)
    7.0,
    8.0,
    9.0,
    10.0,  # masked out below -> NaN
    1.0,
    2.0,
]
EDGE_MASK = [True] * 14 + [False] * 4 + [True, True]


@pytest.mark.parametrize("pq", EXPONENT_PAIRS + EXTRA_PAIRS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_edge_cases(backend: str, dtype: torch.dtype, pq: tuple[float, float]) -> None:
    p, q = pq
    params = torch.tensor(EDGE_VALUES, dtype=dtype)
    got = pqi_of(params, EDGE_LENGTHS, p, q, torch.tensor(EDGE_MASK), backend=backend)
    one_hot = 1.0 - 5.0 ** (1.0 / q - 1.0 / p)
    two = 1.0 - 2.0 ** (1 / q - 1 / p) * (1 + 2**p) ** (1 / p) / (1 + 2**q) ** (1 / q)
    want = torch.tensor([NAN, 0.0, NAN, NAN, 0.0, one_hot, NAN, two], dtype=torch.float64)
    assert_close_report(
        got, want, 0.0, pqi_atol(dtype, p, q, backend), f"{backend} {dtype} p={p} q={q}"
    )
    assert float(got[1]) == 0.0, "d = 1 gives exactly 0"


@pytest.mark.parametrize("pq", [(0.3, 2.5), (0.45, 1.0), (1.0, 2.0)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_zero_and_dead_segments_have_zero_sums(backend, dtype, pq) -> None:
    """No non-zero live entry: scale 0, sums exactly 0, PQI NaN (dead and zero entries add
    nothing at all, not even 2^-600 from a log2(0) = -2000 sentinel)."""
    params = torch.tensor([0.0] * 4 + [5.0] * 6 + [0.0] * 3 + [1.0], dtype=dtype)
    mask = torch.tensor([True] * 4 + [False] * 6 + [True] * 4)
    seg = sk.Segments.from_lengths([4, 6, 4])
    sums = sk.segmented_power_sums(params, seg, *pq, mask, backend=backend)
    assert sums.count.tolist() == [4, 0, 4]
    for name, tensor in zip(("scale", "sum_p", "sum_q"), sums[:3]):
        assert tensor[:2].tolist() == [0.0, 0.0], f"{name} of zero / dead segments: {tensor}"
    pqi = sk.segmented_pqi(params, seg, *pq, mask, backend=backend)
    assert pqi[:2].isnan().all()
    one_hot = torch.tensor([1.0 - 4.0 ** (1 / pq[1] - 1 / pq[0])], dtype=torch.float64)
    # Exact to ~1e-12 where the terms are in float64; within the term contract where they may be
    # in float32 (the one-hot term is then a float32 table entry, 2^(-p) or 2^(-q)).
    atol = pqi_atol(dtype, *pq, backend) if term_rtol(dtype, *pq, backend) else 1e-12
    assert_close_report(pqi[2:], one_hot, 0.0, atol, f"{backend} one-hot")


@given(case=cases(dtypes=(torch.float32, torch.float64)), pq=exponent_pairs())
def test_mask_equals_removing_dead_entries(backend: str, case: Case, pq) -> None:
    """Masked entries take no part, whatever they hold (here: huge values)."""
    if case.mask is None:
        return
    p, q = pq
    huge = 3e38 if case.params.dtype == torch.float32 else 1e300
    poisoned = torch.where(case.mask, case.params, torch.full_like(case.params, huge))
    got = sk.segmented_pqi(poisoned, case.segments, p, q, case.mask, backend=backend)
    ids = reference.segment_ids(case.offsets)
    kept = torch.bincount(ids[case.mask], minlength=case.segments.num_segments)
    compact = case.params[case.mask]
    want = pqi_of(compact, kept.tolist(), p, q, backend=backend)
    assert_close_report(
        got, want, 0.0, pqi_atol(case.params.dtype, p, q, backend), f"{backend} {case!r}"
    )


# ---- scale stability: PQI(alpha w) = PQI(w) ----

ALPHAS_F32 = (1e-30, 1e-3, 7.3, 1e30)
ALPHAS_F64 = (1e-300, 2.0**-1000, 7.3, 1e300)
F32_TINY, F32_MAX = torch.finfo(torch.float32).tiny, torch.finfo(torch.float32).max


@st.composite
def moderate_vectors(draw: st.DrawFn, dtype: torch.dtype) -> tuple[torch.Tensor, list[int]]:
    """Magnitudes log-uniform in [1e-6, 1e6], some zeros, random signs; ragged segments."""
    lengths = draw(ragged_lengths(max_segments=20, max_length=200))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    n = sum(lengths)
    values = 10.0 ** (torch.rand(n, generator=gen, dtype=torch.float64) * 12 - 6)
    values = values * (torch.rand(n, generator=gen) > 0.1) * torch.randn(n, generator=gen).sign()
    return values.to(dtype), lengths


@given(data=moderate_vectors(torch.float32), pq=exponent_pairs())
def test_scale_invariance_float32(backend: str, data, pq) -> None:
    w, lengths = data
    base = pqi_of(w, lengths, *pq, backend=backend)
    for alpha in ALPHAS_F32:
        scaled = (w.double() * alpha).float()
        nonzero = scaled[w != 0].abs()
        assert bool(((nonzero >= F32_TINY) & (nonzero <= F32_MAX)).all()), "alpha w not normal"
        got = pqi_of(scaled, lengths, *pq, backend=backend)
        assert_close_report(got, base, 0.0, 1e-6, f"{backend} alpha={alpha}")


@given(data=moderate_vectors(torch.float64), pq=exponent_pairs())
def test_scale_invariance_float64(backend: str, data, pq) -> None:
    w, lengths = data
    base = pqi_of(w, lengths, *pq, backend=backend)
    for alpha in ALPHAS_F64:
        got = pqi_of(w * alpha, lengths, *pq, backend=backend)
        assert_close_report(got, base, 0.0, 1e-12, f"{backend} alpha={alpha}")


@pytest.mark.parametrize("pq", EXPONENT_PAIRS + EXTRA_PAIRS, ids=str)
def test_float32_extremes_in_one_segment(backend: str, pq: tuple[float, float]) -> None:
    p, q = pq
    params = torch.tensor([3e38, 1e-38, 0.0, -1e-38, 1e-45, -3e38, 1.0], dtype=torch.float32)
    got = pqi_of(params, [7], p, q, backend=backend)
    want = reference.pqi(params, torch.tensor([0, 7]), p, q)
    atol = max(1e-10, pqi_atol(params.dtype, p, q, backend))
    assert_close_report(got, want, 0.0, atol, f"{backend} extremes")
    # the two entries of 3e38 dominate every other term by far more than 1e-10
    two_equal = 1.0 - 7.0 ** (1 / q - 1 / p) * 2.0 ** (1 / p - 1 / q)
    assert abs(float(got[0]) - two_equal) < atol


# ---- NaN and inf ----

BAD_PARAMS = [1.0, NAN, 2.0, 3.0, 4.0, INF, 5.0, 6.0, -INF, 7.0, 8.0]
BAD_LENGTHS = [3, 2, 2, 2, 2]  # NaN in segment 0, inf in 2, -inf in 3


@pytest.mark.parametrize(
    "op", [sk.segmented_pqi, sk.segmented_power_sums], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nonfinite_raises(backend: str, op, dtype: torch.dtype) -> None:
    params = torch.tensor(BAD_PARAMS, dtype=dtype)
    seg = sk.Segments.from_lengths(BAD_LENGTHS)
    with pytest.raises(ValueError) as info:
        op(params, seg, 1.0, 2.0, backend=backend)
    message = str(info.value)
    assert message.startswith(f"{op.__name__}:"), message
    assert re.search(r"\b3 NaN or inf\b", message), message
    assert "[0, 2, 3]" in message, message


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nonfinite_propagate(backend: str, dtype: torch.dtype) -> None:
    params = torch.tensor(BAD_PARAMS, dtype=dtype)
    got = pqi_of(params, BAD_LENGTHS, 1.0, 2.0, backend=backend, nan_policy="propagate")
    assert got.isnan().tolist() == [True, False, True, True, False]
    finite = torch.tensor([3.0, 4.0, 7.0, 8.0], dtype=dtype)
    want = reference.pqi(finite, torch.tensor([0, 2, 4]), 1.0, 2.0)
    assert_close_report(got[[1, 4]], want, 0.0, 1e-12, "finite segments")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nonfinite_in_dead_entries_is_ignored(backend: str, dtype: torch.dtype) -> None:
    params = torch.tensor(BAD_PARAMS, dtype=dtype)
    mask = params.isfinite()
    got = pqi_of(params, BAD_LENGTHS, 1.0, 2.0, mask=mask, backend=backend)
    clean = torch.where(mask, params, torch.zeros_like(params))
    want = reference.pqi(clean, sk.Segments.from_lengths(BAD_LENGTHS).offsets, 1.0, 2.0, mask)
    assert not bool(got.isnan().any())
    assert_close_report(got, want, 0.0, 1e-12, f"{backend} dead NaN / inf")


def test_nonfinite_error_lists_many_segments(backend: str) -> None:
    params = torch.full((30,), NAN)
    params[::2] = 1.0
    with pytest.raises(ValueError, match=r"got 15 NaN or inf .* and 5 more"):
        pqi_of(params, [2] * 15, 1.0, 2.0, backend=backend)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pq", [(0.5, 1.0), (1.0, 2.0), (0.7, 1.3)], ids=str)
def test_nonfinite_counted_over_many_tiles(backend: str, dtype: torch.dtype, pq) -> None:
    """NaN / inf spread over short segments in several 65536-entry tiles of the C++ backend,
    some in segments that cross a tile boundary: each counted once, only their segments NaN."""
    gen = torch.Generator().manual_seed(3)
    lengths = torch.randint(0, 40, (9000,), generator=gen)
    params = torch.randn(int(lengths.sum()), generator=gen).to(dtype)
    seg = sk.Segments.from_lengths(lengths)
    places = torch.tensor([5, 65535, 65536, 70001, 131071, 150000, 150001, 170002])
    params[places[::2]] = NAN
    params[places[1::2]] = -INF
    hit = torch.unique(torch.searchsorted(seg.offsets, places, right=True) - 1)
    with pytest.raises(ValueError, match=rf"got {places.numel()} NaN or inf"):
        sk.segmented_pqi(params, seg, *pq, backend=backend)
    got = sk.segmented_pqi(params, seg, *pq, backend=backend, nan_policy="propagate")
    want_nan = torch.zeros(seg.num_segments, dtype=torch.bool)
    want_nan[hit] = True
    want_nan |= lengths == 0  # no live entry: NaN as well
    assert torch.equal(got.isnan(), want_nan)
    sums = sk.segmented_power_sums(params, seg, *pq, backend=backend, nan_policy="propagate")
    assert torch.equal(sums.sum_q.isnan(), want_nan & (lengths > 0))


def test_pqi_range_on_random_data(backend: str) -> None:
    """Theorem 1 on a batch of random segments of every length up to 300."""
    gen = torch.Generator().manual_seed(0)
    lengths = list(range(1, 301))
    params = torch.randn(sum(lengths), generator=gen, dtype=torch.float64) ** 3
    for p, q in EXPONENT_PAIRS:
        got = pqi_of(params, lengths, p, q, backend=backend)
        upper = 1.0 - torch.tensor(lengths, dtype=torch.float64) ** (1 / q - 1 / p)
        assert bool((got >= -1e-12).all()) and bool((got <= upper + 1e-12).all())
        assert not math.isnan(float(got.sum()))
