"""Two builds of sap_kernels timed against each other, calls interleaved round by round.

A change to a compute-bound kernel moves its time by a few percent, less than these shared
machines drift from one minute to the next, so timing one build and then the other says
little. Here each build lives in its own long-lived worker process (a copy of the package
directory, built in place, put first on that worker's PYTHONPATH), both on the same data; the
driver asks them for one round of calls each in turn, alternating which goes first, and
reports the median time per entry of each and the ratio new / base round by round. It also
says whether the two builds' outputs are the same bit for bit.

    cp -r sap_kernels BASE_DIR/      # before the change (built in place)
    cp -r sap_kernels NEW_DIR/       # after it
    python bench/ab_builds.py BASE_DIR NEW_DIR --layout ragged --n 1e6 --pq 0.5:1
    # one core, both workers on the same CPU (two vCPUs can differ in speed):
    OMP_NUM_THREADS=1 taskset -c 1 python bench/ab_builds.py BASE_DIR NEW_DIR ...
    # the masked paths: a mask with 70% of the entries live (drawn at random)
    python bench/ab_builds.py BASE_DIR NEW_DIR --op step --layout rows --live 0.7
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

BENCH = Path(__file__).resolve().parent
OPS = ("pqi", "step", "sums")
DTYPES = ("float32", "bfloat16", "float16", "float64")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", nargs="?", help="directory holding the base build's sap_kernels")
    parser.add_argument("new", nargs="?", help="directory holding the new build's sap_kernels")
    parser.add_argument(
        "--op", choices=OPS, default="pqi", help="segmented_pqi, sap_step or segmented_power_sums"
    )
    parser.add_argument("--layout", default="ragged", help="global, rows or ragged")
    parser.add_argument("--n", default="1e6", help="buffer size")
    parser.add_argument("--pq", default="0.5:1", help="exponents p:q")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="the params' dtype")
    parser.add_argument(
        "--live",
        type=float,
        default=None,
        help="with a mask: the fraction of entries live (each drawn at random; 1: all live)",
    )
    parser.add_argument("--calls", type=int, default=20, help="calls per round and build")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--stat", choices=("min", "median"), default="min", help="what a round reports of its calls"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.worker and (args.base is None or args.new is None):
        parser.error("the base and new build directories are required")
    return args


def worker(args: argparse.Namespace) -> None:
    """Builds the case, says which package it runs and its output's digest, then times one
    round of calls per line read from stdin."""
    sys.path.insert(0, str(BENCH))
    import torch
    from layouts import make_buffer, make_layout, make_live_mask, parse_size
    from timing import timed

    import sap_kernels

    n = parse_size(args.n)
    p, q = (float(v) for v in args.pq.split(":"))
    layout = make_layout(args.layout, n)
    params = make_buffer(n, dtype=getattr(torch, args.dtype))
    mask_out = torch.empty(n, dtype=torch.bool)
    mask = None if args.live is None else make_live_mask(n, args.live)
    segments = layout.segments

    def call() -> torch.Tensor:
        if args.op == "step":
            return sap_kernels.sap_step(params, segments, p, q, mask, out=mask_out).mask
        if args.op == "sums":
            sums = sap_kernels.segmented_power_sums(params, segments, p, q, mask)
            return torch.cat([sums.scale, sums.sum_p, sums.sum_q, sums.count.double()])
        return sap_kernels.segmented_pqi(params, segments, p, q, mask)

    digest = hashlib.sha256(call().numpy().tobytes()).hexdigest()[:16]
    print("ready", digest, Path(sap_kernels.__file__).parent, flush=True)
    for _ in sys.stdin:
        times = [timed(call)[0] for _ in range(args.calls)]
        print(min(times) if args.stat == "min" else statistics.median(times), flush=True)


class Worker(NamedTuple):
    process: subprocess.Popen
    digest: str  # of the output of its first call
    package: str  # the sap_kernels directory it imported


def start_worker(build_dir: str, argv: list[str]) -> Worker:
    env = dict(os.environ, PYTHONPATH=str(Path(build_dir).resolve()))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as report.py: idle workers sleep
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    words = process.stdout.readline().split()
    if len(words) != 3 or words[0] != "ready":
        raise RuntimeError(f"the worker for {build_dir} did not start")
    _, digest, package = words
    if Path(package).parent != Path(build_dir).resolve():
        process.kill()
        raise RuntimeError(f"{build_dir} holds no sap_kernels package: the worker ran {package}")
    return Worker(process, digest, package)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    worker_argv = [
        f"--op={args.op}",
        f"--layout={args.layout}",
        f"--n={args.n}",
        f"--pq={args.pq}",
        f"--dtype={args.dtype}",
        *([f"--live={args.live}"] if args.live is not None else []),
        f"--calls={args.calls}",
        f"--stat={args.stat}",
    ]
    builds = {"base": args.base, "new": args.new}
    workers = {name: start_worker(path, worker_argv) for name, path in builds.items()}
    times: dict[str, list[float]] = {name: [] for name in builds}
    for round_index in range(args.rounds):
        order = ("base", "new") if round_index % 2 == 0 else ("new", "base")
        for name in order:
            process = workers[name].process
            process.stdin.write("go\n")
            process.stdin.flush()
            times[name].append(float(process.stdout.readline()))
    for worker_process in workers.values():
        worker_process.process.stdin.close()
        worker_process.process.wait()

    n = float(args.n)
    ratios = sorted(new / base for base, new in zip(times["base"], times["new"]))
    print(
        f"{args.op} {args.layout} {args.dtype} n={args.n} (p, q)={args.pq}, "
        f"{args.rounds} rounds of {args.calls} calls ({args.stat} of each round)"
    )
    for name in builds:
        print(
            f"  {name}: {workers[name].package}: {1e9 * statistics.median(times[name]) / n:.3f} "
            "ns an entry (median of rounds)"
        )
    print(
        f"  new / base: median {statistics.median(ratios):.3f}, rounds "
        f"{ratios[0]:.3f}-{ratios[-1]:.3f}"
    )
    same = workers["base"].digest == workers["new"].digest
    print(f"  outputs {'the same bit for bit' if same else 'differ'}")


if __name__ == "__main__":
    main()
