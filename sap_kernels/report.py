"""The PQI report: per-layer and per-neuron PQ Index and SAP prune counts of a model."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import torch
from torch import nn

from ._dispatch import resolve_backend
from .pqi import segmented_pqi
from .sap_counts import sap_prune_counts
from .segments import Segments


def demo_model(seed: int = 0) -> nn.Module:
    """A small convolutional network with a deterministic random initialisation."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(32 * 16, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def prunable_weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The weights the paper prunes: every parameter with more than one dimension."""
    return [(name, param.detach()) for name, param in model.named_parameters() if param.dim() > 1]


def scope_statistics(
    buffer: torch.Tensor, segments: Segments, args: argparse.Namespace
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pqi, live count, prune count) per segment (no mask: every entry is live)."""
    pqi = segmented_pqi(buffer, segments, args.p, args.q, backend=args.backend)
    count = segments.lengths()
    prune = sap_prune_counts(
        pqi, count, args.p, args.q, args.eta_r, args.gamma, args.beta, backend=args.backend
    )
    return pqi, count, prune


def format_report(model: nn.Module, args: argparse.Namespace) -> str:
    weights = prunable_weights(model)
    names = [name for name, _ in weights]
    shapes = [tuple(weight.shape) for _, weight in weights]
    buffer = torch.cat([weight.reshape(-1) for _, weight in weights]).to(args.dtype)
    layer = scope_statistics(buffer, Segments.for_shapes(shapes, "layer"), args)
    neuron = scope_statistics(buffer, Segments.for_shapes(shapes, "neuron"), args)
    whole = scope_statistics(buffer, Segments.for_shapes(shapes, "global"), args)
    lines = [
        f"PQ Index report (p = {args.p}, q = {args.q}, eta_r = {args.eta_r}, "
        f"gamma = {args.gamma}, beta = {args.beta}, {buffer.dtype}, {buffer.numel()} weights, "
        f"backend {resolve_backend('report', args.backend, buffer.device)!r})",
        "",
        f"{'layer':<12} {'shape':<18} {'weights':>8} {'PQI':>8} {'prune':>7} "
        f"{'neuron PQI min / median / max':>31} {'neuron prune':>13}",
    ]
    first_row = 0
    for index, (name, shape) in enumerate(zip(names, shapes)):
        rows = shape[0]
        neuron_pqi = neuron[0][first_row : first_row + rows]
        neuron_prune = int(neuron[2][first_row : first_row + rows].sum())
        first_row += rows
        spread = (
            f"{neuron_pqi.min().item():.4f} / {neuron_pqi.median().item():.4f} / "
            f"{neuron_pqi.max().item():.4f}"
        )
        lines.append(
            f"{name:<12} {str(shape):<18} {int(layer[1][index]):>8} "
            f"{layer[0][index].item():>8.4f} {int(layer[2][index]):>7} {spread:>31} "
            f"{neuron_prune:>13}"
        )
    lines.append(
        f"{'global':<12} {'':<18} {int(whole[1][0]):>8} {whole[0][0].item():>8.4f} "
        f"{int(whole[2][0]):>7}"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sap_kernels",
        description="PQ Index and SAP prune counts, per layer and per neuron, of a small model.",
    )
    parser.add_argument("--p", type=float, default=0.5, help="exponent p (default 0.5)")
    parser.add_argument("--q", type=float, default=1.0, help="exponent q > p (default 1.0)")
    parser.add_argument("--eta-r", type=float, default=0.0, help="eta_r >= 0 (default 0)")
    parser.add_argument("--gamma", type=float, default=1.0, help="gamma >= 0 (default 1)")
    parser.add_argument("--beta", type=float, default=0.9, help="beta in [0, 1] (default 0.9)")
    parser.add_argument("--backend", choices=["cpu", "torch"], default=None)
    parser.add_argument(
        "--dtype", choices=["float32", "float64", "float16", "bfloat16"], default="float32"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.dtype = getattr(torch, args.dtype)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        text = format_report(demo_model(args.seed), args)
    except (ValueError, TypeError, ImportError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        print(text)
        print(f"\n(computed in {time.perf_counter() - start:.3f} s)")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left early (`| head`): not an error of ours
        sys.stdout = open(os.devnull, "w")  # keeps the flush at exit quiet
    return 0


if __name__ == "__main__":  # python -m sap_kernels.report
    sys.exit(main())
