"""pytest-benchmark cases of the whole SAP step (PQI, counts, new mask):

    pytest bench/test_bench_step.py --benchmark-only [--benchmark-group-by=group]

Layout x implementation at n = 1e6 (SAP_BENCH_STEP_N=1e7 or 1e8 for more), torch.sum of the
same buffer in every group as the yardstick. report_step.py gives the interleaved,
ratio-to-sum table with peak memory.
"""

from __future__ import annotations

import functools
import os

import layouts
import pytest
import report_step
import torch

N = layouts.parse_size(os.environ.get("SAP_BENCH_STEP_N", "1e6"))
CASES = [
    (layout, name) for name, where in report_step.IMPLEMENTATIONS.items() for layout in where
] + [(layout, "torch.sum") for layout in layouts.LAYOUTS]


@functools.lru_cache(maxsize=1)
def buffer(n: int) -> torch.Tensor:
    return layouts.make_buffer(n)


@pytest.mark.parametrize(("layout_name", "name"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_step(benchmark, layout_name: str, name: str) -> None:
    benchmark.group = f"sap step {layout_name} n={layouts.format_n(N)}"
    params = buffer(N)
    if name == "torch.sum":
        benchmark(torch.sum, params)
        return
    layout = layouts.make_layout(layout_name, N)
    call = report_step.step_of(name, layout, params)
    if name in report_step.SLOW:
        benchmark.pedantic(call, rounds=3, iterations=1)
    else:
        benchmark(call)
