"""segmented_topk_mask and sap_step on segments of up to 2^15 entries, the ones a thread selects
in cache (float32 with AVX2, float16 / bfloat16 with their keys widened to 32 bits, float64 by
the high 32 bits of its keys: all pairs ranked below 64 entries, brackets from a small strided
sample above): the brackets' misses on either side, ties split at the threshold, float64 keys
that differ only below their high 32 bits, and dead entries, against the reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mask_oracle import assert_masks_equal, check_topk_against_reference
from strategies import Case, cases_of_lengths, kept_fractions

import sap_kernels as sk

SHORT_KINDS = ("normal", "wide", "sparse", "ties", "zeros")
# The dtypes of the cache selection's vector path: all of them.
VECTOR_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


@settings(max_examples=30)
@given(
    case=cases_of_lengths(
        st.lists(
            st.one_of(
                st.integers(1, 70),
                st.integers(60, 300),
                st.integers(300, 5000),
                st.sampled_from((63, 64, 1000)),
            ),
            min_size=1,
            max_size=8,
        ),
        (torch.float32, torch.float32, torch.bfloat16, torch.float16, torch.float64),
        SHORT_KINDS,
        ("none", "random", "segments"),
        (0.05, 0.5, 0.95),
    ),
    kept=kept_fractions((0.0, 0.01, 0.5, 0.99, 1.0)),
)
def test_short_segments_match_reference(backend: str, case: Case, kept: float) -> None:
    """Segments of 1 to 5000 entries, any value kind, dead entries, k from 0 to d."""
    check_topk_against_reference(backend, case.params, case.segments, kept, case.mask, repr(case))


def periodic_rows(rows: int, length: int, sampled: float) -> torch.Tensor:
    """Rows of normal values whose entries at the centres of 32 equal strides (where a strided
    sample of the row looks) are all `sampled`."""
    gen = torch.Generator().manual_seed(31)
    params = torch.randn(rows, length, generator=gen)
    stride = length // 32
    params[:, stride // 2 : stride * 32 : stride] = sampled
    return params.view(-1)


@pytest.mark.parametrize("dtype", VECTOR_DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("sampled", [1000.0, 1e-6])
@pytest.mark.parametrize("kept", [0.02, 0.5, 0.98])
def test_sample_misleads(backend: str, sampled: float, kept: float, dtype: torch.dtype) -> None:
    """The sample sees only huge (or tiny) values, so its bracket misses the threshold below
    (or above) it: the mask is still exact."""
    rows, length = 6, 1000
    params = periodic_rows(rows, length, sampled).to(dtype)
    seg = sk.Segments.from_lengths(torch.full((rows,), length))
    check_topk_against_reference(backend, params, seg, kept, None, f"sampled {sampled}")


@pytest.mark.parametrize("dtype", VECTOR_DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("length", [9, 40, 64, 999, 4096])
def test_ties_split_at_threshold(backend: str, length: int, dtype: torch.dtype) -> None:
    """A third of each row holds the threshold's magnitude and only some of those ties are
    kept: the first ones in flat order, with dead ties skipped."""
    rows = 5
    gen = torch.Generator().manual_seed(32)
    params = torch.where(
        torch.rand(rows * length, generator=gen) < 0.33,
        -0.5,
        torch.rand(rows * length, generator=gen),
    ).to(dtype)
    mask = torch.rand(rows * length, generator=gen) < 0.8
    seg = sk.Segments.from_lengths(torch.full((rows,), length))
    for kept in (0.3, 0.6):
        check_topk_against_reference(backend, params, seg, kept, mask, f"{length} kept {kept}")


def low_word_variants(length: int, rows: int, low_words: int, seed: int) -> torch.Tensor:
    """float64 rows whose entries take a few magnitudes (so a few high 32-bit words), each with
    one of `low_words` low 32-bit words: keys that tie in their high words and mostly differ
    below them, with exact ties too. Signs random."""
    gen = torch.Generator().manual_seed(seed)
    magnitudes = torch.tensor([0.25, 0.5, 0.75, 1.0, 3.0], dtype=torch.float64)
    pick = torch.randint(0, len(magnitudes), (rows * length,), generator=gen)
    high = magnitudes[pick].view(torch.int64) & ~0xFFFFFFFF
    low_table = torch.randint(0, 1 << 32, (low_words,), generator=gen)
    low = low_table[torch.randint(0, low_words, (rows * length,), generator=gen)]
    sign = torch.randint(0, 2, (rows * length,), generator=gen) << 63
    return (high | low | sign).view(torch.float64)


@pytest.mark.parametrize("low_words", [2, 97, 255])
@pytest.mark.parametrize("length", [40, 1000, 20000])
def test_float64_keys_tied_in_high_words(backend: str, length: int, low_words: int) -> None:
    """float64 keys ordered by their low 32 bits among those that share the high 32 bits (the
    word the vector selection ranks first), exact ties among them too, dead entries, any k."""
    rows = 4
    params = low_word_variants(length, rows, low_words, seed=35 + length)
    gen = torch.Generator().manual_seed(36)
    mask = torch.rand(rows * length, generator=gen) < 0.85
    seg = sk.Segments.from_lengths(torch.full((rows,), length))
    for kept in (0.1, 0.37, 0.5, 0.9):
        label = f"{length} x {low_words} low words, kept {kept}"
        check_topk_against_reference(backend, params, seg, kept, None, label)
        check_topk_against_reference(backend, params, seg, kept, mask, label + " masked")


@pytest.mark.parametrize("dtype", VECTOR_DTYPES, ids=lambda d: str(d).split(".")[-1])
def test_sap_step_rows_equal_composition(backend: str, dtype: torch.dtype) -> None:
    """sap_step on rows of a few hundred entries (selected in cache, inside the read of the
    power sums) gives the mask of segmented_topk_mask with its own counts."""
    gen = torch.Generator().manual_seed(33)
    rows, length = 300, 257
    params = torch.randn(rows * length, generator=gen) * torch.rand(rows * length, generator=gen)
    params = params.to(dtype)
    mask = torch.rand(rows * length, generator=gen) < 0.9
    seg = sk.Segments.from_lengths(torch.full((rows,), length))
    step = sk.sap_step(params, seg, 0.5, 1.0, mask=mask, backend=backend)
    keep = step.count - step.n_prune
    want = sk.segmented_topk_mask(params, seg, keep, mask, backend="torch")
    assert_masks_equal(step.mask, want, params, seg.offsets, f"{backend} sap_step")


def test_fresh_large_mask_is_written_whole(backend: str) -> None:
    """A mask large enough to be advised onto huge pages (over 8 MiB) is written entry by entry
    like any other: sap_step's equals segmented_topk_mask's into a given zeroed tensor."""
    gen = torch.Generator().manual_seed(34)
    rows, length = 9000, 1001
    params = torch.randn(rows * length, generator=gen)
    seg = sk.Segments.from_lengths(torch.full((rows,), length))
    step = sk.sap_step(params, seg, 0.5, 1.0, backend=backend)
    given_out = torch.zeros(rows * length, dtype=torch.bool)
    want = sk.segmented_topk_mask(
        params, seg, step.count - step.n_prune, backend=backend, out=given_out
    )
    assert_masks_equal(step.mask, want, params, seg.offsets, f"{backend} fresh mask")
