"""The whole SAP step (PQI, counts, new mask): sap_kernels.sap_step against the paper code's
eager step and a torch.kthvalue threshold, as ratios to torch.sum of the same buffer timed in
the same rounds, with the peak memory each one adds.

    python bench/report_step.py [--n 1e8] [--rounds 5] [--slow-rounds 3] [--out bench/out]
    python bench/report_step.py --dtype bfloat16 ...   # the same values, rounded

Writes step.md and step.csv to --out and prints the markdown. Peak memory is measured in a
fresh process per (implementation, layout): the peak resident size during one call minus the
resident size before it (Linux: /proc/self/clear_refs resets the peak).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as report.py: idle workers sleep

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import layouts  # noqa: E402
import render  # noqa: E402
import step_peers  # noqa: E402

# (implementation, layouts it runs on); the paper's sort of 1e8 entries takes seconds a call
IMPLEMENTATIONS = {
    "sap_kernels.sap_step": ("global", "rows", "ragged"),
    "sap_kernels.sap_step out=": ("global", "rows", "ragged"),
    "sap_kernels.sap_step mask (70% live)": ("global", "rows", "ragged"),
    "paper_step (torch.sort)": ("global", "rows"),
    "kthvalue_step": ("global",),
}
SLOW = ("paper_step (torch.sort)", "kthvalue_step")


def step_of(name: str, layout: layouts.Layout, params: torch.Tensor):
    """The zero-argument call of one implementation on one layout."""
    if name == "sap_kernels.sap_step":
        return lambda: step_peers.sap_step(params, layout.segments)
    if name == "sap_kernels.sap_step out=":
        out = torch.empty(params.numel(), dtype=torch.bool)
        return lambda: step_peers.sap_step_into(params, layout.segments, out)
    if name == "sap_kernels.sap_step mask (70% live)":
        live = layouts.make_live_mask(params.numel(), 0.7)
        return lambda: step_peers.sap_step(params, layout.segments, live)
    if name == "kthvalue_step":
        return lambda: step_peers.kthvalue_step(params, layout.segments)
    rows = 1 if layout.name == "global" else layout.rows
    return lambda: step_peers.paper_step(params, rows)


def timed_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def status_kib(field: str) -> int:
    """A field of /proc/self/status (VmRSS, VmHWM) in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def call_peak_mib(name: str, layout_name: str, n: int, dtype: str = "float32") -> float:
    """In this (fresh) process: the peak resident size during one call, minus the resident
    size before it. Writing 5 to clear_refs resets the peak (VmHWM) to the current size.
    A call on a small buffer comes first: the first call of a custom op loads ~120 MiB of
    PyTorch's own machinery once per process, which is no part of what a call costs."""
    small = layouts.make_layout(layout_name, 10_000)
    step_of(name, small, layouts.make_buffer(10_000, dtype=getattr(torch, dtype)))()
    layout = layouts.make_layout(layout_name, n)
    params = layouts.make_buffer(n, dtype=getattr(torch, dtype))
    call = step_of(name, layout, params)
    before = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    call()
    return (status_kib("VmHWM") - before) / 1024


def peak_memory_mib(name: str, layout_name: str, n: int, dtype: str) -> float:
    """Peak memory one call adds, measured in a fresh process (see call_peak_mib)."""
    code = (
        f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'bench')!r}]\n"
        f"import report_step\n"
        f"print(report_step.call_peak_mib({name!r}, {layout_name!r}, {n}, {dtype!r}))\n"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def measure(layout_name: str, n: int, dtype: str, rounds: int, slow_rounds: int) -> list[dict]:
    layout = layouts.make_layout(layout_name, n)
    params = layouts.make_buffer(n, dtype=getattr(torch, dtype))
    names = [name for name, where in IMPLEMENTATIONS.items() if layout_name in where]
    calls = {name: step_of(name, layout, params) for name in names}
    times: dict[str, list[float]] = {name: [] for name in ["torch.sum", *names]}
    for call in calls.values():
        call()  # warm-up
    fast = {name: call for name, call in calls.items() if name not in SLOW}
    for _ in range(rounds):  # interleaved, so that drift hits all alike
        times["torch.sum"].append(timed_ms(lambda: torch.sum(params)))
        for name, call in fast.items():
            times[name].append(timed_ms(call))
    # The slow peers after: the first read of the buffer after one of them (GiBs freed) takes
    # about twice as long, which would move the yardstick.
    for _ in range(slow_rounds):
        for name in (name for name in calls if name in SLOW):
            times[name].append(timed_ms(calls[name]))
    sum_ms = statistics.median(times["torch.sum"])
    rows = []
    for name in names:
        median = statistics.median(times[name])
        rows.append(
            {
                "layout": layout_name,
                "n": n,
                "dtype": dtype,
                "implementation": name,
                "median_ms": round(median, 2),
                "rounds": len(times[name]),
                "torch_sum_ms": round(sum_ms, 2),
                "ratio_to_sum": round(median / sum_ms, 2),
                "peak_extra_mib": round(peak_memory_mib(name, layout_name, n, dtype), 1),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| layout | implementation | median ms | rounds | × torch.sum | peak extra MiB |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['layout']} | {row['implementation']} | {row['median_ms']} | {row['rounds']}"
            f" | {row['ratio_to_sum']} | {row['peak_extra_mib']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="1e8")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slow-rounds", type=int, default=3)
    parser.add_argument("--layouts", default="global,rows,ragged")
    parser.add_argument(
        "--dtype",
        choices=layouts.DTYPES,
        default="float32",
        help="the buffer's dtype (its float32 standard normal values, rounded)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = parser.parse_args()
    n = layouts.parse_size(args.n)
    rows = []
    for layout_name in args.layouts.split(","):
        rows += measure(layout_name, n, args.dtype, args.rounds, args.slow_rounds)
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    entry_bytes = getattr(torch, args.dtype).itemsize
    header = (
        f"{now}; {render.cpu_model()}, {os.cpu_count()} logical cores; sap_kernels git "
        f"{render.git_state()}; extension {render.extension_state()}\n\n"
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype} n = "
        f"{layouts.format_n(n)}, (p, q) = (0.5, 1); peak extra memory of one call, in a "
        f"fresh process (buffer: {n * entry_bytes / 2**20:.0f} MiB, mask: {n / 2**20:.0f} MiB)"
    )
    table = markdown(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "step.md").write_text(f"{header}\n\n{table}\n")
    with open(out / "step.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(header, table, sep="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
