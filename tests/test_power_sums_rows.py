"""segmented_power_sums on runs of short segments of one length, generic exponents.

The CPU backend sums such runs (float32 / float16 / bfloat16 params, both exponents generic)
many segments at a time: their scaled magnitudes gathered into one buffer, one log2 / exp2 loop
over it, then each segment's own sums. These tests hold that path to the reference, to the
one-segment-at-a-time path bit for bit, and to the NaN / inf, zero, subnormal and huge-scale
cases that path handles.
"""

from __future__ import annotations

import pytest
import torch
from conftest import BACKENDS_HERE, GPU_BACKENDS
from strategies import Case
from test_power_sums import TILE, check_case

import sap_kernels as sk

GENERIC_PAIRS = ((0.7, 1.3), (0.5, 3.7), (1.25, 2.5))
LOW_PRECISION = (torch.float32, torch.float16, torch.bfloat16)


def rows(length: int, count: int, dtype: torch.dtype, seed: int, scale: float = 3.0):
    gen = torch.Generator().manual_seed(seed)
    params = (torch.randn(length * count, generator=gen, dtype=torch.float64) * scale).to(dtype)
    mask = torch.rand(length * count, generator=gen) < 0.8
    return params, sk.Segments.from_lengths([length] * count), mask


# lengths about a vector (8, 16 lanes), about the longest row the AVX-512 copy batches (128)
# and the 2048 entries the CPU batch holds, and past them
ROW_LENGTHS = (1, 2, 7, 8, 9, 15, 16, 17, 33, 100, 127, 128, 129, 1000, 2047, 2048, 2049)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
@pytest.mark.parametrize("length", ROW_LENGTHS)
def test_rows_match_reference(backend: str, length: int, dtype: torch.dtype) -> None:
    count = max(3, 6000 // length)  # several batches' worth of short rows
    params, segments, mask = rows(length, count, dtype, seed=length)
    for p, q in GENERIC_PAIRS:
        for m in (None, mask):
            check_case(Case(params, segments, m, f"rows of {length}"), p, q, backend)


def test_rows_across_tiles_match_reference(backend: str) -> None:
    """Runs of one length that cross the CPU backend's tiles, and a length change inside."""
    lengths = [24] * (TILE // 24 + 50) + [40] * 3000 + [24] * 100
    gen = torch.Generator().manual_seed(2)
    params = torch.randn(sum(lengths), generator=gen)
    mask = torch.rand(sum(lengths), generator=gen) < 0.9
    case = Case(params, sk.Segments.from_lengths(lengths), mask, "rows across tiles")
    check_case(case, 0.7, 1.3, backend)


def interleaved(length: int, segments: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The rows of `segments` [count, length] with a segment of length + 1 after each."""
    gen = torch.Generator().manual_seed(9)
    spacer = torch.randn(segments.shape[0], length + 1, generator=gen).to(dtype)
    return torch.cat([segments, spacer], dim=1).reshape(-1)


def assert_bitwise_equal(got: torch.Tensor, want: torch.Tensor, what: object) -> None:
    """Equal bit for bit, NaN where the other is NaN."""
    nan = want.isnan()
    assert torch.equal(got.isnan(), nan), what
    assert torch.equal(got[~nan], want[~nan]), what


@pytest.mark.skipif("cpu" not in BACKENDS_HERE, reason="needs the compiled extension")
@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
@pytest.mark.parametrize("length", (1, 5, 16, 31, 90, 700, 2048))
def test_rows_equal_one_by_one_sums_bitwise(backend: str, length: int, dtype: torch.dtype) -> None:
    """A run of one length sums to the same bits as the same segments among others of another
    length (which the CPU backend sums one at a time). Kept within one tile, where no segment
    is cut."""
    if backend != "cpu":
        pytest.skip("the CPU backend's two paths")
    count = min(400, (TILE // 2) // (length + 1))
    params, segments, mask = rows(length, count, dtype, seed=3 * length)
    # magnitudes over many decades within a row, so that small entries underflow when scaled
    params = params * torch.logspace(-20, 0, params.numel()).to(dtype)
    mixed = interleaved(length, params.reshape(count, length), dtype)
    mixed_mask = interleaved(length, mask.reshape(count, length), torch.bool)
    mixed_segments = sk.Segments.from_lengths([length, length + 1] * count)
    for p, q in GENERIC_PAIRS:
        for m, mm in ((None, None), (mask, mixed_mask)):
            run = sk.segmented_power_sums(params, segments, p, q, m, backend=backend)
            alone = sk.segmented_power_sums(mixed, mixed_segments, p, q, mm, backend=backend)
            for name, got, want in zip(sk.PowerSums._fields, run, alone):
                assert torch.equal(got, want[0::2]), (name, length, dtype, p, q)
            pqi = sk.segmented_pqi(params, segments, p, q, m, backend=backend)
            pqi_alone = sk.segmented_pqi(mixed, mixed_segments, p, q, mm, backend=backend)
            assert_bitwise_equal(pqi, pqi_alone[0::2], ("pqi", length, dtype, p, q))


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
def test_rows_of_extreme_scales(backend: str, dtype: torch.dtype) -> None:
    """Rows whose max is subnormal, near the top of the range, or zero, among ordinary ones."""
    info = torch.finfo(dtype)
    length, count = 12, 40
    params, segments, mask = rows(length, count, torch.float64, seed=4)
    params = params.reshape(count, length).clone()
    params[3] *= info.tiny / 64 / params[3].abs().max()  # every entry subnormal
    params[4] *= info.max / params[4].abs().max()  # the max at the top of the range
    params[5] *= info.max / 4 / params[5].abs().max()
    params[6] = 0.0  # an all-zero row
    params[7, ::2] = info.max  # many entries at the max
    params = params.reshape(-1).to(dtype)
    mask[8 * length : 9 * length] = False  # a row with nothing live
    for p, q in GENERIC_PAIRS:
        for m in (None, mask):
            check_case(Case(params, segments, m, "extreme rows"), p, q, backend)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
def test_rows_with_nonfinite_entries(backend: str, dtype: torch.dtype) -> None:
    length, count = 10, 300
    params, segments, _ = rows(length, count, dtype, seed=5)
    bad = params.clone()
    bad[7 * length + 3] = float("nan")
    bad[150 * length] = float("inf")
    bad[299 * length + 9] = -float("inf")
    before = bad.clone()
    expected_error = r"got 3 NaN or inf live entries in segment\(s\) \[7, 150, 299\]"
    with pytest.raises(ValueError, match=expected_error):
        sk.segmented_power_sums(bad, segments, 0.7, 1.3, backend=backend)
    assert torch.equal(bad.isnan(), before.isnan())
    assert torch.equal(bad.nan_to_num(), before.nan_to_num()), "a failed call changed params"
    sums = sk.segmented_power_sums(bad, segments, 0.7, 1.3, nan_policy="propagate", backend=backend)
    expected_nan = torch.zeros(count, dtype=torch.bool)
    expected_nan[[7, 150, 299]] = True
    assert torch.equal(sums.sum_p.isnan(), expected_nan)
    assert torch.equal(sums.sum_q.isnan(), expected_nan)
    clean = sk.segmented_power_sums(params, segments, 0.7, 1.3, backend=backend)
    if backend not in GPU_BACKENDS:  # the others' sums stay as in a clean call, bit for bit
        for got, want in zip(sums, clean):
            assert torch.equal(got[~expected_nan], want[~expected_nan])
    masked = torch.ones(params.numel(), dtype=torch.bool)
    masked[[7 * length + 3, 150 * length, 299 * length + 9]] = False
    check_case(Case(bad, segments, masked, "non-finite entries masked"), 0.7, 1.3, backend)
