"""Distributed sap_step against gathering the weights on one rank: time and bytes sent, on local
processes (gloo), for a float32 buffer cut into equal contiguous shards.

    PYTHONPATH=. python bench/report_distributed.py [--n 1e7] [--worlds 2,3,4] [--rounds 5]

The gather baseline sends every shard (values and mask) to rank 0, runs sap_step there and
scatters the masks back. Bytes are those the ranks hand to the collectives (tensors' bytes;
pickled objects' size for all_gather_object), summed over the ranks. Times are the slowest
rank's, medians of --rounds. Writes distributed.md / .csv to --out and prints the table.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import layouts  # noqa: E402
import render  # noqa: E402

import sap_kernels as sk  # noqa: E402
from sap_kernels import distributed as skd  # noqa: E402

SENT = {"bytes": 0}


def _counting(collective, size_of):
    def counted(*args, **kwargs):
        SENT["bytes"] += size_of(*args, **kwargs)
        return collective(*args, **kwargs)

    return counted


def count_collectives() -> None:
    """Wraps the collectives the ops use so that SENT counts what this rank hands them."""
    tensor_bytes = lambda tensor, *a, **k: tensor.numel() * tensor.element_size()  # noqa: E731
    dist.all_reduce = _counting(dist.all_reduce, tensor_bytes)
    dist.broadcast = _counting(dist.broadcast, tensor_bytes)
    dist.all_gather_object = _counting(
        dist.all_gather_object, lambda out, obj, *a, **k: len(pickle.dumps(obj))
    )
    dist.gather = _counting(dist.gather, tensor_bytes)
    dist.scatter = _counting(
        dist.scatter,
        lambda out, scatter_list=None, *a, **k: sum(
            t.numel() * t.element_size() for t in scatter_list or []
        ),
    )


def gather_step(local, local_mask, segments, cuts, rank, world):
    """The baseline: everything to rank 0 (gloo's gather takes equal sizes: shards padded to
    the largest), sap_step there, the masks back."""
    sizes = [cuts[r + 1] - cuts[r] for r in range(world)]
    largest = max(sizes)
    padded = torch.zeros(largest)
    padded[: local.numel()] = local
    padded_mask = torch.zeros(largest, dtype=torch.bool)
    padded_mask[: local.numel()] = local_mask
    values = [torch.empty(largest) for _ in sizes] if rank == 0 else None
    masks = [torch.empty(largest, dtype=torch.bool) for _ in sizes] if rank == 0 else None
    dist.gather(padded, values, dst=0)
    dist.gather(padded_mask, masks, dst=0)
    out = torch.empty(largest, dtype=torch.bool)
    pieces = None
    if rank == 0:
        whole = torch.cat([v[:size] for v, size in zip(values, sizes)])
        whole_mask = torch.cat([m[:size] for m, size in zip(masks, sizes)])
        step = sk.sap_step(whole, segments, 0.5, 1.0, whole_mask)
        pieces = [torch.zeros(largest, dtype=torch.bool) for _ in sizes]
        for piece, part in zip(pieces, step.mask.split(sizes)):
            piece[: part.numel()] = part
    dist.scatter(out, pieces, src=0)
    return out[: local.numel()]


def worker(rank, world, init_file, n, layout_name, rounds, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    count_collectives()
    params = layouts.make_buffer(n)
    segments = layouts.make_layout(layout_name, n).segments
    mask = torch.ones(n, dtype=torch.bool)
    cuts = [n * r // world for r in range(world + 1)]
    local, local_mask = (
        params[cuts[rank] : cuts[rank + 1]].clone(),
        mask[cuts[rank] : cuts[rank + 1]],
    )
    timings = {}
    for name in ("distributed", "gather"):
        times, sent = [], []
        for _ in range(rounds + 1):  # the first is a warm-up
            dist.barrier()
            SENT["bytes"], began = 0, time.perf_counter()
            if name == "distributed":
                out = skd.sap_step_distributed(
                    local, segments, 0.5, 1.0, cuts[rank], local_mask
                ).mask
            else:
                out = gather_step(local, local_mask, segments, cuts, rank, world)
            times.append(time.perf_counter() - began)
            sent.append(SENT["bytes"])
        timings[name] = (times[1:], sent[-1], out)
    assert torch.equal(timings["distributed"][2], timings["gather"][2]), "the masks differ"
    gathered = [None] * world
    dist.all_gather_object(gathered, {k: (v[0], v[1]) for k, v in timings.items()})
    if rank == 0:
        results.update({"gathered": gathered})
    dist.destroy_process_group()


def run(world, n, layout_name, rounds) -> list[dict]:
    manager = mp.Manager()
    results = manager.dict()
    with tempfile.TemporaryDirectory() as folder:
        init = os.path.join(folder, "rendezvous")
        mp.spawn(worker, args=(world, init, n, layout_name, rounds, results), nprocs=world)
    gathered = results["gathered"]
    rows = []
    for name in ("distributed", "gather"):
        slowest = [max(rank[name][0][i] for rank in gathered) for i in range(rounds)]
        sent = sum(rank[name][1] for rank in gathered)
        rows.append({"ranks": world, "layout": layout_name, "method": name,
                     "median ms": round(statistics.median(slowest) * 1e3, 1),
                     "bytes sent": sent, "MiB sent": round(sent / 2**20, 3)})  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=layouts.parse_size, default=layouts.parse_size("1e7"))
    parser.add_argument("--worlds", default="2,3,4")
    parser.add_argument("--layouts", default="rows,global")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = parser.parse_args()
    rows = [row for world in map(int, args.worlds.split(",")) for name in args.layouts.split(",")
            for row in run(world, args.n, name, args.rounds)]  # fmt: skip
    head = (
        f"torch {torch.__version__}, gloo on {os.cpu_count()} CPU cores, float32 n = "
        f"{args.n:.0e}, (p, q) = (0.5, 1), {args.rounds} rounds; masks checked equal"
    )
    print(render.write_rows(rows, head, Path(args.out), "distributed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
