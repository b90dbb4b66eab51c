"""The GPU benchmark: segmented_pqi and sap_step of the "cuda" and "triton" backends against the
device's copy bandwidth, one read of the buffer (torch.sum), the eager reference and torch's
own top-k / k-th value masks, all timed in one run with CUDA events (medians).

    PYTHONPATH=. python bench/report_gpu.py [--n 1e8] [--rounds 20] [--out bench/out]

Layouts over n float32 entries: one segment; rows of 1000; ragged (lognormal lengths, mean
~90); tiny (lengths 1 to 19, mean ~10). Writes gpu.md and gpu.csv to --out with the device
name and the versions, and prints the table. Every result is checked first: PQI within 1e-5
of the float64 reference, masks equal to the reference mask for the same counts. --smoke runs
the harness on the CPU with tiny sizes (what CI can check without a GPU).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import layouts  # noqa: E402
import render  # noqa: E402

import sap_kernels as sk  # noqa: E402
from sap_kernels import reference  # noqa: E402

LAYOUTS = ("global", "rows", "ragged", "tiny")
P, Q = 0.5, 1.0


def tiny_segments(n: int) -> sk.Segments:
    """Segments of 1 to 19 entries (mean 10) covering n."""
    generator = torch.Generator().manual_seed(3)
    lengths = torch.randint(1, 20, (n // 10 + 20,), generator=generator)
    ends = lengths.cumsum(0)
    keep = int(torch.searchsorted(ends, n)) + 1
    lengths = lengths[:keep].clone()
    lengths[-1] -= int(ends[keep - 1]) - n
    return sk.Segments.from_lengths(lengths)


def segments_of(name: str, n: int) -> sk.Segments:
    return tiny_segments(n) if name == "tiny" else layouts.make_layout(name, n).segments


class Timer:
    """Median seconds of fn over rounds: CUDA events on a GPU, the host clock on the CPU."""

    def __init__(self, device: torch.device, rounds: int) -> None:
        self.device, self.rounds = device, rounds

    def __call__(self, fn) -> float:
        fn()  # warm-up: compilation, allocation
        times = []
        for _ in range(self.rounds):
            if self.device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                began = time.perf_counter()
                fn()
                times.append(time.perf_counter() - began)
        return statistics.median(times)


def copy_bandwidth(device: torch.device, timer: Timer) -> float:
    """Bytes read plus written per second of a 2 GiB device-to-device copy (64 MiB on CPU)."""
    n = (1 << 29) if device.type == "cuda" else (1 << 24)
    source = torch.rand(n, device=device)
    target = torch.empty_like(source)
    return 2 * source.numel() * 4 / timer(lambda: target.copy_(source))


def check_pqi(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    error = float((got - want).abs().nan_to_num(0.0).max()) if got.numel() else 0.0
    if error > 1e-5 or not torch.equal(got.isnan(), want.isnan()):
        raise AssertionError(f"{what}: PQI differs from the reference by {error:.3g}")


def check_step(step: sk.SAPStep, params, segments, want_pqi, what: str) -> None:
    check_pqi(step.pqi, want_pqi, what)
    keep = (step.count - step.n_prune).cpu()
    want = reference.topk_mask(params, segments.offsets_on(params.device), keep, None)
    if not torch.equal(step.mask, want):
        raise AssertionError(f"{what}: mask differs from the reference's for the same counts")


def topk_mask_peer(params: torch.Tensor, keep: int) -> torch.Tensor:
    """One segment: torch.topk of |w|, scattered into a mask (ties as topk breaks them)."""
    mask = torch.zeros_like(params, dtype=torch.bool)
    mask[params.abs().topk(keep, sorted=False).indices] = True
    return mask


def kthvalue_mask_peer(params: torch.Tensor, prune: int) -> torch.Tensor:
    magnitude = params.abs()
    return magnitude > torch.kthvalue(magnitude, max(prune, 1)).values


def run(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    timer = Timer(device, args.rounds)
    copy = copy_bandwidth(device, timer)
    rows = [{"case": "device-to-device copy", "GB/s": round(copy / 1e9, 1)}]
    for dtype in (torch.float32, torch.bfloat16):
        params = layouts.make_buffer(args.n).to(dtype).to(device)
        read = timer(params.sum)
        read_ms = read * 1e3
        rows.append({"case": f"torch.sum {dtype}", "ms": round(read_ms, 3)})
        for name in LAYOUTS:
            segments = segments_of(name, args.n)
            offsets = segments.offsets_on(device)
            want_pqi = reference.pqi(params, offsets, P, Q)
            for backend in args.backends:
                what = f"{backend} {name} {dtype}"
                rows.append(measure(params, segments, want_pqi, backend, timer, what, copy, read))
            if dtype == torch.float32 and not args.skip_peers:
                rows += peers(params, segments, name, timer, read)
    return rows


def measure(params, segments, want_pqi, backend, timer, what, copy, read) -> dict:
    """One backend on one layout: PQI (checked, then timed) as bandwidth, and the step."""
    offsets = segments.offsets_on(params.device)
    pqi_fn = functools.partial(sk.segmented_pqi, params, segments, P, Q, backend=backend)
    check_pqi(pqi_fn(), want_pqi, what)
    pqi_time = timer(pqi_fn)
    bytes_read = params.numel() * params.element_size() + offsets.numel() * 8
    step_fn = functools.partial(sk.sap_step, params, segments, P, Q, backend=backend)
    check_step(step_fn(), params, segments, want_pqi, what)
    step_time = timer(step_fn)
    return {
        "case": what, "segments": segments.num_segments,
        "pqi ms": round(pqi_time * 1e3, 3), "pqi GB/s": round(bytes_read / pqi_time / 1e9, 1),
        "pqi / copy": round(bytes_read / pqi_time / copy, 3),
        "step ms": round(step_time * 1e3, 3), "step / read": round(step_time / read, 2),
    }  # fmt: skip


def peers(params, segments, name, timer: Timer, read: float) -> list[dict]:
    """The eager reference's step, and torch.topk / kthvalue masks where they have a form."""
    offsets = segments.offsets_on(params.device)
    eager = timer(lambda: reference.sap_step(params, offsets, P, Q))
    rows = [{"case": f"eager reference {name}", "step ms": round(eager * 1e3, 3),
             "step / read": round(eager / read, 2)}]  # fmt: skip
    if name == "global":
        keep = params.numel() // 2
        for label, fn in (
            ("torch.topk mask", lambda: topk_mask_peer(params, keep)),
            ("torch.kthvalue mask", lambda: kthvalue_mask_peer(params, keep)),
        ):
            seconds = timer(fn)
            rows.append({"case": f"{label} {name}", "step ms": round(seconds * 1e3, 3),
                         "step / read": round(seconds / read, 2)})  # fmt: skip
    if name == "rows":
        matrix = params.view(-1, layouts.ROW_LENGTH)

        def rows_topk() -> torch.Tensor:
            mask = torch.zeros_like(matrix, dtype=torch.bool)
            return mask.scatter_(1, matrix.abs().topk(500, dim=1).indices, True)

        seconds = timer(rows_topk)
        rows.append({"case": f"torch.topk mask {name}", "step ms": round(seconds * 1e3, 3),
                     "step / read": round(seconds / read, 2)})  # fmt: skip
    return rows


def header(device: torch.device) -> str:
    import triton

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke run)"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return (
        f"{name}; torch {torch.__version__}, CUDA {torch.version.cuda}, triton "
        f"{triton.__version__}, sap_kernels {commit}; (p, q) = ({P}, {Q}); medians of "
        + ("CUDA event timings" if device.type == "cuda" else "host-clock timings")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=layouts.parse_size, default=layouts.parse_size("1e8"))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backends", default="cuda,triton")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="CPU, n = 1e5, backends cpu,torch")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.rounds, args.device, args.backends = 100_000, 2, "cpu", "cpu,torch"
    args.backends = args.backends.split(",")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("report_gpu.py: no CUDA device here (--smoke runs the harness on the CPU)")
        return 2
    rows = run(args)
    print(render.write_rows(rows, header(torch.device(args.device)), Path(args.out), "gpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
