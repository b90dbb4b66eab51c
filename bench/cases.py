"""The benchmark cases: every implementation of the per-segment PQI bound to one
(layout, n, p, q), as zero-argument callables, shared by report.py and the pytest cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import baselines
import torch
import torch._dynamo
from layouts import Layout, paper_layers

import sap_kernels

PQ_PAIRS = ((0.5, 1.0), (1.0, 2.0), (0.7, 1.3))

# (key, column title) in table order; the yardstick torch.sum is timed apart
IMPLEMENTATIONS = (
    ("sap_kernels", "sap_kernels cpu"),
    ("sap_kernels_avx2", "sap_kernels cpu, AVX2 copy"),
    ("paper_eager", "paper eager"),
    ("eager_reference", "eager reference"),
    ("compiled_reference", "torch.compile reference"),
    ("compiled_rows", "torch.compile rows"),
)
IMPLEMENTATION_KEYS = tuple(key for key, _ in IMPLEMENTATIONS)

# the paper-style loop over ragged segments (one "layer" each): full rounds up to this size,
# a single round up to RAGGED_LOOP_SINGLE_N, n/a above (about 1e6 layers: minutes per call)
RAGGED_LOOP_FULL_N = 10**6
RAGGED_LOOP_SINGLE_N = 10**7
SLOW_KEYS = ("paper_eager", "eager_reference", "compiled_reference")

# peers whose disagreement with sap_kernels is a known property of theirs, not a harness bug:
# still flagged (✗ in the table, a warning in pytest), but no failure
KNOWN_INACCURATE = {
    "paper_eager": "torch.linalg.norm in the params' dtype accumulates without cascade summation "
    "(float32, ord=1: off by ~1e-3 relative at 1e7 elements, where torch.sum is exact to 1e-7; "
    "bfloat16 / float16: its norms rounded to that dtype)",
}


@dataclass
class Impl:
    """One implementation bound to a case: fn() -> float64 [S], or fn None with why not."""

    key: str
    fn: Callable[[], torch.Tensor] | None
    note: str = ""
    max_rounds: int | None = None  # cap on the timed rounds (None: as many as asked)


def build(key: str, layout: Layout, params: torch.Tensor, p: float, q: float) -> Impl:
    """The implementation key bound to (layout, params, p, q); compiled ones are compiled here
    (one call), outside any timing."""
    try:
        return _BUILDERS[key](layout, params, p, q)
    except Exception as error:  # e.g. an Inductor codegen failure: report it, time the rest
        reason = str(error).strip().splitlines()
        detail = f": {reason[0].rstrip(': ')[:60]}" if reason else ""
        return Impl(key, None, f"error ({type(error).__name__}{detail})")


def _sap_kernels(layout: Layout, params: torch.Tensor, p: float, q: float) -> Impl:
    segments = layout.segments
    return Impl("sap_kernels", lambda: baselines.sap_kernels_pqi(params, segments, p, q))


def _sap_kernels_avx2(layout: Layout, params: torch.Tensor, p: float, q: float) -> Impl:
    """The AVX2 copy of the kernels where the CPU runs a better one (AVX-512), to compare them."""
    key, isa = "sap_kernels_avx2", "x86-64-v3"
    if isa not in sap_kernels.cpu_isas():
        return Impl(key, None, "n/a (no AVX2 copy on this build or CPU)")
    if sap_kernels.cpu_isa() == isa:
        return Impl(key, None, "n/a (the AVX2 copy is the one sap_kernels cpu runs here)")
    segments = layout.segments
    return Impl(key, lambda: baselines.sap_kernels_pqi_with_copy(isa, params, segments, p, q))


def _paper_eager(layout: Layout, params: torch.Tensor, p: float, q: float) -> Impl:
    key = "paper_eager"
    if layout.name == "ragged" and layout.n > RAGGED_LOOP_SINGLE_N:
        return Impl(key, None, f"n/a (too slow: loop of {layout.num_segments} layers)")
    layers, masks, scope = paper_layers(layout, params)
    impl = Impl(key, lambda: baselines.paper_eager_pqi(layers, masks, p, q, scope))
    if layout.name == "ragged" and layout.n > RAGGED_LOOP_FULL_N:
        impl.max_rounds = 1
        impl.note = f"loop of {layout.num_segments} layers: 1 round"
    return impl


def _eager_reference(layout: Layout, params: torch.Tensor, p: float, q: float) -> Impl:
    offsets = layout.segments.offsets
    return Impl("eager_reference", lambda: baselines.eager_reference_pqi(params, offsets, p, q))


def _compiled_reference(layout: Layout, params: torch.Tensor, p: float, q: float) -> Impl:
    offsets = layout.segments.offsets
    compiled = baselines.compiled_reference_pqi(p, q)
    compiled(params, offsets)  # compile
    return Impl("compiled_reference", lambda: compiled(params, offsets))


def _compiled_rows(layout: Layout, params: torch.Tensor, p: float, q: float) -> Impl:
    if layout.name != "rows":
        return Impl("compiled_rows", None, "n/a (uniform rows only)")
    compiled = baselines.compiled_rows_pqi(layout.rows, layout.cols, p, q)
    compiled(params)  # compile
    return Impl("compiled_rows", lambda: compiled(params))


_BUILDERS = {
    "sap_kernels": _sap_kernels,
    "sap_kernels_avx2": _sap_kernels_avx2,
    "paper_eager": _paper_eager,
    "eager_reference": _eager_reference,
    "compiled_reference": _compiled_reference,
    "compiled_rows": _compiled_rows,
}


def build_all(
    layout: Layout, params: torch.Tensor, p: float, q: float, keys=IMPLEMENTATION_KEYS
) -> list[Impl]:
    """Every implementation in keys for one case; Dynamo's caches are reset first so that
    compiled code of earlier cases neither piles up nor counts against recompile limits."""
    torch._dynamo.reset()
    return [build(key, layout, params, p, q) for key in keys]


def max_abs_error(result: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest |result - expected| (NaN in both places counts as equal; inf on mismatch)."""
    result = result.double().view(-1)
    expected = expected.double().view(-1)
    if result.shape != expected.shape:
        return float("inf")
    both_nan = result.isnan() & expected.isnan()
    diff = (result - expected).abs().masked_fill(both_nan, 0.0)
    if diff.isnan().any():
        return float("inf")
    return float(diff.max()) if diff.numel() else 0.0
