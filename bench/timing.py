"""The one timer of report.py: interleaved rounds over every implementation of a case, with
torch.sum of the same buffer timed in each round, medians after a warm-up, and every result
checked against sap_kernels.segmented_pqi."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import baselines
import torch
from cases import Impl, max_abs_error

TOLERANCE = 1e-4  # largest |PQI - sap_kernels PQI| a peer may show


@dataclass
class Measurement:
    """One implementation in one case: its timings (seconds), its error against sap_kernels,
    or why it did not run."""

    key: str
    times: list[float] = field(default_factory=list)
    error: float | None = None
    note: str = ""

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times) * 1e3 if self.times else None

    @property
    def rounds(self) -> int:
        return len(self.times)

    @property
    def correct(self) -> bool | None:
        return None if self.error is None else self.error <= TOLERANCE


@dataclass
class CaseResult:
    layout: str
    n: int
    num_segments: int
    p: float
    q: float
    sum_times: list[float]
    measurements: list[Measurement]
    dtype: str = "float32"

    @property
    def sum_ms(self) -> float:
        return statistics.median(self.sum_times) * 1e3

    def ratio(self, measurement: Measurement) -> float | None:
        median = measurement.median_ms
        return None if median is None else median / self.sum_ms


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_case(
    impls: list[Impl],
    params: torch.Tensor,
    expected: torch.Tensor,
    rounds: int,
    warmup: Callable[[Impl], bool],
) -> tuple[list[float], list[Measurement]]:
    """Time torch.sum and every runnable impl, interleaved: round r calls torch.sum, then
    each impl whose round cap allows a round r. warmup(impl) says whether it gets an untimed
    call first. Each impl's first result is checked against expected."""
    measurements = [Measurement(impl.key, note=impl.note) for impl in impls]
    runnable = [(impl, m) for impl, m in zip(impls, measurements) if impl.fn is not None]
    timed(lambda: baselines.torch_sum(params))
    for impl, measurement in runnable:
        if warmup(impl):
            measurement.error = max_abs_error(impl.fn(), expected)
    sum_times = []
    for round_index in range(rounds):
        sum_times.append(timed(lambda: baselines.torch_sum(params))[0])
        for impl, measurement in runnable:
            if impl.max_rounds is not None and round_index >= impl.max_rounds:
                continue
            seconds, result = timed(impl.fn)
            measurement.times.append(seconds)
            if measurement.error is None:
                measurement.error = max_abs_error(result, expected)
            del result
    return sum_times, measurements
