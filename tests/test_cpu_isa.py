"""The copies of the CPU kernels (baseline, x86-64-v3 with AVX2, x86-64-v4 with AVX-512): which
ones run here, choosing one, and every copy against the reference on buffers long enough for
the paths the Hypothesis suites' short segments do not reach (whole chunks of 2048 entries,
tiles of 65536, segments across both). The suites themselves run "cpu" once per copy
(conftest.py)."""

from __future__ import annotations

import subprocess

import pytest
import torch
from conftest import CPU_ISAS_UNDER_TEST, PYTHON, assert_close_report, pqi_atol, subprocess_env
from mask_oracle import assert_masks_equal

import sap_kernels as sk
from sap_kernels import reference
from sap_kernels._native import using_cpu_isa

pytestmark = pytest.mark.skipif(not sk.native_available(), reason="needs the compiled extension")

PAIRS = ((0.5, 1.0), (1.0, 2.0), (0.7, 1.3), (1.2, 3.7))
DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


@pytest.fixture(params=CPU_ISAS_UNDER_TEST)
def isa(request: pytest.FixtureRequest) -> str:
    """Each copy this CPU runs, made the active one for the test."""
    with using_cpu_isa(request.param):
        yield request.param


def long_case(dtype: torch.dtype, masked: bool, seed: int = 0):
    """~300k signed normal entries over segments of 1 to 9000 entries (a few 70k-entry ones)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 9000, (40,), generator=gen)
    lengths[::9] = 70_001
    params = torch.randn(int(lengths.sum()), generator=gen, dtype=torch.float64).to(dtype)
    mask = torch.rand(params.numel(), generator=gen) < 0.8 if masked else None
    return params, sk.Segments.from_lengths(lengths), mask


def test_names_and_active_copy() -> None:
    names = sk.cpu_isas()
    assert names[0] == "baseline"
    assert set(names) <= {"baseline", "x86-64-v3", "x86-64-v4"}
    assert sk.cpu_isa() in names


def test_unknown_copy_is_clear_error_and_changes_nothing() -> None:
    before = sk.cpu_isa()
    with pytest.raises(ValueError) as raised:
        sk.set_cpu_isa("avx-9000")
    message = str(raised.value)
    assert "set_cpu_isa" in message and "'avx-9000'" in message and "'baseline'" in message
    assert sk.cpu_isa() == before


def test_environment_picks_the_copy() -> None:
    code = "import sap_kernels as sk; print(sk.cpu_isa())"
    env = subprocess_env(SAP_KERNELS_CPU_ISA="baseline")
    chosen = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() == "baseline"


def test_environment_with_unknown_copy_warns_and_keeps_the_best() -> None:
    code = "import sap_kernels as sk; print(sk.cpu_isa())"
    env = subprocess_env(SAP_KERNELS_CPU_ISA="nonsense")
    chosen = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() == sk.cpu_isas()[-1]
    assert "SAP_KERNELS_CPU_ISA ignored" in chosen.stderr and "'nonsense'" in chosen.stderr


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("masked", [False, True], ids=["all-live", "masked"])
def test_long_segments_match_reference(isa: str, dtype: torch.dtype, masked: bool) -> None:
    params, segments, mask = long_case(dtype, masked)
    for p, q in PAIRS:
        actual = sk.segmented_pqi(params, segments, p, q, mask, backend="cpu")
        expected = reference.pqi(params, segments.offsets, p, q, mask)
        what = f"{isa} {dtype} masked={masked} pqi({p}, {q})"
        assert_close_report(actual, expected, 0.0, pqi_atol(dtype, p, q), what)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
def test_masks_equal_reference_and_step_its_composition(isa: str, dtype: torch.dtype) -> None:
    params, segments, mask = long_case(dtype, masked=True, seed=1)
    step = sk.sap_step(params, segments, 0.7, 1.3, mask, backend="cpu")
    keep = step.count - step.n_prune
    expected = reference.topk_mask(params, segments.offsets, keep, mask)
    actual = sk.segmented_topk_mask(params, segments, keep, mask, backend="cpu")
    assert_masks_equal(actual, expected, params, segments.offsets, f"{isa} {dtype} topk")
    assert torch.equal(step.mask, actual), f"{isa} {dtype}: sap_step mask != topk mask"
    pqi = sk.segmented_pqi(params, segments, 0.7, 1.3, mask, backend="cpu")
    assert torch.equal(step.pqi.isnan(), pqi.isnan())
    assert torch.equal(step.pqi.nan_to_num(), pqi.nan_to_num()), f"{isa}: step pqi differs"


def test_copies_agree_with_each_other() -> None:
    """The same PQI to within the float32 terms' tolerance, and the same masks exactly."""
    if len(CPU_ISAS_UNDER_TEST) < 2:
        pytest.skip("one copy of the kernels runs here")
    params, segments, mask = long_case(torch.float32, masked=True, seed=2)
    results = {}
    for name in CPU_ISAS_UNDER_TEST:
        with using_cpu_isa(name):
            results[name] = sk.sap_step(params, segments, 0.7, 1.3, mask, backend="cpu")
    first, *others = CPU_ISAS_UNDER_TEST
    for name in others:
        what = f"{name} against {first}"
        atol = 2 * pqi_atol(torch.float32, 0.7, 1.3)
        assert_close_report(results[name].pqi, results[first].pqi, 0.0, atol, what)
        if torch.equal(results[name].n_prune, results[first].n_prune):
            assert torch.equal(results[name].mask, results[first].mask), what
