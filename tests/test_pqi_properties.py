"""The PQ Index meets Hurley & Rickard's six sparsity properties and the paper's Theorems 1
and 2 (Diao et al., ICLR 2023, section 3.1), on every backend.

Vectors are float64 and well conditioned (magnitudes in [0.1, 10], or spread over 12 decades
for the theorems), and each strict inequality is set up so that the true difference is far
above float64 rounding: a gap of at least 0.5 between the two entries of a Robin Hood transfer,
a spread of at least 1 under the rising tide, an entry ten times the rest for Bill Gates.
"""

from __future__ import annotations

import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import EXPONENT_PAIRS, exponent_pairs, positive_vectors

import sap_kernels as sk

EXACT = 1e-12  # tolerance of the equalities (D2, D4, the bounds of Theorem 1)


def pqi1(vector: torch.Tensor, p: float, q: float, backend: str) -> float:
    """The PQ Index of one vector (one segment)."""
    seg = sk.Segments([0, vector.numel()])
    return float(sk.segmented_pqi(vector, seg, p, q, backend=backend)[0])


@st.composite
def signed(draw: st.DrawFn, vectors: st.SearchStrategy[torch.Tensor]) -> torch.Tensor:
    """A vector with random signs (the PQI depends on magnitudes only)."""
    vector = draw(vectors)
    signs = draw(
        st.lists(st.sampled_from((-1.0, 1.0)), min_size=vector.numel(), max_size=vector.numel())
    )
    return vector * torch.tensor(signs, dtype=torch.float64)


@st.composite
def spread_vectors(draw: st.DrawFn, max_size: int = 30) -> torch.Tensor:
    """Magnitudes 10^u, u in [-6, 6], some exact zeros, at least one non-zero entry."""
    exponents = draw(st.lists(st.floats(-6, 6), min_size=1, max_size=max_size))
    zeros = draw(st.lists(st.booleans(), min_size=len(exponents), max_size=len(exponents)))
    values = [0.0 if zero and i else 10.0**u for i, (u, zero) in enumerate(zip(exponents, zeros))]
    return torch.tensor(values, dtype=torch.float64)


# ---- D1-D4, P1, P2 ----


# D1 holds when p <= 1 (a transfer then never lowers ||w||_p and lowers ||w||_q, q > 1), but
# not for every p < q as the paper states: for p > 1 a transfer between two small entries
# beside a large one can raise the PQI (test_d1_fails_for_p_above_1).
ROBIN_HOOD_PAIRS = tuple(pair for pair in EXPONENT_PAIRS if pair[0] <= 1.0)


@given(v=positive_vectors(), pq=st.sampled_from(ROBIN_HOOD_PAIRS), data=st.data())
def test_d1_robin_hood(backend: str, v: torch.Tensor, pq, data: st.DataObject) -> None:
    """Moving alpha in (0, (w_i - w_j)/2) from a richer w_i to a poorer w_j lowers the PQI."""
    i, j = data.draw(st.permutations(range(v.numel())))[:2]
    v[i] = v[j] + data.draw(st.floats(0.5, 10.0))
    alpha = data.draw(st.floats(0.05, 0.95)) * float(v[i] - v[j]) / 2
    moved = v.clone()
    moved[i] -= alpha
    moved[j] += alpha
    assert pqi1(moved, *pq, backend) < pqi1(v, *pq, backend)


def test_d1_fails_for_p_above_1(backend: str) -> None:
    """The counterexample, with both PQIs computed to 50 digits (mpmath): moving 0.125 from 1.5
    to 1 beside a 3 raises I_{2,3}. The backends must agree with the exact values."""
    before = pqi1(torch.tensor([1.5, 1.0, 3.0], dtype=torch.float64), 2.0, 3.0, backend)
    after = pqi1(torch.tensor([1.375, 1.125, 3.0], dtype=torch.float64), 2.0, 3.0, backend)
    assert abs(before - 0.0759688958742812037519) <= EXACT
    assert abs(after - 0.0760475318926487770725) <= EXACT
    assert after > before


@given(v=signed(positive_vectors()), pq=exponent_pairs(), log_alpha=st.floats(-100, 100))
def test_d2_scaling(backend: str, v: torch.Tensor, pq, log_alpha: float) -> None:
    alpha = 10.0**log_alpha
    assert abs(pqi1(alpha * v, *pq, backend) - pqi1(v, *pq, backend)) <= EXACT


@given(v=positive_vectors(), pq=exponent_pairs(), alpha=st.floats(0.01, 100.0))
def test_d3_rising_tide(backend: str, v: torch.Tensor, pq, alpha: float) -> None:
    """Adding alpha > 0 to every entry of a vector whose entries differ lowers the PQI."""
    assume(float(v.max() - v.min()) >= 1.0)
    assert pqi1(v + alpha, *pq, backend) < pqi1(v, *pq, backend)


@given(v=signed(positive_vectors()), pq=exponent_pairs(), copies=st.integers(2, 4))
def test_d4_cloning(backend: str, v: torch.Tensor, pq, copies: int) -> None:
    assert abs(pqi1(v.repeat(copies), *pq, backend) - pqi1(v, *pq, backend)) <= EXACT


@given(v=positive_vectors(), pq=exponent_pairs(), data=st.data())
def test_p1_bill_gates(backend: str, v: torch.Tensor, pq, data: st.DataObject) -> None:
    """With beta_i = 10 * sum(w), growing w_i + beta_i by any alpha > 0 raises the PQI."""
    i = data.draw(st.integers(0, v.numel() - 1))
    rich = v.clone()
    rich[i] += 10.0 * float(v.sum())
    richer = rich.clone()
    richer[i] += data.draw(st.floats(0.1, 10.0)) * float(rich[i])
    assert pqi1(richer, *pq, backend) > pqi1(rich, *pq, backend)


@given(v=signed(positive_vectors()), pq=exponent_pairs(), babies=st.integers(1, 3))
def test_p2_babies(backend: str, v: torch.Tensor, pq, babies: int) -> None:
    """Appending zeros to a non-zero vector raises the PQI."""
    with_babies = torch.cat([v, torch.zeros(babies, dtype=torch.float64)])
    assert pqi1(with_babies, *pq, backend) > pqi1(v, *pq, backend)


# ---- Theorem 1: 0 <= I <= 1 - d^(1/q - 1/p), with equality at both ends ----


@given(v=st.one_of(signed(positive_vectors(min_size=1)), spread_vectors()), pq=exponent_pairs())
def test_theorem1_range(backend: str, v: torch.Tensor, pq) -> None:
    p, q = pq
    pqi = pqi1(v, p, q, backend)
    upper = 1.0 - v.numel() ** (1.0 / q - 1.0 / p)
    assert -EXACT <= pqi <= upper + EXACT


@given(d=st.integers(1, 200), value=st.floats(1e-200, 1e200), pq=exponent_pairs())
def test_theorem1_equality_cases(backend: str, d: int, value: float, pq) -> None:
    p, q = pq
    dense = torch.full((d,), value, dtype=torch.float64)
    assert abs(pqi1(dense, p, q, backend)) <= EXACT
    one_hot = torch.zeros(d, dtype=torch.float64)
    one_hot[d // 2] = -value
    assert abs(pqi1(one_hot, p, q, backend) - (1.0 - d ** (1.0 / q - 1.0 / p))) <= EXACT


# ---- Theorem 2: r >= d (1 + eta_r)^(-q/(q-p)) (1 - I)^(qp/(q-p)) for every r ----


def smallest_etas(v: torch.Tensor, p: float) -> list[float]:
    """eta_r for r = 1..d: the p-th power mass outside the r largest over the mass inside."""
    powers = v.abs().sort(descending=True).values ** p
    inside = powers.cumsum(0)
    outside = powers.sum() - inside
    return (outside.clamp(min=0.0) / inside).tolist()


@given(v=st.one_of(signed(positive_vectors(min_size=1)), spread_vectors()), pq=exponent_pairs())
def test_theorem2_retain_bound(backend: str, v: torch.Tensor, pq) -> None:
    p, q = pq
    assume(bool((v != 0).any()))
    d = v.numel()
    pqi = torch.tensor([pqi1(v, p, q, backend)], dtype=torch.float64)
    count = torch.tensor([d])
    for r, eta in enumerate(smallest_etas(v, p), start=1):
        bound = float(sk.sap_retain_bound(pqi, count, p, q, eta, backend=backend)[0])
        assert r * (1.0 + 1e-9) >= bound, f"r={r} eta_r={eta} bound={bound}"
