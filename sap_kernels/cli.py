"""sap-prune (also python -m sap_kernels): the main job. Trains an MLP on the digits that ship
with the package and prunes it iteratively with SAP, lottery ticket and one shot (the paper's
Figure 2 in small), then prints a table per iteration and writes a CSV and a PNG figure.

    sap-prune [--method all] [--scope global] [--p 0.5] [--q 1] [--iterations 30] [--epochs 10]
              [--out sap_prune_out] ...
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ._dispatch import BACKENDS, resolve_backend
from .experiment import Row, Settings, method_label, run
from .figure import Panel, line_chart
from .sap import METHODS
from .segments import SCOPES


def _fraction(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path]:
    parser = argparse.ArgumentParser(prog="sap-prune", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--method", default="all", help=f"all, or a comma-separated list of {', '.join(METHODS)}")
    add("--scope", default="global", choices=SCOPES, help="pruning scope (default global)")
    add("--p", type=_fraction, default=0.5, help="SAP's exponent p (default 0.5)")
    add("--q", type=_fraction, default=1.0, help="SAP's exponent q > p (default 1)")
    add("--eta-r", type=_fraction, default=0.0, help="SAP's eta_r >= 0 (default 0)")
    add("--gamma", type=_fraction, default=1.0, help="SAP's gamma >= 0 (default 1)")
    add("--beta", type=_fraction, default=0.9, help="SAP's beta in [0, 1] (default 0.9)")
    add("--ratio", type=_fraction, default=0.2, help="baselines' prune ratio P (default 0.2)")
    add("--iterations", type=int, default=30, help="pruning iterations T (default 30)")
    add("--epochs", type=int, default=10, help="training epochs per iteration (default 10)")
    add("--device", default="cpu", help="torch device (default cpu)")
    add("--backend", default=None, choices=BACKENDS, help="sap_kernels backend (default: auto)")
    add("--out", default="sap_prune_out", help="folder for the CSV and the PNG")
    add("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    methods = METHODS if args.method == "all" else tuple(args.method.split(","))
    unknown = [method for method in methods if method not in METHODS]
    checks = [
        (not unknown, f"--method: unknown {unknown}; choose from all, {', '.join(METHODS)}"),
        (0 < args.p < args.q, f"--p, --q: need 0 < p < q, got p = {args.p}, q = {args.q}"),
        (args.eta_r >= 0, f"--eta-r: must be >= 0, got {args.eta_r}"),
        (args.gamma >= 0, f"--gamma: must be >= 0, got {args.gamma}"),
        (0 <= args.beta <= 1, f"--beta: must be in [0, 1], got {args.beta}"),
        (0 <= args.ratio <= 1, f"--ratio: must be in [0, 1], got {args.ratio}"),
        (args.iterations >= 0, f"--iterations: must be >= 0, got {args.iterations}"),
        (args.epochs >= 1, f"--epochs: must be >= 1, got {args.epochs}"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)
        resolve_backend("sap-prune", args.backend, device)
    except (RuntimeError, ValueError, AssertionError) as error:  # torch asserts without CUDA
        parser.error(f"--device {args.device} / --backend {args.backend}: {error}")
    settings = Settings(
        methods=methods, scope=args.scope, p=args.p, q=args.q, eta_r=args.eta_r,
        gamma=args.gamma, beta=args.beta, ratio=args.ratio, iterations=args.iterations,
        epochs=args.epochs, seed=args.seed, device=args.device, backend=args.backend,
    )  # fmt: skip
    return settings, Path(args.out)


class ProgressBar:
    """One line on stderr, rewritten in place on a terminal (a line per method elsewhere)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.live = sys.stderr.isatty()

    def __call__(self, method: str, iteration: int) -> None:
        self.done += 1
        filled = round(30 * self.done / self.total)
        line = (
            f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {method} "
            f"iteration {iteration} ({time.monotonic() - self.start:.0f} s)"
        )
        if self.live:
            print("\r" + line, end="\n" if self.done == self.total else "", file=sys.stderr)
        elif self.done == self.total or iteration == 0:
            print(line, file=sys.stderr)


def table(results: dict[str, list[Row]], settings: Settings) -> str:
    """A row per iteration: each method's test accuracy, % weights remaining and global PQI."""
    methods = list(results)
    head = ["iter"] + [f"{method_label(m, settings)}: acc % / remain % / PQI" for m in methods]
    lines = [" | ".join(head), "|".join(["---"] * len(head))]
    for t in range(settings.iterations + 1):
        cells = [str(t)]
        for method in methods:
            row = results[method][t]
            cells.append(
                f"{100 * row.accuracy:5.1f} / {100 * row.remaining:6.2f} / {row.pqi_global:.4f}"
            )
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def write_csv(results: dict[str, list[Row]], path: Path, layer_names: list[str]) -> None:
    """A row per method and iteration; the PQI of each pruned layer in its own column."""
    head = ["method", "iteration", "accuracy", "remaining_percent", "live", "pruned_next"]
    head += ["pqi_global"] + [f"pqi_{name}" for name in layer_names]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(head)
        for method, rows in results.items():
            for row in rows:
                numbers = [f"{row.accuracy:.4f}", f"{100 * row.remaining:.4f}", row.live]
                pqi = [f"{value:.6f}" for value in (row.pqi_global, *row.pqi_layers)]
                writer.writerow([method, row.iteration, *numbers, row.pruned_next, *pqi])


def write_figure(results: dict[str, list[Row]], settings: Settings, path: Path) -> None:
    def lines(value) -> dict:
        return {
            method_label(method, settings): (
                [row.iteration for row in rows],
                [value(row) for row in rows],
            )
            for method, rows in results.items()
        }

    panels = [
        Panel("Accuracy (%)", lines(lambda row: 100 * row.accuracy)),
        Panel("Remaining (%)", lines(lambda row: 100 * row.remaining)),
        Panel("PQ Index", lines(lambda row: row.pqi_global)),
    ]
    line_chart(panels, "pruning iteration", str(path))


def main(argv: Sequence[str] | None = None) -> int:
    settings, out = parse_args(argv)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"sap-prune: MLP 64-{'-'.join(map(str, settings.hidden))}-10 on 1,797 digits (80/20 "
        f"split), {settings.scope} scope, {settings.iterations} iterations of {settings.epochs} "
        f"epochs, device {settings.device}, backend {settings.backend or 'auto'}",
        flush=True,
    )
    began = time.monotonic()
    progress = ProgressBar(len(settings.methods) * (settings.iterations + 1))
    results = run(settings, progress)
    print(table(results, settings))
    from .experiment import mlp  # the names of the pruned layers, for the CSV

    names = [name for name, p in mlp(settings).named_parameters() if p.dim() > 1]
    write_csv(results, out / "sap_prune.csv", names)
    write_figure(results, settings, out / "sap_prune.png")
    print(f"wrote {out / 'sap_prune.csv'} and {out / 'sap_prune.png'} "
          f"({time.monotonic() - began:.0f} s)")  # fmt: skip
    return 0
