"""segmented_power_sums: every backend against the float64 reference (sap_kernels.reference).

Backends carry different scales (the CPU backend a power of two, the reference the max live
|w|), so the sums are compared in scale-free form: log ||a||_p = log(scale) + log(sum_p) / p.
"""

from __future__ import annotations

import math
import subprocess

import pytest
import torch
from conftest import (
    BACKENDS_HERE,
    GPU_BACKENDS,
    PYTHON,
    assert_close_report,
    log_norm_atol,
    subprocess_env,
)
from hypothesis import given
from hypothesis import strategies as st
from strategies import DTYPES, EXPONENT_PAIRS, Case, cases, exponent_pairs, huge_float16_normal

import sap_kernels as sk
from sap_kernels import reference

TILE = 1 << 16  # the C++ backend's tile size (csrc/cpu/tiles.h)


def log_norm(scale: torch.Tensor, total: torch.Tensor, exponent: float) -> torch.Tensor:
    """log ||a||_exponent from scaled sums; -inf for a zero segment."""
    return scale.log() + total.log() / exponent


def assert_sums_match(
    sums: sk.PowerSums,
    expected: tuple,
    p: float,
    q: float,
    what: str,
    dtype: torch.dtype,
    atol: float | None = None,
    backend: str = "cpu",
) -> None:
    """sums (of backend) equal the reference's `expected`, up to their scale."""
    scale, sum_p, sum_q, count = expected
    assert sums.count.dtype == torch.int64
    assert torch.equal(sums.count, count), f"{what}: counts {sums.count} != {count}"
    zero = scale == 0
    assert torch.equal(sums.scale == 0, zero), f"{what}: zero segments differ"
    assert torch.equal(sums.sum_p == 0, zero), f"{what}: sum_p is 0 exactly where scale is 0"
    assert torch.equal(sums.sum_q == 0, zero), f"{what}: sum_q is 0 exactly where scale is 0"
    if atol is None:
        atol = log_norm_atol(int(count.max()) if count.numel() else 0, dtype, p, q, backend)
    assert_close_report(
        log_norm(sums.scale, sums.sum_p, p), log_norm(scale, sum_p, p), 0.0, atol, f"{what} p"
    )
    assert_close_report(
        log_norm(sums.scale, sums.sum_q, q), log_norm(scale, sum_q, q), 0.0, atol, f"{what} q"
    )


def assert_scale_contract(sums: sk.PowerSums, backend: str) -> None:
    """Where a segment has a non-zero live entry: scale and sums are finite and positive (the
    CPU backend's scale a power of two); the reference's scale is its max live |w| instead."""
    live = sums.scale != 0
    for name, tensor in zip(("scale", "sum_p", "sum_q"), sums[:3]):
        bad = ~(tensor[live].isfinite() & (tensor[live] > 0))
        assert not bool(bad.any()), f"{name} not finite and > 0: {tensor[live][bad].tolist()}"
    if backend == "cpu":
        mantissa, _ = torch.frexp(sums.scale[live])
        assert bool((mantissa == 0.5).all()), f"CPU scales must be powers of two: {sums.scale}"


def check_case(case: Case, p: float, q: float, backend: str) -> None:
    sums = sk.segmented_power_sums(case.params, case.segments, p, q, case.mask, backend=backend)
    expected = reference.power_sums(case.params, case.offsets, p, q, case.mask)
    what = f"{backend} {case!r}"
    assert_sums_match(sums, expected, p, q, what, case.params.dtype, backend=backend)
    if not bool(sums.sum_p.isnan().any()):
        assert_scale_contract(sums, backend)


@given(case=cases(), pq=exponent_pairs())
def test_matches_reference(backend: str, case: Case, pq: tuple[float, float]) -> None:
    check_case(case, *pq, backend)


@pytest.mark.parametrize("pq", EXPONENT_PAIRS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_exponent_and_dtype(backend: str, dtype: torch.dtype, pq: tuple) -> None:
    gen = torch.Generator().manual_seed(7)
    lengths = [0, 1, 5, 300, 0, 2, 1000, 17]
    params = (torch.randn(sum(lengths), generator=gen, dtype=torch.float64) * 3).to(dtype)
    mask = torch.rand(sum(lengths), generator=gen) < 0.7
    for m in (None, mask):
        check_case(Case(params, sk.Segments.from_lengths(lengths), m, "normal"), *pq, backend)


@pytest.mark.parametrize("offsets_dtype", [torch.int32, torch.int64], ids=str)
def test_offsets_forms_agree(backend: str, offsets_dtype: torch.dtype) -> None:
    """A Segments, raw int64 offsets and int32 offsets give bit-identical results."""
    params = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    offsets = torch.tensor([0, 0, 3, 400, 400, 999, 1000], dtype=torch.int64)
    base = sk.segmented_power_sums(params, sk.Segments(offsets), 1.0, 2.0, backend=backend)
    raw = offsets.to(offsets_dtype)
    other = sk.segmented_power_sums(params, raw, 1.0, 2.0, backend=backend)
    for a, b in zip(base, other):
        assert torch.equal(a, b)
    assert sk.Segments(raw).offsets.dtype == torch.int64


@pytest.mark.parametrize("offsets", [[0], [0, 0, 0]])
def test_empty_buffer(backend: str, offsets: list[int]) -> None:
    params = torch.zeros(0)
    sums = sk.segmented_power_sums(params, sk.Segments(offsets), 1.0, 2.0, backend=backend)
    num_segments = len(offsets) - 1
    for tensor in sums:
        assert tensor.shape == (num_segments,)
    assert torch.equal(sums.count, torch.zeros(num_segments, dtype=torch.int64))
    assert torch.equal(sums.scale, torch.zeros(num_segments, dtype=torch.float64))


def test_view_with_storage_offset(backend: str) -> None:
    """A contiguous view into a larger buffer (storage offset != 0) reads the right entries."""
    gen = torch.Generator().manual_seed(3)
    big = torch.randn(5000, generator=gen) * torch.arange(5000)
    big_mask = torch.rand(5000, generator=gen) < 0.5
    view, mask_view = big[1234:4321], big_mask[1234:4321]
    seg = sk.Segments.from_lengths([1000, 87, 2000])
    got = sk.segmented_power_sums(view, seg, 0.5, 2.0, mask_view, backend=backend)
    want = sk.segmented_power_sums(view.clone(), seg, 0.5, 2.0, mask_view.clone(), backend=backend)
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_noncontiguous_mask_is_read_correctly(backend: str) -> None:
    params = torch.randn(600, generator=torch.Generator().manual_seed(4))
    full = torch.rand(1200, generator=torch.Generator().manual_seed(5)) < 0.5
    seg = sk.Segments.from_lengths([100, 500])
    got = sk.segmented_power_sums(params, seg, 1.0, 3.0, full[::2], backend=backend)
    expected = reference.power_sums(params, seg.offsets, 1.0, 3.0, full[::2].contiguous())
    assert_sums_match(got, expected, 1.0, 3.0, "strided mask", params.dtype)


def test_float64_subnormals(backend: str) -> None:
    tiny = 5e-324
    params = torch.tensor([tiny, 2 * tiny, 0.0, 1e-310, 3e-320, tiny], dtype=torch.float64)
    seg = sk.Segments.from_lengths([3, 2, 1])
    for p, q in EXPONENT_PAIRS:
        check_case(Case(params, seg, None, "subnormal"), p, q, backend)


@pytest.mark.parametrize("pq", EXPONENT_PAIRS, ids=str)
def test_float32_subnormal_segments(backend: str, pq: tuple[float, float]) -> None:
    """Segments whose largest |w| is a float32 subnormal (its scale comes from the width of its
    bits), short and long. For the pairs that every CPU copy sums in units of the max, the
    scale is 2^e with max = f 2^e, f in [0.5, 1)."""
    gen = torch.Generator().manual_seed(3)
    lengths = [1, 3, 17, 130, 700, 3000]
    tiny = 2.0**-149
    # bit patterns 1 .. 2^23 - 1 (every width), one segment's entries below another's max
    bits = torch.randint(1, 1 << 23, (sum(lengths),), generator=gen, dtype=torch.int64)
    bits = bits >> torch.randint(0, 23, (sum(lengths),), generator=gen)
    params = (bits.clamp(min=1).double() * tiny).float()
    params[5] = tiny  # a segment of 17 whose largest is the smallest subnormal's neighbour
    seg = sk.Segments.from_lengths(lengths)
    check_case(Case(params, seg, None, "float32 subnormal"), *pq, backend)
    # generic exponents with p >= 1/2 (float32 terms, any copy), and q > 6
    if backend == "cpu" and pq in ((0.7, 1.3), (1.2, 3.7), (2.0, 7.0)):
        sums = sk.segmented_power_sums(params, seg, *pq, backend=backend)
        largest = torch.stack([part.abs().max() for part in params.split(lengths)]).double()
        _, exponent = torch.frexp(largest)
        assert torch.equal(sums.scale, torch.ldexp(torch.ones_like(largest), exponent))


def test_float64_near_max_scale_is_finite(backend: str) -> None:
    """|w| >= 2^1023 in float64: the scale must stay finite (no power of two above them is)."""
    params = torch.tensor([1.5 * 2.0**1023, 1.0, 1.7e308, -1e308, 2.0], dtype=torch.float64)
    seg = sk.Segments.from_lengths([2, 1, 2])
    check_case(Case(params, seg, None, "near max"), 1.0, 2.0, backend)


def test_nonfinite_propagate(backend: str) -> None:
    nan, inf = float("nan"), float("inf")
    params = torch.tensor([1.0, nan, 2.0, 3.0, inf, 4.0, -inf, 5.0])
    seg = sk.Segments.from_lengths([3, 2, 3])
    sums = sk.segmented_power_sums(params, seg, 1.0, 2.0, nan_policy="propagate", backend=backend)
    assert sums.sum_p.isnan().tolist() == [True, True, True]
    assert sums.sum_q.isnan().tolist() == [True, True, True]
    assert sums.count.tolist() == [3, 2, 3]


def test_finite_segments_beside_nonfinite_ones(backend: str) -> None:
    params = torch.tensor([1.0, 2.0, 3.0, float("inf"), 4.0, 5.0])
    seg = sk.Segments.from_lengths([2, 1, 1, 2])
    sums = sk.segmented_power_sums(params, seg, 1.0, 2.0, nan_policy="propagate", backend=backend)
    assert sums.sum_p.isnan().tolist() == [False, False, True, False]
    keep = torch.tensor([0, 1, 3])
    clean = params[[0, 1, 2, 4, 5]]
    expected = reference.power_sums(clean, torch.tensor([0, 2, 3, 5]), 1.0, 2.0, None)
    picked = sk.PowerSums(*(t[keep] for t in sums))
    assert_sums_match(picked, expected, 1.0, 2.0, "finite beside inf", params.dtype)


# ---- load balance: segments against the C++ backend's 65536-element tiles ----


def tile_case(lengths: list[int], dtype: torch.dtype, seed: int, spread: bool) -> Case:
    gen = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    values = torch.randn(n, generator=gen, dtype=torch.float64)
    if spread:  # magnitudes rising along the buffer: later tiles bring larger scales
        decades = 30 if dtype == torch.float32 else 3
        values = values * torch.logspace(-decades, decades, n, dtype=torch.float64)
    mask = torch.rand(n, generator=gen) < 0.9
    return Case(values.to(dtype), sk.Segments.from_lengths(lengths), mask, "tiles")


def tiny_lengths(total: int, seed: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 8, (total // 3,), generator=gen).tolist()
    return lengths + [total - sum(lengths)] if sum(lengths) < total else lengths


TILE_LAYOUTS = {
    "one_300k": [300_000],
    "tiny_many": tiny_lengths(3 * TILE + 123, seed=11),
    "at_tile_boundary": [TILE, 100, TILE - 100, 5, 2 * TILE, 1],
    "ends_at_boundary": [TILE - 1, 1, TILE, 0, 0, 7],
    "straddling": [TILE - 3, 6, TILE - 6, 3 * TILE + 1, 2],
}


@pytest.mark.parametrize("spread", [False, True], ids=["plain", "rising"])
@pytest.mark.parametrize("layout", TILE_LAYOUTS, ids=str)
def test_tiles(backend: str, layout: str, spread: bool) -> None:
    lengths = TILE_LAYOUTS[layout]
    for dtype, (p, q) in ((torch.float32, (1.0, 2.0)), (torch.float16, (0.7, 1.3))):
        case = tile_case(lengths, dtype, seed=len(lengths), spread=spread)
        check_case(case, p, q, backend)
        reversed_case = Case(case.params.flip(0), case.segments, case.mask, "tiles, falling")
        check_case(reversed_case, p, q, backend)


THREADS_SCRIPT = r"""
import hashlib, torch, sap_kernels as sk
gen = torch.Generator().manual_seed(0)
lengths = torch.randint(0, 3000, (150,), generator=gen)
lengths[10] = 150000
seg = sk.Segments.from_lengths(lengths)
mask = torch.rand(seg.numel, generator=gen) < 0.8
digest = hashlib.sha256()
for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
    x = (torch.randn(seg.numel, generator=gen, dtype=torch.float64) * 10).to(dtype)
    for p, q in ((1.0, 2.0), (0.7, 1.3)):
        for t in sk.segmented_power_sums(x, seg, p, q, mask, backend="cpu"):
            digest.update(t.numpy().tobytes())
        digest.update(sk.segmented_pqi(x, seg, p, q, backend="cpu").numpy().tobytes())
    # the selections too: short segments one per thread, the long one by shares of threads
    for segments in (seg, sk.Segments([0, seg.numel])):
        step = sk.sap_step(x, segments, 0.5, 1.0, mask, backend="cpu")
        for t in (step.mask, step.pqi, step.count, step.n_prune):
            digest.update(t.numpy().tobytes())
        kept = sk.segmented_topk_mask(x, segments, segments.lengths() // 3, mask, backend="cpu")
        digest.update(kept.numpy().tobytes())
print(torch.get_num_threads(), digest.hexdigest())
"""


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("pq", [(0.5, 1.0), (1.0, 2.0), (1.5, 3.0), (0.5, 2.0)])
def test_fast_path_sums_do_not_depend_on_where_a_segment_is_cut(
    backend: str, dtype: torch.dtype, pq: tuple[float, float]
) -> None:
    """With the fast-path exponents the CPU sums every term in float64, so a segment's sums
    move only by float64 rounding when it is cut into pieces elsewhere (here by a tile
    boundary at another place in it): what keeps the sharded ops (sap_kernels.distributed),
    whose ranks cut segments anywhere, within 1e-15 of one process's PQI and prune counts.
    Adding float32 terms in groups before widening them would move them by ~1e-7."""
    if backend in GPU_BACKENDS:
        pytest.skip("the GPU backends may keep float32 partial sums")
    p, q = pq
    generator = torch.Generator().manual_seed(5)
    segment = torch.randn(3001, generator=generator).to(dtype)
    norms = []
    for cut in (1500, 1499, 1493, 1487, 1469, 3001):  # the tile boundary this far into it
        prefix = torch.randn(TILE - cut, generator=generator).to(dtype)
        params = torch.cat([prefix, segment])
        segments = sk.Segments.from_lengths([prefix.numel(), segment.numel()])
        sums = sk.segmented_power_sums(params, segments, p, q, backend=backend)
        norms.append(
            (log_norm(sums.scale, sums.sum_p, p)[1], log_norm(sums.scale, sums.sum_q, q)[1])
        )
    for cut_norms in norms[1:]:
        for got, first in zip(cut_norms, norms[0]):
            assert abs(float(got - first)) <= 1e-13, (dtype, pq, float(got - first))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("masked", [False, True], ids=["all-live", "masked"])
def test_16_bit_params_sum_as_their_float32_values(
    backend: str, dtype: torch.dtype, masked: bool
) -> None:
    """16-bit params give the sums of the same values held as float32, bit for bit, where every
    sum is exact: |w| in [0.5, 8) and integer exponents up to 3 (bits from 2^-36 up to 2^16,
    within float64's 53). The CPU reads 16-bit entries in their own ways (bfloat16 split into
    even and odd entries, float16 converted or rebased), so this pins that each live entry is
    read once and each dead or outside one not at all, at every length up to 70 (a vector's
    tail, masked lanes) and across cuts anywhere."""
    if backend in GPU_BACKENDS:
        pytest.skip("the GPU backends may keep float32 partial sums")
    generator = torch.Generator().manual_seed(11)
    for n in range(71):
        magnitude = 0.5 + 7.5 * torch.rand(n, generator=generator)
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        params = (sign * magnitude).to(dtype)
        cuts = torch.randint(0, n + 1, (3,), generator=generator).sort().values
        offsets = torch.cat([torch.tensor([0]), cuts, torch.tensor([n])])
        segments = sk.Segments(offsets)
        mask = torch.rand(n, generator=generator) < 0.7 if masked else None
        for p, q in ((1.0, 2.0), (1.0, 3.0)):
            sums = sk.segmented_power_sums(params, segments, p, q, mask, backend=backend)
            widened = sk.segmented_power_sums(params.float(), segments, p, q, mask, backend=backend)
            for name in ("sum_p", "sum_q", "scale", "count"):
                got, want = getattr(sums, name), getattr(widened, name)
                assert torch.equal(got, want), (dtype, n, offsets.tolist(), (p, q), name, got, want)


@pytest.mark.skipif("cpu" not in BACKENDS_HERE, reason="needs the compiled extension")
def test_results_do_not_depend_on_thread_count() -> None:
    """Power sums, PQI, sap_step and top-k masks of every dtype, bit for bit the same on one
    OpenMP thread as on two (each parallel region takes the threads its work is worth)."""
    outputs = {}
    for threads in ("1", "2"):
        env = subprocess_env(OMP_NUM_THREADS=threads)
        run = subprocess.run(
            [PYTHON, "-c", THREADS_SCRIPT], env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        reported_threads, digest = run.stdout.split()
        assert reported_threads == threads, "OMP_NUM_THREADS did not reach the child"
        outputs[threads] = digest
    assert outputs["1"] == outputs["2"], "results differ between 1 and 2 OpenMP threads"


# ---- beyond 2^31 elements (4 GiB of float16): run with -m slow ----


def chunked_reference(params: torch.Tensor, start: int, end: int, p: float, q: float) -> tuple:
    """Reference power sums of params[start:end] in one segment, computed chunk by chunk."""
    chunk = 1 << 26
    parts = []
    for lo in range(start, end, chunk):
        piece = params[lo : min(end, lo + chunk)]
        parts.append(reference.power_sums(piece, torch.tensor([0, piece.numel()]), p, q, None))
    top = max(float(part[0]) for part in parts)
    sum_p = sum(float(s_p) * (float(s) / top) ** p for s, s_p, _, _ in parts)
    sum_q = sum(float(s_q) * (float(s) / top) ** q for s, _, s_q, _ in parts)
    count = sum(int(c) for *_, c in parts)
    return as_double(top), as_double(sum_p), as_double(sum_q), torch.tensor([count])


def as_double(value: float) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float64)


@pytest.mark.slow
@pytest.mark.skipif("cpu" not in BACKENDS_HERE, reason="needs the compiled extension")
def test_beyond_int32_offsets() -> None:
    n = 2**31 + 10
    params = huge_float16_normal(n, seed=0)
    params[2**31 + 7] = 1000.0  # the largest entry, past 2^31
    lengths = [2**31 - 1000, 1005, 0, 5]
    seg = sk.Segments.from_lengths(lengths)
    sums = sk.segmented_power_sums(params, seg, 1.0, 2.0, backend="cpu")
    pqi = sk.segmented_pqi(params, seg, 1.0, 2.0, backend="cpu")
    bounds = seg.offsets.tolist()
    for s in range(len(lengths)):
        if lengths[s] == 0:
            assert int(sums.count[s]) == 0 and math.isnan(float(pqi[s]))
            continue
        expected = chunked_reference(params, bounds[s], bounds[s + 1], 1.0, 2.0)
        one = sk.PowerSums(*(t[s : s + 1] for t in sums))
        assert_sums_match(one, expected, 1.0, 2.0, f"segment {s}", params.dtype, atol=1e-9)
        want = reference.pqi_from_power_sums(*expected[1:], 1.0, 2.0)
        assert_close_report(pqi[s : s + 1], want, 0.0, 1e-9, f"pqi segment {s}")


@given(st.data())
def test_segments_object_and_offsets_tensor_agree(backend: str, data: st.DataObject) -> None:
    case = data.draw(cases(max_segments=10))
    pq = data.draw(exponent_pairs())
    a = sk.segmented_power_sums(case.params, case.segments, *pq, case.mask, backend=backend)
    b = sk.segmented_power_sums(case.params, case.offsets.clone(), *pq, case.mask, backend=backend)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
