"""pytest-benchmark cases of the per-segment PQ Index:

    pytest bench --benchmark-only [--benchmark-group-by=group]

Parametrized over layout x size x (p, q) x implementation, torch.sum of the same buffer
included in every group as the yardstick. Sizes 1e6 and 1e7 by default; SAP_BENCH_MAX_N=1e8
adds 1e8. Each implementation's result is checked against sap_kernels.segmented_pqi (1e-4
abs) before it is timed. report.py gives the interleaved, ratio-to-sum table.
"""

from __future__ import annotations

import functools
import os
import warnings

import baselines
import cases
import layouts
import pytest
import torch
from timing import TOLERANCE

SIZES = (10**6, 10**7, 10**8)
MAX_N = layouts.parse_size(os.environ.get("SAP_BENCH_MAX_N", "1e7"))
BENCH_SIZES = [n for n in SIZES if n <= MAX_N]
BENCH_KEYS = ("torch_sum", *cases.IMPLEMENTATION_KEYS)
SLOW_ROUNDS = 3  # pedantic rounds of the slow peers from 1e8 on


@functools.lru_cache(maxsize=1)
def buffer(n: int) -> torch.Tensor:
    return layouts.make_buffer(n)


@functools.lru_cache(maxsize=3)
def layout(name: str, n: int) -> layouts.Layout:
    return layouts.make_layout(name, n)


def bind(key: str, lay: layouts.Layout, params: torch.Tensor, p: float, q: float) -> cases.Impl:
    if key == "torch_sum":
        return cases.Impl(key, lambda: baselines.torch_sum(params))
    return cases.build_all(lay, params, p, q, keys=(key,))[0]


def run_benchmark(benchmark, impl: cases.Impl, n: int) -> None:
    if impl.max_rounds is not None:
        benchmark.pedantic(impl.fn, rounds=impl.max_rounds, iterations=1)
    elif impl.key in cases.SLOW_KEYS and n >= 10**8:
        benchmark.pedantic(impl.fn, rounds=SLOW_ROUNDS, iterations=1, warmup_rounds=0)
    else:
        benchmark(impl.fn)


@pytest.mark.parametrize("key", BENCH_KEYS)
@pytest.mark.parametrize("pq", cases.PQ_PAIRS, ids=lambda pq: f"p{pq[0]:g}-q{pq[1]:g}")
@pytest.mark.parametrize("n", BENCH_SIZES, ids=layouts.format_n)
@pytest.mark.parametrize("layout_name", layouts.LAYOUTS)
def test_pqi(benchmark, layout_name: str, n: int, pq: tuple[float, float], key: str) -> None:
    p, q = pq
    params = buffer(n)
    lay = layout(layout_name, n)
    benchmark.group = f"{layout_name} n={layouts.format_n(n)} p={p:g} q={q:g}"
    benchmark.extra_info.update(layout=layout_name, n=n, segments=lay.num_segments, p=p, q=q)
    impl = bind(key, lay, params, p, q)
    if impl.fn is None:
        pytest.skip(impl.note)
    if key != "torch_sum" and impl.max_rounds is None:  # slow ones: checked by report.py
        check(impl, lay, params, p, q, benchmark.extra_info)
    run_benchmark(benchmark, impl, n)


def check(impl: cases.Impl, lay: layouts.Layout, params, p: float, q: float, info: dict) -> None:
    """impl's result against sap_kernels: a failure, or a warning for a known-inaccurate peer."""
    expected = baselines.sap_kernels_pqi(params, lay.segments, p, q)
    error = cases.max_abs_error(impl.fn(), expected)
    info["max_abs_error"] = error
    message = f"{impl.key} off sap_kernels by {error:.3g} > {TOLERANCE:g}"
    if error > TOLERANCE and impl.key in cases.KNOWN_INACCURATE:
        warnings.warn(f"{message}: {cases.KNOWN_INACCURATE[impl.key]}", stacklevel=2)
        return
    assert error <= TOLERANCE, message
