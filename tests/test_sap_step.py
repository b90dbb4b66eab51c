"""sap_step: equal bit for bit to the composition of segmented_pqi, sap_prune_counts and
segmented_topk_mask on the same backend, the properties of the mask it returns, agreement across
backends, and apply_mask."""

from __future__ import annotations

import importlib

import pytest
import torch
from conftest import BACKENDS_HERE, DTYPES, assert_close_report, pqi_atol
from hypothesis import given, settings
from hypothesis import strategies as st
from mask_oracle import assert_masks_equal, per_segment_counts, sorted_topk
from strategies import FAST_PAIRS, Case, cases

import sap_kernels as sk
from sap_kernels import reference

PAIRS = FAST_PAIRS + ((0.7, 1.3), (1.2, 3.7))
NAN, INF = float("nan"), float("inf")

etas = st.one_of(st.sampled_from((0.0, 0.0, 0.5)), st.floats(0.0, 3.0))
gammas = st.one_of(st.sampled_from((1.0, 0.5, 2.0)), st.floats(0.0, 5.0))
betas = st.one_of(st.sampled_from((0.9, 0.5, 1.0, 0.0)), st.floats(0.0, 1.0))
hyper_parameters = st.tuples(etas, gammas, betas)  # (eta_r, gamma, beta)
Hyper = tuple[float, float, float]


def dtype_id(dtype: torch.dtype) -> str:
    """A short test id ("float32"), so that -k torch selects the torch backend alone."""
    return str(dtype).split(".")[-1]


def step_of(case: Case, pq: tuple[float, float], hyper: Hyper, backend: str) -> sk.SAPStep:
    """sap_step of case with exponents pq and (eta_r, gamma, beta) = hyper."""
    return sk.sap_step(case.params, case.segments, *pq, case.mask, *hyper, backend=backend)


def assert_pqi_identical(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Equal bit for bit where a number, NaN at the same positions."""
    assert actual.dtype == torch.float64 and actual.shape == expected.shape, what
    assert torch.equal(actual.isnan(), expected.isnan()), f"{what}: NaN positions differ"
    assert torch.equal(actual.nan_to_num(), expected.nan_to_num()), (
        f"{what}: PQI differs at {(actual != expected).nonzero().view(-1).tolist()[:10]}"
    )


@settings(max_examples=40)
@given(case=cases(), pq=st.sampled_from(PAIRS), hyper=hyper_parameters)
def test_equals_composition(
    backend: str, case: Case, pq: tuple[float, float], hyper: Hyper
) -> None:
    """mask, count and n_prune equal the three-op composition bit for bit; pqi is identical."""
    step = step_of(case, pq, hyper, backend)
    assert isinstance(step, sk.SAPStep)
    params, seg, mask = case.params, case.segments, case.mask
    pqi = sk.segmented_pqi(params, seg, *pq, mask, backend=backend)
    count = sk.segmented_power_sums(params, seg, *pq, mask, backend=backend).count
    n_prune = sk.sap_prune_counts(pqi, count, *pq, *hyper, backend=backend)
    new_mask = sk.segmented_topk_mask(params, seg, count - n_prune, mask, backend=backend)
    assert_pqi_identical(step.pqi, pqi, f"{backend} {case}")
    assert step.count.dtype == torch.int64 and torch.equal(step.count, count)
    assert step.n_prune.dtype == torch.int64 and torch.equal(step.n_prune, n_prune), (
        f"{backend}: n_prune {step.n_prune.tolist()[:20]} != {n_prune.tolist()[:20]}"
    )
    assert_masks_equal(step.mask, new_mask, params, case.offsets, f"{backend} {case}")


@settings(max_examples=40)
@given(case=cases(), pq=st.sampled_from(PAIRS), hyper=hyper_parameters)
def test_mask_prunes_smallest_live_entries(
    backend: str, case: Case, pq: tuple[float, float], hyper: Hyper
) -> None:
    """The new mask is a subset of the live mask, keeps count - n_prune entries per segment,
    and those are the largest |w| (ties: the lower index); count is the live count; n_prune is
    0 where the PQI is NaN and at most floor(beta d)."""
    step = step_of(case, pq, hyper, backend)
    live_counts = per_segment_counts(case.mask, case.offsets)
    assert torch.equal(step.count, live_counts), "count is not the number of live entries"
    if case.mask is not None:
        revived = (step.mask & ~case.mask).nonzero().view(-1)
        assert revived.numel() == 0, f"{backend}: dead entries kept at {revived.tolist()[:10]}"
    kept = per_segment_counts(step.mask, case.offsets)
    assert torch.equal(kept, step.count - step.n_prune), (
        f"{backend}: kept {kept.tolist()[:20]}, count - n_prune = "
        f"{(step.count - step.n_prune).tolist()[:20]}"
    )
    undefined = step.pqi.isnan()
    assert torch.equal(undefined | (step.count == 0), undefined), "d = 0 must give a NaN PQI"
    assert not bool(step.n_prune[undefined].any()), f"{backend}: pruned where the PQI is NaN"
    beta = hyper[2]
    assert bool((step.n_prune >= 0).all())
    assert bool((step.n_prune <= (beta * step.count.double()).floor()).all()), "beta cap"
    want = sorted_topk(case.params, case.offsets, step.count - step.n_prune, case.mask)
    assert_masks_equal(step.mask, want, case.params, case.offsets, f"{backend} vs sorted oracle")


@settings(max_examples=30)
@given(
    case=cases(kinds=("sparse", "normal", "ties", "wide")),
    pq=st.sampled_from(PAIRS),
    gamma=st.floats(1.0, 10.0),
)
def test_default_beta_keeps_a_tenth(
    backend: str, case: Case, pq: tuple[float, float], gamma: float
) -> None:
    """With the default beta = 0.9, at least 10% of each segment's live entries survive, however
    sparse the segment and however large gamma."""
    step = sk.sap_step(case.params, case.segments, *pq, case.mask, gamma=gamma, backend=backend)
    kept = per_segment_counts(step.mask, case.offsets)
    assert bool((step.n_prune <= (0.9 * step.count.double()).floor()).all())
    assert bool((10 * kept >= step.count).all()), (
        f"{backend}: kept {kept.tolist()[:20]} of {step.count.tolist()[:20]}"
    )


@pytest.mark.parametrize("pq", PAIRS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_undefined_pqi_prunes_nothing(
    backend: str, dtype: torch.dtype, pq: tuple[float, float]
) -> None:
    """Empty, all-zero and all-dead segments have a NaN PQI and lose nothing; a single entry has
    PQI 0 and keeps itself; a spread-out segment next to them loses some entries."""
    # segments: empty | zeros | dead | single | 0.001, 0.01, 0.1, 1, 10, 100 (-> PQI > 0)
    params = torch.tensor(
        [0.0, -0.0, 0.0, 4.0, 5.0, 6.0, -3.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0], dtype=dtype
    )
    mask = torch.ones(13, dtype=torch.bool)
    mask[3:6] = False
    seg = sk.Segments.from_lengths([0, 3, 3, 1, 6])
    step = sk.sap_step(params, seg, *pq, mask, backend=backend)
    assert step.pqi[:3].isnan().all() and step.pqi[3] == 0 and step.pqi[4] > 0, step.pqi
    assert step.count.tolist() == [0, 3, 0, 1, 6]
    assert step.n_prune[:4].tolist() == [0, 0, 0, 0]
    assert 0 < int(step.n_prune[4]) <= 5
    assert step.mask[:7].tolist() == [True, True, True, False, False, False, True]
    assert step.mask[7:].tolist() == sorted(step.mask[7:].tolist())  # smallest pruned first


def test_torch_backend_equals_reference_sap_step() -> None:
    """Backend torch is reference.sap_step, output for output."""
    gen = torch.Generator().manual_seed(20)
    params = torch.randn(4000, generator=gen) * (torch.rand(4000, generator=gen) < 0.5)
    mask = torch.rand(4000, generator=gen) < 0.8
    seg = sk.Segments.from_lengths([0, 1, 999, 3000])
    step = sk.sap_step(params, seg, 0.5, 1.0, mask, 0.1, 1.5, 0.8, backend="torch")
    want = reference.sap_step(params, seg.offsets, 0.5, 1.0, mask, 0.1, 1.5, 0.8)
    assert torch.equal(step.mask, want[0]) and torch.equal(step.count, want[2])
    assert_pqi_identical(step.pqi, want[1], "torch vs reference")
    assert torch.equal(step.n_prune, want[3])
    assert int(step.n_prune.sum()) > 0


# ---- across backends ----


@pytest.mark.skipif("cpu" not in BACKENDS_HERE, reason="needs the compiled extension")
@settings(max_examples=40)
@given(case=cases(), pq=st.sampled_from(PAIRS), hyper=hyper_parameters)
def test_cpu_agrees_with_torch(case: Case, pq: tuple[float, float], hyper: Hyper) -> None:
    """PQIs within tolerance; n_prune within the counts that the tolerance allows (n_prune grows
    with the PQI); where n_prune agrees the masks agree, elsewhere one nests in the other."""
    cpu, ref = step_of(case, pq, hyper, "cpu"), step_of(case, pq, hyper, "torch")
    atol = pqi_atol(case.params.dtype, *pq)
    assert_close_report(cpu.pqi, ref.pqi, 0.0, atol, f"cpu vs torch PQI {case}")
    assert torch.equal(cpu.count, ref.count)
    slack = atol + 1e-9
    low = reference.prune_counts((ref.pqi - slack).clamp(0, 1), ref.count, *pq, *hyper)
    high = reference.prune_counts((ref.pqi + slack).clamp(0, 1), ref.count, *pq, *hyper)
    outside = (cpu.n_prune < low) | (cpu.n_prune > high)
    assert not bool(outside.any()), (
        f"n_prune at {outside.nonzero().view(-1).tolist()[:10]}: "
        f"cpu {cpu.n_prune[outside].tolist()[:10]}, torch {ref.n_prune[outside].tolist()[:10]}, "
        f"allowed from {low[outside].tolist()[:10]} to {high[outside].tolist()[:10]}"
    )
    ids = reference.segment_ids(case.offsets)
    same = (cpu.n_prune == ref.n_prune)[ids]
    assert_masks_equal(cpu.mask & same, ref.mask & same, case.params, case.offsets, "cpu vs torch")
    fewer_kept = (cpu.n_prune > ref.n_prune)[ids]
    assert not bool((cpu.mask & ~ref.mask & fewer_kept).any()), "masks not nested"
    assert not bool((ref.mask & ~cpu.mask & ~fewer_kept).any()), "masks not nested"


# ---- apply_mask ----


@pytest.fixture
def apply_mask_path(backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """apply_mask runs the compiled loop where the extension is built; for backend "torch" the
    extension is hidden from it, so that its PyTorch fallback runs."""
    if backend == "torch":
        module = importlib.import_module("sap_kernels.topk_mask")
        monkeypatch.setattr(module, "native_available", lambda: False)
    return backend


SHAPES = [(0,), (1,), (7,), (1003,), (4, 3, 5), (2, 65536 + 9)]


@settings(max_examples=20)
@given(case=cases(), pq=st.sampled_from(PAIRS), hyper=hyper_parameters)
def test_out_receives_the_same_step(
    backend: str, case: Case, pq: tuple[float, float], hyper: Hyper
) -> None:
    """out= gets the mask a fresh call returns, whatever out held before; the rest is equal."""
    fresh = step_of(case, pq, hyper, backend)
    out = torch.rand(case.params.numel()) < 0.5
    into = sk.sap_step(case.params, case.segments, *pq, case.mask, *hyper, out=out, backend=backend)
    assert into.mask is out
    assert torch.equal(out, fresh.mask)
    assert_pqi_identical(into.pqi, fresh.pqi, f"{backend} out= pqi")
    assert torch.equal(into.count, fresh.count) and torch.equal(into.n_prune, fresh.n_prune)


@pytest.mark.parametrize(
    "out, error, fragment",
    [
        (torch.zeros(9, dtype=torch.bool), ValueError, "params.numel() = 10"),
        (torch.zeros(10), ValueError, "torch.float32"),
        (torch.zeros(20, dtype=torch.bool)[::2], ValueError, "contiguous"),
        ([False] * 10, TypeError, "list"),
    ],
    ids=["short", "float", "strided", "list"],
)
def test_bad_out_is_clear_error(backend: str, out, error, fragment: str) -> None:
    params = torch.arange(10, dtype=torch.float32)
    with pytest.raises(error, match="^sap_step: out must") as raised:
        sk.sap_step(params, sk.Segments([0, 4, 10]), 0.5, 1.0, out=out, backend=backend)
    assert fragment in str(raised.value)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_apply_mask_zeroes_pruned_entries(
    apply_mask_path: str, dtype: torch.dtype, shape: tuple[int, ...]
) -> None:
    """Pruned entries (NaN and inf among them) become 0, kept ones keep their bits (-0.0 and NaN
    included), in place, and params itself is returned; a flat mask serves any shape."""
    gen = torch.Generator().manual_seed(21)
    params = torch.randn(shape, generator=gen).to(dtype)
    mask = torch.rand(shape, generator=gen) < 0.5
    flat = params.view(-1)
    if flat.numel() >= 7:
        flat[:6] = torch.tensor([NAN, INF, -INF, -0.0, NAN, -0.0], dtype=dtype)
        mask.view(-1)[:6] = torch.tensor([False, False, False, True, True, False])
    before = params.clone()
    for given_mask in (mask, mask.view(-1)):
        params.copy_(before)
        out = sk.apply_mask(params, given_mask)
        assert out is params
        want = torch.where(mask, before, torch.zeros((), dtype=dtype))
        kept_bits_equal = params.view(torch.uint8) == want.view(torch.uint8)
        assert bool(kept_bits_equal.all()), f"{apply_mask_path} {dtype} {shape}: wrong entries"


def test_apply_mask_after_sap_step(apply_mask_path: str) -> None:
    """Zeroing what a step pruned leaves exactly count - n_prune non-zero entries per segment
    (no entry here is zero to start with)."""
    gen = torch.Generator().manual_seed(22)
    params = torch.randn(5000, generator=gen).abs() + 0.01
    seg = sk.Segments.from_lengths([1000, 0, 4000])
    step = sk.sap_step(params, seg, 1.0, 2.0, gamma=2.0, backend=apply_mask_path)
    sk.apply_mask(params, step.mask)
    nonzero = per_segment_counts(params != 0, seg.offsets)
    assert torch.equal(nonzero, step.count - step.n_prune) and int(step.n_prune.sum()) > 0
