"""Shared test configuration: Hypothesis profiles, the backends available here, tolerances and
an assert_close that reports the first mismatches (in the manner of Liger-Kernel's tests).

Profiles: HYPOTHESIS_PROFILE=default (the default) or HYPOTHESIS_PROFILE=ci (fewer examples,
derandomized so that CI runs are reproducible).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# Without a GPU, the Triton kernels run in Triton's interpreter, on CPU tensors (set before any
# sap_kernels.triton module is imported: triton reads it when the kernels are defined).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import sap_kernels as sk  # noqa: E402
from sap_kernels._native import using_cpu_isa  # noqa: E402

settings.register_profile(
    "default",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=30,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO_ROOT = Path(__file__).resolve().parent.parent

# "torch" (the reference) always runs; "cpu" (the C++ extension) where it was built. CI sets
# SAP_KERNELS_REQUIRE_NATIVE=1 so that a missing extension fails the run instead of quietly
# testing the reference alone.
if os.environ.get("SAP_KERNELS_REQUIRE_NATIVE") == "1" and not sk.native_available():
    raise RuntimeError(
        "SAP_KERNELS_REQUIRE_NATIVE=1 but sap_kernels._C did not load: build it with "
        "`pip install -e .`"
    )


def _backends_here() -> tuple[str, ...]:
    """ "torch", "cpu" where the extension is built, and on a GPU "cuda" (where built with it)
    and "triton". SAP_KERNELS_TEST_BACKENDS (comma-separated) picks others, for example
    "triton" to run every suite through Triton's interpreter without a GPU (slow)."""
    chosen = os.environ.get("SAP_KERNELS_TEST_BACKENDS")
    if chosen:
        return tuple(name.strip() for name in chosen.split(",") if name.strip())
    backends = ["torch"] + (["cpu"] if sk.native_available() else [])
    if torch.cuda.is_available():
        backends += ["cuda"] if sk.native_has_cuda() else []
        backends += ["triton"] if importlib.util.find_spec("triton") else []
    return tuple(backends)


BACKENDS_HERE = _backends_here()
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _cpu_isas_under_test() -> list[str]:
    """The copies of the CPU kernels the suites run "cpu" through: the active one first (the
    best this CPU runs, or $SAP_KERNELS_CPU_ISA), then every other copy this CPU runs, unless
    SAP_KERNELS_TEST_CPU_ISAS=active."""
    active = sk.cpu_isa()
    if active is None:
        return []
    if os.environ.get("SAP_KERNELS_TEST_CPU_ISAS") == "active":
        return [active]
    return [active] + [isa for isa in reversed(sk.cpu_isas()) if isa != active]


CPU_ISAS_UNDER_TEST = _cpu_isas_under_test()


def _backend_params() -> list:
    params = []
    for name in BACKENDS_HERE:
        if name != "cpu":
            params.append(pytest.param((name, None), id=name))
            continue
        for rank, isa in enumerate(CPU_ISAS_UNDER_TEST):
            params.append(pytest.param((name, isa), id="cpu" if rank == 0 else f"cpu-{isa}"))
    return params


@pytest.fixture(params=_backend_params(), scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """Every backend available on this machine (module scope, so Hypothesis accepts it), "cpu"
    once per copy of its kernels (sk.cpu_isas(): the baseline, AVX2 and AVX-512 ones where the
    CPU runs them). The suites build CPU tensors; for "cuda" and "triton" the ops are wrapped
    so that their tensor inputs move to the GPU and their results come back
    (device_adapter.py)."""
    name, isa = request.param
    if isa is not None:
        with using_cpu_isa(isa):
            yield name
        return
    if name not in GPU_BACKENDS:
        yield name
        return
    from device_adapter import on_device

    with on_device(name):
        yield name


# The CPU backend's precision contract (README, "The math"): every term a^p is within ~1e-13
# relative for float64 params and for the exponents 1, 2, 3, 4. For float32 / float16 /
# bfloat16 params, the exponents 0.5 and 1.5 (float32 square root) and generic ones (AVX-512:
# tables, for p >= 0.25; other CPUs: float32 exp2 / log2, for p >= 0.5, whose error grows with
# |log2 a| below the segment's largest entry: test_generic_terms.py) are evaluated in float32
# arithmetic, each term within a few float32 ulps.
FLOAT32_TERM_RTOL = 2.5e-7
INTEGER_EXPONENTS = (1.0, 2.0, 3.0, 4.0)
# The GPU backends' ("cuda", "triton") contract: float64 params in float64 arithmetic; other
# dtypes: exponents 1 to 4 by float64 multiplies, 0.5 and 1.5 by the correctly rounded float32
# square root, others by float32 log2 / exp2 (the GPUs' approximations), each term within this.
GPU_TERM_RTOL = 2e-6
GPU_BACKENDS = ("cuda", "triton")


def float32_terms(dtype: torch.dtype, p: float, q: float) -> bool:
    """Whether the CPU backend may evaluate the terms in float32 arithmetic."""
    return dtype != torch.float64 and not (p in INTEGER_EXPONENTS and q in INTEGER_EXPONENTS)


def term_rtol(dtype: torch.dtype, p: float, q: float, backend: str = "cpu") -> float:
    """The relative error a backend may make on each term a^p, a^q (0: float64 arithmetic)."""
    if not float32_terms(dtype, p, q):
        return 0.0
    if backend in GPU_BACKENDS and not {p, q} <= {0.5, 1.5, *INTEGER_EXPONENTS}:
        return GPU_TERM_RTOL
    return FLOAT32_TERM_RTOL


def pqi_atol(dtype: torch.dtype, p: float, q: float, backend: str = "cpu") -> float:
    """Absolute tolerance of a PQI against the float64 reference for params of dtype.

    Every supported dtype converts exactly to float64. Sums accumulate in float64; with terms
    in float32 arithmetic, a relative error e on every term moves ||a||_p by e / p and the PQI,
    1 - c ||a||_p / ||a||_q with c ||a||_p / ||a||_q <= 1, by at most e (1/p + 1/q).
    """
    rtol = term_rtol(dtype, p, q, backend)
    if rtol:
        return rtol * (1 / p + 1 / q)
    return 1e-12 if dtype == torch.float64 else 1e-10


def log_norm_atol(
    length: int, dtype: torch.dtype, p: float, q: float, backend: str = "cpu"
) -> float:
    """Absolute tolerance on log ||a||_p for a segment of `length` entries (float64 sums of
    non-negative terms: relative error at most ~length * 2^-53, divided by p >= 0.3; terms in
    float32 arithmetic add their own relative error, divided by p)."""
    float64_sums = 1e-10 + 4e-15 * length
    return float64_sums + term_rtol(dtype, p, q, backend) / min(p, q)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python that imports sap_kernels from this checkout."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    env.update(extra)
    return env


PYTHON = sys.executable


def _as_double(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", torch.float64).reshape(-1)


def assert_close_report(
    actual: torch.Tensor,
    expected: torch.Tensor,
    rtol: float,
    atol: float,
    what: str,
    max_report: int = 10,
) -> None:
    """Asserts |actual - expected| <= atol + rtol * |expected| elementwise.

    NaN equals NaN, but NaN positions must match exactly; equal infinities are equal. On failure
    the message lists the first `max_report` mismatching indices with both values.
    """
    assert actual.shape == expected.shape, (
        f"{what}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    )
    a, e = _as_double(actual), _as_double(expected)
    nan_a, nan_e = a.isnan(), e.isnan()
    close = (a == e) | ((a - e).abs() <= atol + rtol * e.abs())
    bad = (nan_a != nan_e) | (~nan_a & ~nan_e & ~close)
    if not bool(bad.any()):
        return
    indices = bad.nonzero().view(-1)
    lines = [
        f"{what}: {indices.numel()} of {a.numel()} mismatched (rtol={rtol}, atol={atol}); "
        f"first {min(max_report, indices.numel())}:"
    ]
    for index in indices[:max_report].tolist():
        diff = float((a[index] - e[index]).abs())
        lines.append(
            f"  [{index}] actual={a[index].item()!r} expected={e[index].item()!r} diff={diff:.3e}"
        )
    raise AssertionError("\n".join(lines))


def pytest_report_header(config: pytest.Config) -> str:
    missing = [name for name in GPU_BACKENDS if name not in BACKENDS_HERE]
    gpu_note = (
        f"; not through the suites here (no GPU): {', '.join(missing)} (test_triton.py runs "
        "the Triton kernels in the interpreter)"
        if missing and not torch.cuda.is_available()
        else ""
    )
    isas = f" (kernel copies: {', '.join(CPU_ISAS_UNDER_TEST)})" if CPU_ISAS_UNDER_TEST else ""
    return (
        f"sap_kernels backends under test: {', '.join(BACKENDS_HERE)}{isas}{gpu_note}; "
        f"hypothesis profile: {settings.get_current_profile_name()}"
    )
