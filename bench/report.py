"""Per-segment PQ Index: sap_kernels against its peers, as ratios to torch.sum of the same
buffer timed in the same rounds.

    PYTHONPATH=. python bench/report.py [--sizes 1e6,1e7,1e8] [--rounds 7] [--out bench/out]
    PYTHONPATH=. python bench/report.py --dtype bfloat16 ...   # the same values, rounded

Writes pqi.md (header + markdown table) and pqi.csv (one row per implementation and case) to
--out and prints the markdown. Exit status 1 when a peer disagrees with sap_kernels by more
than 1e-4 (the table marks it with ✗).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

# Before torch loads libgomp: idle OpenMP threads sleep instead of spinning. On this 2-vCPU VM
# a spinning worker costs every parallel region ~8 ms (torch.sum of 1e6 floats: 8 ms, not
# 0.1 ms); --keep-omp-default measures with libgomp's default instead.
if "--keep-omp-default" not in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmark the in-tree package
    sys.path.insert(0, str(ROOT))

import baselines  # noqa: E402
import cases  # noqa: E402
import layouts  # noqa: E402
import render  # noqa: E402
from timing import CaseResult, run_case  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6,1e7,1e8", help="comma-separated buffer sizes")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (median taken)")
    parser.add_argument(
        "--slow-rounds", type=int, default=3, help="rounds of the slow peers at n >= --slow-from"
    )
    parser.add_argument("--slow-from", default="1e8", help="size from which slow peers are capped")
    parser.add_argument("--layouts", default=",".join(layouts.LAYOUTS))
    parser.add_argument("--pq", default=",".join(f"{p}:{q}" for p, q in cases.PQ_PAIRS))
    parser.add_argument("--impls", default=",".join(cases.IMPLEMENTATION_KEYS))
    parser.add_argument(
        "--dtype",
        choices=layouts.DTYPES,
        default="float32",
        help="the buffer's dtype (its float32 standard normal values, rounded)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    parser.add_argument(
        "--keep-omp-default",
        action="store_true",
        help="leave OMP_WAIT_POLICY unset (libgomp spins) instead of PASSIVE",
    )
    args = parser.parse_args(argv)
    args.sizes = [layouts.parse_size(size) for size in args.sizes.split(",")]
    args.slow_from = layouts.parse_size(args.slow_from)
    args.layouts = args.layouts.split(",")
    args.pq = [tuple(float(x) for x in pair.split(":")) for pair in args.pq.split(",")]
    args.impls = args.impls.split(",")
    unknown = set(args.impls) - set(cases.IMPLEMENTATION_KEYS)
    if unknown or "sap_kernels" not in args.impls:
        parser.error(f"--impls: must include sap_kernels, from {cases.IMPLEMENTATION_KEYS}")
    return args


def cap_slow_peers(impls: list[cases.Impl], n: int, args: argparse.Namespace) -> None:
    """Slow peers at n >= --slow-from: at most --slow-rounds rounds."""
    if n < args.slow_from:
        return
    for impl in impls:
        if impl.key in cases.SLOW_KEYS and impl.fn is not None:
            cap = impl.max_rounds or args.slow_rounds
            impl.max_rounds = min(cap, args.slow_rounds)


def wants_warmup(impl: cases.Impl) -> bool:
    """An untimed call first, except for capped (slow) peers: for those it would cost as much
    as a round and buys nothing (compiled ones already ran once to compile)."""
    return impl.max_rounds is None


def measure_case(
    layout: layouts.Layout, params: torch.Tensor, p: float, q: float, args: argparse.Namespace
) -> CaseResult:
    expected = baselines.sap_kernels_pqi(params, layout.segments, p, q)
    impls = cases.build_all(layout, params, p, q, keys=args.impls)
    cap_slow_peers(impls, layout.n, args)
    sum_times, measurements = run_case(impls, params, expected, args.rounds, wants_warmup)
    del impls, expected
    gc.collect()
    return CaseResult(
        layout.name, layout.n, layout.num_segments, p, q, sum_times, measurements, args.dtype
    )


def run_all(args: argparse.Namespace) -> list[CaseResult]:
    results = []
    for n in args.sizes:
        params = layouts.make_buffer(n, dtype=getattr(torch, args.dtype))
        for name in args.layouts:
            layout = layouts.make_layout(name, n)
            for p, q in args.pq:
                start = time.perf_counter()
                result = measure_case(layout, params, p, q, args)
                results.append(result)
                print(render.progress_line(result, time.perf_counter() - start), flush=True)
            del layout
            gc.collect()
        del params
        gc.collect()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    header = render.header_lines(args)
    print("\n".join(header), flush=True)
    start = time.perf_counter()
    results = run_all(args)
    elapsed = time.perf_counter() - start
    markdown = render.markdown_report(header, results, args.rounds, elapsed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pqi.md").write_text(markdown)
    render.write_csv(out / "pqi.csv", results)
    print()
    print(markdown)
    print(f"wrote {out / 'pqi.md'} and {out / 'pqi.csv'}")
    wrong = render.wrong_results(results)
    for line in wrong:
        print(f"MISMATCH: {line}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
