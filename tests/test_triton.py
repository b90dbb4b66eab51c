"""The Triton backend against the reference on small Hypothesis-drawn inputs: in Triton's
interpreter on CPU tensors (TRITON_INTERPRET=1, set by conftest.py without a GPU), or on the GPU.

The kernels' sizes are shrunk (sap_kernels.triton.config), so that a few hundred entries cover
many tiles, segments that cross tiles, several levels of the combine and every kind of
selection: in one tile, by one program (from its registers up to BLOCK_ON_CHIP entries, in
chunks beyond), and by every tile of a long segment.
"""

from __future__ import annotations

import subprocess

import pytest
import test_power_sums as power_sums_tests
import torch
from conftest import DTYPES, PYTHON, REPO_ROOT, assert_close_report, pqi_atol, subprocess_env
from hypothesis import given, settings
from hypothesis import strategies as st
from mask_oracle import assert_masks_equal, per_segment_counts, sorted_topk
from strategies import (
    VALUE_KINDS,
    Case,
    cases_of_lengths,
    exponent_pairs,
    keep_counts,
)

import sap_kernels as sk
from sap_kernels import reference

pytest.importorskip("triton")
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKEND = "triton"
LARGE_Q_PAIRS = ((1.0, 6.5), (2.0, 7.0), (1.0, 8.0), (0.5, 9.0))
SMALL = {
    "TILE": 32,
    "COMBINE_CHUNK": 4,
    "SEGMENT_BLOCK": 8,
    "BLOCK_SELECT_MAX": 64,
    "BLOCK_ON_CHIP": 16,
    "CANDIDATE_DIVISOR": 4,
}


@pytest.fixture(scope="module", autouse=True)
def small_kernels():
    from sap_kernels.triton import config

    with pytest.MonkeyPatch.context() as patch:
        for name, value in SMALL.items():
            patch.setattr(config, name, value)
        yield


def small_lengths() -> st.SearchStrategy[list[int]]:
    """Lengths around the shrunk sizes: 0 to 3 often, below and past a tile (32), on either side
    of BLOCK_ON_CHIP (16), now and then one past BLOCK_SELECT_MAX (64), so selected by every tile
    it covers."""
    length = st.one_of(st.sampled_from((0, 1, 2, 3, 31, 32, 33)), st.integers(0, 70))
    long = st.lists(st.integers(65, 200), max_size=1)
    return st.tuples(st.lists(length, max_size=10), long, st.lists(length, max_size=4)).map(
        lambda parts: parts[0] + parts[1] + parts[2]
    )


def small_cases(dtypes=DTYPES, kinds=VALUE_KINDS) -> st.SearchStrategy[Case]:
    return cases_of_lengths(
        small_lengths(), dtypes, kinds, ("none", "random", "segments"), (0.2, 0.7, 1.0)
    )


def on_device(case: Case) -> Case:
    mask = None if case.mask is None else case.mask.to(DEVICE)
    return Case(case.params.to(DEVICE), case.segments, mask, case.kind)


@settings(max_examples=25)
@given(case=small_cases(), pq=exponent_pairs())
def test_power_sums_and_pqi_match_reference(case: Case, pq: tuple[float, float]) -> None:
    p, q = pq
    dev = on_device(case)
    sums = sk.segmented_power_sums(dev.params, dev.segments, p, q, dev.mask, backend=BACKEND)
    sums = sk.PowerSums(*(t.cpu() for t in sums))
    expected = reference.power_sums(case.params, case.offsets, p, q, case.mask)
    what = f"{BACKEND} {case!r}"
    power_sums_tests.assert_sums_match(
        sums, expected, p, q, what, case.params.dtype, backend=BACKEND
    )
    got = sk.segmented_pqi(dev.params, dev.segments, p, q, dev.mask, backend=BACKEND).cpu()
    want = reference.pqi(case.params, case.offsets, p, q, case.mask)
    assert_close_report(got, want, 0.0, pqi_atol(case.params.dtype, p, q, BACKEND), what)


@settings(max_examples=10)
@given(case=small_cases(kinds=("normal", "wide", "ties")), pq=st.sampled_from(LARGE_Q_PAIRS))
def test_large_exponents_take_scaled_sums(case: Case, pq: tuple[float, float]) -> None:
    """q beyond what float64 holds of a^q unscaled: the two-read path with a scale."""
    p, q = pq
    dev = on_device(case)
    got = sk.segmented_pqi(dev.params, dev.segments, p, q, dev.mask, backend=BACKEND).cpu()
    want = reference.pqi(case.params, case.offsets, p, q, case.mask)
    atol = pqi_atol(case.params.dtype, p, q, BACKEND)
    assert_close_report(got, want, 0.0, atol, f"{BACKEND} {case!r}")


@settings(max_examples=25)
@given(data=st.data(), case=small_cases())
def test_topk_mask_matches_reference(data: st.DataObject, case: Case) -> None:
    k = data.draw(keep_counts(case))
    dev = on_device(case)
    keep = k if isinstance(k, int) else k.to(DEVICE)
    got = sk.segmented_topk_mask(dev.params, dev.segments, keep, dev.mask, backend=BACKEND)
    want = sorted_topk(case.params, case.offsets, k, case.mask)
    assert_masks_equal(got, want, case.params, case.offsets, f"{BACKEND} k={k} {case!r}")


PAIRS = ((0.5, 1.0), (1.0, 2.0), (0.7, 1.3))
hyper_parameters = st.tuples(
    st.sampled_from((0.0, 0.1)), st.sampled_from((0.5, 1.0, 2.0)), st.sampled_from((0.5, 0.9, 1.0))
)


@settings(max_examples=10)
@given(case=small_cases(), pq=st.sampled_from(PAIRS), hyper=hyper_parameters)
def test_sap_step_is_the_composition(case: Case, pq: tuple, hyper: tuple) -> None:
    """Bit for bit the separate ops; its mask prunes exactly n_prune entries, the smallest; its
    counts agree with the reference's wherever the PQI tolerance cannot move them."""
    dev = on_device(case)
    step = sk.sap_step(dev.params, dev.segments, *pq, dev.mask, *hyper, backend=BACKEND)
    pqi = sk.segmented_pqi(dev.params, dev.segments, *pq, dev.mask, backend=BACKEND)
    count = sk.segmented_power_sums(dev.params, dev.segments, *pq, dev.mask, backend=BACKEND).count
    n_prune = sk.sap_prune_counts(pqi, count, *pq, *hyper, backend=BACKEND)
    keep = count - n_prune
    mask = sk.segmented_topk_mask(dev.params, dev.segments, keep, dev.mask, backend=BACKEND)
    assert torch.equal(step.pqi.isnan(), pqi.isnan())
    assert torch.equal(step.pqi.nan_to_num(), pqi.nan_to_num()), "PQI differs from segmented_pqi"
    assert torch.equal(step.count, count) and torch.equal(step.n_prune, n_prune)
    assert torch.equal(step.mask, mask), "mask differs from segmented_topk_mask"
    oracle = sorted_topk(case.params, case.offsets, keep.cpu(), case.mask)
    assert_masks_equal(step.mask.cpu(), oracle, case.params, case.offsets, f"step {case!r}")
    ref = reference.sap_step(case.params, case.offsets, *pq, case.mask, *hyper)
    atol = pqi_atol(case.params.dtype, *pq, BACKEND) + 1e-9
    low = reference.prune_counts((ref[1] - atol).clamp(0, 1), ref[2], *pq, *hyper)
    high = reference.prune_counts((ref[1] + atol).clamp(0, 1), ref[2], *pq, *hyper)
    got = step.n_prune.cpu()
    assert bool(((got >= low) & (got <= high)).all()), f"n_prune {got} vs {ref[3]}"


@pytest.mark.parametrize("pq", [(0.5, 1.0), (1.0, 2.0), (0.7, 1.3), (2.0, 7.0)], ids=str)
def test_counts_match_reference(pq: tuple[float, float]) -> None:
    gen = torch.Generator().manual_seed(5)
    pqi = torch.rand(3000, generator=gen, dtype=torch.float64) * 0.9
    pqi[::17] = float("nan")
    count = torch.randint(0, 5000, (3000,), generator=gen)
    for eta_r, gamma, beta in ((0.0, 1.0, 0.9), (0.2, 1.5, 1.0), (0.0, 0.5, 0.3), (0.0, 0.0, 0.0)):
        dev_pqi, dev_count = pqi.to(DEVICE), count.to(DEVICE)
        r = sk.sap_retain_bound(dev_pqi, dev_count, *pq, eta_r, backend=BACKEND).cpu()
        assert_close_report(r, reference.retain_bound(pqi, count, *pq, eta_r), 1e-12, 0.0, "r")
        got = sk.sap_prune_counts(dev_pqi, dev_count, *pq, eta_r, gamma, beta, backend=BACKEND)
        want = reference.prune_counts(pqi, count, *pq, eta_r, gamma, beta)
        # floor may differ by one where the value lies within rounding of an integer
        exact = reference.retain_bound(pqi, count, *pq, eta_r)
        wanted = torch.minimum(gamma * (count - exact), beta * count).clamp(min=0)
        near = (wanted - wanted.round()).abs() <= 1e-9 * wanted.abs().clamp(min=1)
        off = (got.cpu() - want).abs()
        assert bool((off[~near] == 0).all()) and bool((off <= 1).all())


LAYOUTS = {
    "one segment over many tiles": [300],
    "tile-sized": [32, 32, 64, 32],
    "crossing rows": [33] * 9,
    "tiny with empties": [0, 1, 2, 0, 0, 3, 1, 0, 2] * 12,
    "one past a tile": [0, 31, 1, 33, 0, 65, 0],
    "all empty": [0, 0, 0],
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts(layout: str, dtype: torch.dtype) -> None:
    """Fixed layouts that the drawn ones may miss, with and without a mask (by dtype)."""
    lengths = LAYOUTS[layout]
    seg = sk.Segments.from_lengths(lengths)
    gen = torch.Generator().manual_seed(11)
    params = torch.randn(seg.numel, generator=gen).to(dtype)
    m = None if dtype in (torch.float32, torch.float16) else torch.rand(seg.numel) < 0.6
    dev_mask = None if m is None else m.to(DEVICE)
    p, q = (0.5, 1.0) if dtype.itemsize == 2 else (0.7, 1.3)
    got = sk.segmented_pqi(params.to(DEVICE), seg, p, q, dev_mask, backend=BACKEND)
    want = reference.pqi(params, seg.offsets, p, q, m)
    assert_close_report(got.cpu(), want, 0.0, pqi_atol(dtype, p, q, BACKEND), f"{layout} {dtype}")
    live = per_segment_counts(m, seg.offsets)
    for k in (1, live // 2):
        got = sk.segmented_topk_mask(params.to(DEVICE), seg, k, dev_mask, backend=BACKEND)
        want = sorted_topk(params, seg.offsets, k, m)
        assert_masks_equal(got.cpu(), want, params, seg.offsets, f"{layout} k={k}")


LONG_VALUES = {
    "spread over binades": lambda n, gen: torch.exp(8 * torch.randn(n, generator=gen)),
    "normal": lambda n, gen: torch.randn(n, generator=gen),
    "three values": lambda n, gen: torch.randint(1, 4, (n,), generator=gen).double(),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("values", LONG_VALUES)
def test_long_segments_by_candidates(values: str, dtype: torch.dtype) -> None:
    """Segments selected by every tile they cover (700, 300 entries) or by one program in chunks
    (40, 60), their rounds over the candidates from the second round on (values spread over many
    binades), from the third (normal), or never (three values: the matching keys never fit):
    masks equal the oracle for k from 1 to d - 1."""
    seg = sk.Segments.from_lengths([5, 700, 40, 300, 60])
    gen = torch.Generator().manual_seed(2)
    params = LONG_VALUES[values](seg.numel, gen).to(dtype)
    for m in (None, torch.rand(seg.numel, generator=gen) < 0.7):
        live = per_segment_counts(m, seg.offsets)
        dev_mask = None if m is None else m.to(DEVICE)
        for k in (torch.ones_like(live), live // 3, live - 1):
            got = sk.segmented_topk_mask(params.to(DEVICE), seg, k.to(DEVICE), dev_mask,
                                         backend=BACKEND)  # fmt: skip
            want = sorted_topk(params, seg.offsets, k, m)
            assert_masks_equal(got.cpu(), want, params, seg.offsets, f"{values} k={k}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_scale_invariance(dtype: torch.dtype) -> None:
    """PQI(alpha w) = PQI(w), for alpha over the dtype's range."""
    gen = torch.Generator().manual_seed(3)
    lengths = [40, 3, 100, 1, 0, 17]
    seg = sk.Segments.from_lengths(lengths)
    w = torch.rand(seg.numel, generator=gen, dtype=torch.float64) + 0.5
    top = {torch.float16: 8, torch.bfloat16: 100, torch.float32: 100, torch.float64: 900}[dtype]
    for pq in ((0.5, 1.0), (1.0, 2.0), (0.7, 1.3), (1.2, 3.7)):
        base = sk.segmented_pqi(w.to(dtype).to(DEVICE), seg, *pq, backend=BACKEND).cpu()
        for exponent in (-top, top):
            scaled = (w * 2.0**exponent).to(dtype).to(DEVICE)
            got = sk.segmented_pqi(scaled, seg, *pq, backend=BACKEND).cpu()
            atol = 2 * pqi_atol(dtype, *pq, BACKEND)
            assert_close_report(got, base, 0.0, atol, f"{dtype} {pq} 2^{exponent}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("pq", [(0.5, 1.0), (0.7, 1.3), (2.0, 7.0)], ids=str)
def test_nonfinite_entries(pq: tuple[float, float], dtype: torch.dtype) -> None:
    """NaN / inf where live: an error naming the segments, or NaN there under "propagate";
    where dead, no effect (fast, generic and scaled terms alike)."""
    seg = sk.Segments.from_lengths([40, 40, 40])
    params = torch.ones(120, dtype=dtype)
    params[45] = float("nan")
    params[100] = float("inf")
    mask = torch.ones(120, dtype=torch.bool)
    dev = params.to(DEVICE)
    for op in (sk.segmented_pqi, sk.segmented_power_sums):
        with pytest.raises(ValueError, match=r"2 NaN or inf live entries in segment\(s\) \[1, 2\]"):
            op(dev, seg, *pq, backend=BACKEND)
    with pytest.raises(ValueError, match=r"^sap_step: .*segment\(s\) \[1, 2\]"):
        sk.sap_step(dev, seg, *pq, backend=BACKEND)
    got = sk.segmented_pqi(dev, seg, *pq, nan_policy="propagate", backend=BACKEND).cpu()
    assert abs(float(got[0])) < 1e-12 and bool(got[1:].isnan().all()), got
    sums = sk.segmented_power_sums(dev, seg, *pq, nan_policy="propagate", backend=BACKEND)
    assert bool(sums.sum_p[1:].isnan().all()) and bool(sums.sum_q[1:].isnan().all())
    mask[[45, 100]] = False
    got = sk.segmented_pqi(dev, seg, *pq, mask.to(DEVICE), backend=BACKEND).cpu()
    assert bool((got.abs() < 1e-12).all()), got


def test_kernels_compile_for_hopper() -> None:
    """Every kernel compiles for sm_90 (the interpreter checks what they compute, not that the
    compiler takes them): tests/triton_compile.py, without the interpreter."""
    env = subprocess_env()
    env.pop("TRITON_INTERPRET", None)
    script = str(REPO_ROOT / "tests" / "triton_compile.py")
    run = subprocess.run(
        [PYTHON, script, "--arch", "90", "--quick"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "kernels compiled for sm_90" in run.stdout
