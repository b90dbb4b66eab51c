"""Compiles the Triton kernels for a GPU architecture, without a GPU: what the interpreter does
not check (types the compiler refuses, constexpr rules, the launcher's argument binding).

Runs the Triton backend's host code on CPU tensors with every kernel launch replaced by a
compilation to a cubin for the target (Triton ships ptxas), and prints each kernel's registers
and stack from cuobjdump. Run without TRITON_INTERPRET:

    python tests/triton_compile.py [--arch 90] [--quick]

Exits non-zero on the first kernel that does not compile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import JITFunction, create_function_from_signature

COMPILED: dict[tuple, str] = {}


def compile_instead_of_launch(target: GPUTarget):
    """A JITFunction.__getitem__ whose launches compile the kernel for target instead."""
    backend = make_backend(target)
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")

    def getitem(kernel: JITFunction, grid):
        def launch(*args, **kwargs):
            binder = create_function_from_signature(kernel.signature, kernel.params, backend)
            bound, specialization, options = binder(*args, **kwargs)
            options, signature, constexprs, attrs = kernel._pack_args(
                backend, kwargs, bound, specialization, options
            )
            key = (kernel.__name__, str(signature), str(constexprs), str(attrs))
            if key in COMPILED:
                return
            start = time.time()
            source = ASTSource(kernel, signature, constexprs, attrs)
            compiled = triton.compile(source, target=target, options=options.__dict__)
            with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
                cubin.write(compiled.asm["cubin"])
                cubin.flush()
                usage = subprocess.run(
                    [cuobjdump, "-res-usage", cubin.name], capture_output=True, text=True
                ).stdout
            resources = " ".join(
                field for line in usage.splitlines() if "REG:" in line for field in line.split()
                if field.split(":")[0] in ("REG", "STACK", "SHARED")
            )  # fmt: skip
            COMPILED[key] = resources
            print(f"{kernel.__name__:28s} {time.time() - start:5.1f} s  {resources}", flush=True)

        return launch

    return getitem


def exercise(quick: bool) -> None:
    """Every host path of the Triton backend, on CPU tensors."""
    import sap_kernels as sk
    from sap_kernels.power_sums import ValidInputs
    from sap_kernels.triton import config, power_sums, sap_counts, topk_mask

    config.BLOCK_SELECT_MAX = 4 * config.TILE  # the grid-wide selection runs too
    seg = sk.Segments.from_lengths([3, 0, 9000, 7])
    n = seg.numel
    dtypes = (torch.float32, torch.float64)
    if not quick:
        dtypes += (torch.bfloat16, torch.float16)
    pairs = ((0.5, 1.0), (0.7, 1.3), (1.0, 8.0))
    for dtype in dtypes:
        x = torch.randn(n).to(dtype)
        for mask in (None, torch.rand(n) < 0.5):
            if quick and (mask is None) != (dtype == torch.float32):
                continue
            for p, q in pairs:
                inputs = ValidInputs(x, mask, seg.offsets, p, q, "raise", "triton")
                power_sums.run(inputs, want_pqi=True)
                if not quick:
                    power_sums.run(inputs, want_pqi=False)
            out = torch.empty(n, dtype=torch.bool)
            topk_mask.segmented_topk_mask(x, seg.offsets, torch.tensor([1, 0, 2, 3]), mask, out)
    pqi, count = torch.rand(4, dtype=torch.float64), torch.tensor([3, 0, 9000, 7])
    for p, q in pairs:
        sap_counts.prune_counts(pqi, count, p, q, 0.0, 1.0, 0.9)
        sap_counts.prune_counts(pqi, count, p, q, 0.0, 0.0, 0.0)  # bits that fit an int32
        sap_counts.retain_bound_of(pqi, count, p, q, 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80, 90")
    parser.add_argument("--quick", action="store_true", help="fewer dtypes and variants")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("run without TRITON_INTERPRET=1: the interpreter compiles nothing", file=sys.stderr)
        return 2
    JITFunction.__getitem__ = compile_instead_of_launch(GPUTarget("cuda", args.arch, 32))
    exercise(args.quick)
    print(f"{len(COMPILED)} kernels compiled for sm_{args.arch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
