"""sap_retain_bound and sap_prune_counts: every backend against the reference, and examples
computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_close_report
from hypothesis import given
from hypothesis import strategies as st
from strategies import EXPONENT_PAIRS

import sap_kernels as sk
from sap_kernels import reference

NAN = float("nan")


@st.composite
def exponents(draw: st.DrawFn) -> tuple[float, float]:
    """The usual pairs, or any 0.1 <= p < q <= 10 with q - p >= 0.05."""
    if draw(st.booleans()):
        return draw(st.sampled_from(EXPONENT_PAIRS))
    p = draw(st.floats(0.1, 5.0))
    return p, p + draw(st.floats(0.05, 5.0))


@st.composite
def sap_inputs(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    """(pqi, count) of a few segments: pqi in [0, 1) or NaN, count in [0, 1e9]."""
    size = draw(st.integers(0, 40))
    pqi = st.one_of(st.floats(0.0, 1.0, exclude_max=True), st.just(NAN))
    count = st.one_of(st.integers(0, 10), st.integers(0, 10**9))
    pqis = draw(st.lists(pqi, min_size=size, max_size=size))
    counts = draw(st.lists(count, min_size=size, max_size=size))
    return torch.tensor(pqis, dtype=torch.float64), torch.tensor(counts, dtype=torch.int64)


etas = st.one_of(st.just(0.0), st.floats(0.0, 10.0))
gammas = st.floats(0.0, 3.0)
betas = st.floats(0.0, 1.0)


@given(inputs=sap_inputs(), pq=exponents(), eta_r=etas)
def test_retain_bound_matches_reference(backend: str, inputs, pq, eta_r: float) -> None:
    pqi, count = inputs
    got = sk.sap_retain_bound(pqi, count, *pq, eta_r, backend=backend)
    want = reference.retain_bound(pqi, count, *pq, eta_r)
    assert got.dtype == torch.float64
    assert_close_report(got, want, 1e-12, 0.0, f"{backend} retain bound p, q = {pq}")


@given(inputs=sap_inputs(), pq=exponents(), eta_r=etas, gamma=gammas, beta=betas)
def test_prune_counts_match_reference(backend, inputs, pq, eta_r, gamma, beta) -> None:
    pqi, count = inputs
    got = sk.sap_prune_counts(pqi, count, *pq, eta_r, gamma, beta, backend=backend)
    want = reference.prune_counts(pqi, count, *pq, eta_r, gamma, beta)
    assert got.dtype == torch.int64
    # floor() jumps at integers: where the reference's pre-floor value min(gamma (d - r), beta d)
    # lies within 1e-9 relative of an integer, one ulp of difference in r (pow() in C++ and in
    # torch need not round alike) may land on either side, so a difference of 1 is allowed there.
    d = count.double()
    r = reference.retain_bound(pqi, count, *pq, eta_r)
    before_floor = torch.minimum(gamma * (d - r), beta * d)
    near_integer = (before_floor - before_floor.round()).abs() <= 1e-9 * before_floor.abs().clamp(
        min=1.0
    )
    allowed = torch.where(near_integer & ~pqi.isnan(), 1, 0)
    bad = (got - want).abs() > allowed
    assert not bool(bad.any()), (
        f"{backend}: prune counts differ at {bad.nonzero().view(-1).tolist()[:10]}: "
        f"got {got[bad].tolist()[:10]}, expected {want[bad].tolist()[:10]}"
    )
    assert bool((got >= 0).all())
    assert bool((got <= (beta * d).floor().long()).all()), "beta caps the prune ratio"


# ---- examples computed by hand (p = 1, q = 2: r = d (1 + eta)^-2 (1 - I)^2) ----

RETAIN_EXAMPLES = [
    # pqi, d, p, q, eta_r, r
    (0.0, 100, 1.0, 2.0, 0.0, 100.0),
    (0.0, 100, 1.0, 2.0, 1.0, 25.0),
    (0.5, 100, 1.0, 2.0, 1.0, 6.25),
    (0.5, 10, 0.5, 1.0, 0.0, 5.0),  # q p / (q - p) = 1
    (0.75, 64, 1.0, 2.0, 3.0, 0.25),
    (NAN, 10, 1.0, 2.0, 0.0, NAN),
    (0.3, 0, 1.0, 2.0, 0.0, 0.0),
]


@pytest.mark.parametrize(("pqi", "d", "p", "q", "eta_r", "r"), RETAIN_EXAMPLES)
def test_retain_bound_examples(backend: str, pqi, d, p, q, eta_r, r) -> None:
    pqi_t, count = torch.tensor([pqi], dtype=torch.float64), torch.tensor([d])
    got = sk.sap_retain_bound(pqi_t, count, p, q, eta_r, backend=backend)
    if math.isnan(r):
        assert math.isnan(float(got[0]))
    else:
        assert float(got[0]) == pytest.approx(r, rel=1e-15, abs=0.0)


PRUNE_EXAMPLES = [
    # pqi, d, p, q, eta_r, gamma, beta, c
    (0.0, 100, 1.0, 2.0, 0.0, 1.0, 0.9, 0),  # dense: r = d, nothing to prune
    (0.0, 100, 1.0, 2.0, 1.0, 1.0, 0.9, 75),  # r = 25
    (0.5, 10, 0.5, 1.0, 0.0, 1.0, 0.9, 5),  # r = 5
    (0.9, 1000, 1.0, 2.0, 0.0, 1.0, 0.5, 500),  # r = 10: beta caps 990 at 500
    (0.9, 1000, 1.0, 2.0, 0.0, 1.0, 1.0, 990),
    (0.5, 100, 1.0, 2.0, 1.0, 2.0, 1.0, 100),  # gamma (d - r) = 187.5, capped at d
    (0.5, 100, 1.0, 2.0, 1.0, 0.5, 1.0, 46),  # floor(0.5 * 93.75)
    (0.5, 100, 1.0, 2.0, 1.0, 0.0, 0.9, 0),  # gamma = 0
    (0.5, 100, 1.0, 2.0, 1.0, 1.0, 0.0, 0),  # beta = 0
    (NAN, 100, 1.0, 2.0, 0.0, 1.0, 0.9, 0),  # undefined PQI
    (0.5, 0, 1.0, 2.0, 0.0, 1.0, 0.9, 0),  # no live entry
    (0.0, 1, 1.0, 2.0, 0.0, 1.0, 0.9, 0),  # d = 1
]


@pytest.mark.parametrize(("pqi", "d", "p", "q", "eta_r", "gamma", "beta", "c"), PRUNE_EXAMPLES)
def test_prune_count_examples(backend: str, pqi, d, p, q, eta_r, gamma, beta, c) -> None:
    pqi_t, count = torch.tensor([pqi], dtype=torch.float64), torch.tensor([d])
    got = sk.sap_prune_counts(pqi_t, count, p, q, eta_r, gamma, beta, backend=backend)
    assert got.tolist() == [c]


def test_defaults_are_eta0_gamma1_beta09(backend: str) -> None:
    pqi = torch.tensor([0.2, 0.6, 0.95, 0.99])
    count = torch.tensor([50, 1000, 10**6, 7])
    explicit = sk.sap_prune_counts(pqi, count, 0.5, 1.0, 0.0, 1.0, 0.9, backend=backend)
    assert torch.equal(sk.sap_prune_counts(pqi, count, 0.5, 1.0, backend=backend), explicit)
    assert int(explicit[2]) == 900_000, "r = 0.05 d is capped at beta d"


@pytest.mark.parametrize("count_dtype", [torch.int32, torch.int16, torch.uint8], ids=str)
@pytest.mark.parametrize("pqi_dtype", [torch.float32, torch.float16], ids=str)
def test_input_dtypes_are_widened(backend: str, pqi_dtype, count_dtype) -> None:
    pqi = torch.tensor([0.0, 0.25, 0.5, 0.75], dtype=pqi_dtype)
    count = torch.tensor([3, 10, 100, 200], dtype=count_dtype)
    got = sk.sap_prune_counts(pqi, count, 1.0, 2.0, 0.0, 1.0, 1.0, backend=backend)
    want = reference.prune_counts(pqi.double(), count.long(), 1.0, 2.0, 0.0, 1.0, 1.0)
    assert torch.equal(got, want)
    bound = sk.sap_retain_bound(pqi, count, 1.0, 2.0, backend=backend)
    assert bound.dtype == torch.float64
    assert_close_report(bound, torch.tensor([3.0, 5.625, 25.0, 12.5]), 1e-15, 0.0, "bound")


def test_empty(backend: str) -> None:
    empty_f, empty_i = torch.zeros(0), torch.zeros(0, dtype=torch.int64)
    assert sk.sap_retain_bound(empty_f, empty_i, 1.0, 2.0, backend=backend).shape == (0,)
    assert sk.sap_prune_counts(empty_f, empty_i, 1.0, 2.0, backend=backend).shape == (0,)
