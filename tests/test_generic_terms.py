"""Each term x^p of the generic exponents, isolated: the float32 arithmetic's contract per term.

The sums of a segment that holds one large entry M and one entry x, less those of M alone (the
same scale), give x's term exactly: every entry has a lane of its own until the float64 sum,
so M's term is the same in both, and two float32 terms within 2^28 of each other add up in
float64 without rounding. That pins the per-entry arithmetic (CPU: log2 / exp2, or the AVX-512
copy's tables, power_tables.h) across every binary exponent and mantissa column of x, through
the table's edge (x 2^-e = 2^-32) and the lanes below it.
"""

from __future__ import annotations

import pytest
import torch
from conftest import BACKENDS_HERE, term_rtol

import sap_kernels as sk

LARGEST = 1.5 * 2.0**10  # the scale is 2^11: M 2^-11 = 0.75
MANTISSAS = (1.0, 1.0078125, 1.03125, 1.25, 1.5, 1.75, 1.9921875)  # exact in bfloat16 too
# binary exponents of x below M's: the table holds 2^-1 .. 2^-32 of the scale, x 2^-11
SHIFTS = range(0, 48)
# the terms isolated exactly: within 2^28 of M's
MEASURABLE = 2.0**-28
# the AVX-512 copy's terms: two float32 roundings and the tables' residues (power_tables.h)
TABLE_TERM_RTOL = 2.5 * 2.0**-24


def mantissas(dtype: torch.dtype) -> list[float]:
    """MANTISSAS, and for float32 200 random ones (every column of the table, many times)."""
    if dtype != torch.float32:
        return list(MANTISSAS)
    generator = torch.Generator().manual_seed(3)
    drawn = 1.0 + torch.randint(0, 1 << 23, (200,), generator=generator).double() * 2.0**-23
    return list(MANTISSAS) + drawn.tolist()


def isolated_terms(dtype: torch.dtype, p: float, q: float, backend: str):
    """x, x^p and x^q as the backend computes them (float64), one per x."""
    xs = [m * 2.0 ** (9 - k) for k in SHIFTS for m in mantissas(dtype)]
    values = []
    for x in xs:
        values += [LARGEST, x, LARGEST]
    params = torch.tensor(values, dtype=torch.float64).to(dtype)
    assert torch.equal(params.double(), torch.tensor(values, dtype=torch.float64)), "not exact"
    segments = sk.Segments.from_lengths([2, 1] * len(xs))
    sums = sk.segmented_power_sums(params, segments, p, q, backend=backend)
    scale = sums.scale[0::2]
    assert torch.equal(scale, sums.scale[1::2]), "M sets the scale of both"
    term_p = (sums.sum_p[0::2] - sums.sum_p[1::2]) * scale**p
    term_q = (sums.sum_q[0::2] - sums.sum_q[1::2]) * scale**q
    return torch.tensor(xs, dtype=torch.float64), term_p, term_q


def log2_rtol(x: torch.Tensor, exponent: float) -> torch.Tensor:
    """What float32 log2 / exp2 (powers_f32.h: the CPU copies without AVX-512) add to a term:
    log2 of the scaled x, a float32 of magnitude |log2|, is within one ulp of that, and
    2^(p y) moves by p ln 2 times the error of y."""
    scaled_log2 = (x / 2.0**11).log2().abs()
    return exponent * 0.6931471805599453 * scaled_log2 * 2.0**-23


def assert_terms_close(
    x: torch.Tensor, got: torch.Tensor, exponent: float, rtol: torch.Tensor, what: str
) -> None:
    want = x**exponent
    largest = LARGEST**exponent
    shown = want >= MEASURABLE * largest
    bound = (rtol + 2.0**-50) * want  # and float64 rounding of the scale's powers
    bad = shown & ((got - want).abs() > bound)
    if bool(bad.any()):
        first = bad.nonzero().flatten()[:5].tolist()
        rows = [
            f"x = {x[i].item()!r}: got {got[i].item()!r}, want {want[i].item()!r}, "
            f"relative error {(got[i] / want[i] - 1).item():.3e}"
            for i in first
        ]
        raise AssertionError(f"{what}: {int(bad.sum())} terms off:\n" + "\n".join(rows))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    "pq", [(0.5, 0.75), (0.7, 1.3), (0.6, 2.5), (1.2, 3.7), (0.25, 4.0), (0.1, 1.3)], ids=str
)
def test_each_generic_term_within_the_contract(
    backend: str, dtype: torch.dtype, pq: tuple[float, float]
) -> None:
    """The AVX-512 copy's tables (and their far lanes in double) keep every term within
    TABLE_TERM_RTOL, inside the contract; the log2 / exp2 copies add log2_rtol to the
    contract, which grows as the term shrinks."""
    p, q = pq
    x, term_p, term_q = isolated_terms(dtype, p, q, backend)
    rtol = term_rtol(dtype, p, q, backend)
    tables = backend == "cpu" and sk.cpu_isa() == "x86-64-v4"
    for exponent, got in ((p, term_p), (q, term_q)):
        if tables:
            bound = torch.full_like(x, TABLE_TERM_RTOL)
        elif backend == "torch":
            bound = torch.full_like(x, rtol)
        else:
            bound = rtol + log2_rtol(x, exponent)
        assert_terms_close(x, got, exponent, bound, f"{backend} {dtype} x^{exponent}")


@pytest.mark.parametrize("pq", [(0.7, 1.3), (0.6, 2.5)], ids=str)
def test_zero_and_dead_entries_add_nothing(backend: str, pq: tuple[float, float]) -> None:
    """Zeros, dead entries and the lanes past a segment's end give no term, whatever their
    table row would be."""
    p, q = pq
    values = torch.tensor([LARGEST, 0.0, 3.0, -0.0, 1e-30, 5.0, 0.0], dtype=torch.float32)
    mask = torch.tensor([True, True, False, True, True, False, True])
    alone = torch.tensor([LARGEST, 1e-30], dtype=torch.float32)
    one, two = sk.Segments.from_lengths([7]), sk.Segments.from_lengths([2])
    got = sk.segmented_power_sums(values, one, p, q, mask, backend=backend)
    want = sk.segmented_power_sums(alone, two, p, q, backend=backend)
    for name, a, b in zip(("scale", "sum_p", "sum_q"), got[:3], want[:3]):
        assert torch.allclose(a, b, rtol=1e-15, atol=0.0), (name, a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("pq", [(0.1, 1.3), (0.2, 0.7)], ids=str)
def test_small_p_takes_float64_terms(backend: str, dtype: torch.dtype, pq) -> None:
    """Below p = 1/4 a float32 term's error would be amplified by 1/p in the PQI, so the CPU
    copies take float64 terms there: the PQI matches that of the same values as float64."""
    if backend != "cpu":
        pytest.skip("the CPU backend's choice of arithmetic")
    generator = torch.Generator().manual_seed(5)
    params = torch.randn(20_000, generator=generator).to(dtype)
    segments = sk.Segments.from_lengths([1000] * 10 + [9999, 1])
    got = sk.segmented_pqi(params, segments, *pq, backend=backend)
    want = sk.segmented_pqi(params.double(), segments, *pq, backend=backend)
    worst = (got - want).abs().max().item()
    assert worst <= 1e-12, f"{dtype} p, q = {pq}: PQI off by {worst:.3e}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_short_segment_sums_do_not_depend_on_their_neighbours(
    dtype: torch.dtype, masked: bool
) -> None:
    """The CPU sums a short segment with generic exponents one of several ways: gathered with
    others of its length (a run of one length, as rows are), alone after a segment of another
    length, and, in the AVX-512 copy, from registers by a copy of the code unrolled for its
    number of vectors. Each pair here holds the same values twice, the first after a segment of
    another length, the second right after the first: their sums must be the same bit for bit
    (a segment's sums do not depend on the lengths of the segments around it)."""
    if "cpu" not in BACKENDS_HERE:
        pytest.skip("needs the compiled extension")
    generator = torch.Generator().manual_seed(11)
    lengths = []
    while sum(lengths) < 20_000:  # within one tile of the CPU kernels: no piece crosses one
        length = int(torch.randint(1, 161, (1,), generator=generator))
        if not lengths or length != lengths[-1]:
            lengths += [length, length]
    pieces, masks = [], []
    for length in lengths[0::2]:
        # magnitudes spread over 2^-40 .. 2^8: some lanes far below the segment's largest
        values = torch.randn(length, generator=generator, dtype=torch.float64)
        values *= torch.exp2(torch.randint(-40, 8, (length,), generator=generator).double())
        live = torch.rand(length, generator=generator) < 0.8
        pieces += [values, values]
        masks += [live, live]
    params = torch.cat(pieces).to(dtype)
    mask = torch.cat(masks) if masked else None
    segments = sk.Segments.from_lengths(lengths)
    for p, q in ((0.7, 1.3), (0.5, 2.5), (1.2, 3.7)):
        sums = sk.segmented_power_sums(params, segments, p, q, mask, backend="cpu")
        for name, values in zip(("scale", "sum_p", "sum_q", "count"), sums[:4]):
            first, second = values[0::2], values[1::2]
            same = (first == second) | (first.isnan() & second.isnan())
            if not bool(same.all()):
                pair = int((~same).nonzero()[0])
                raise AssertionError(
                    f"{dtype} p, q = {p}, {q}: {name} of segment pair {pair} (length "
                    f"{lengths[2 * pair]}): {first[pair].item()!r} then {second[pair].item()!r}"
                )
