"""Loads the compiled extension sap_kernels._C; the package imports without it."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from types import ModuleType

import torch

try:
    from . import _C as _extension
except ImportError as error:  # not built: the "torch" backend still works
    _extension = None
    _import_error: ImportError | None = error
    if not isinstance(error, ModuleNotFoundError):  # built, but broken: say so now
        warnings.warn(
            f"sap_kernels: the compiled extension failed to load ({error}); only the 'torch' "
            "backend is available. Rebuild with `pip install .`.",
            RuntimeWarning,
            stacklevel=2,
        )
else:
    _import_error = None

CPU_ISA_ENV = "SAP_KERNELS_CPU_ISA"


def cpu_isas() -> list[str]:
    """The instruction sets whose copy of the CPU kernels this build and CPU can run, worst to
    best: "baseline", then on x86-64 "x86-64-v3" (AVX2, FMA) and "x86-64-v4" (AVX-512) where
    the CPU has them. Empty without the compiled extension."""
    return [] if _extension is None else list(_extension.cpu_isas())


def cpu_isa() -> str | None:
    """The instruction set whose copy of the CPU kernels runs (by default the best of
    cpu_isas(); $SAP_KERNELS_CPU_ISA or set_cpu_isa choose another). None without the
    compiled extension."""
    return None if _extension is None else str(_extension.cpu_isa())


def set_cpu_isa(name: str) -> None:
    """Runs the CPU kernels' copy for instruction set `name` (one of cpu_isas()) from now on,
    in every thread: for tests and benchmarks that compare the copies.

    Raises:
        ValueError: `name` is not one of cpu_isas(), or the extension is not built.
    """
    if _extension is None:
        raise ValueError(
            f"set_cpu_isa: needs the compiled extension sap_kernels._C ({_import_error})"
        )
    _extension.set_cpu_isa(name)


@contextlib.contextmanager
def using_cpu_isa(name: str) -> Iterator[None]:
    """Runs the CPU kernels' copy for `name` inside the block, the one active before after it
    (tests and benchmarks that compare the copies).

    Raises:
        ValueError: as set_cpu_isa.
    """
    active = cpu_isa()
    set_cpu_isa(name)
    try:
        yield
    finally:
        set_cpu_isa(active)


def _apply_cpu_isa_env() -> None:
    requested = os.environ.get(CPU_ISA_ENV)
    if _extension is None or not requested:
        return
    try:
        set_cpu_isa(requested)
    except ValueError as error:  # a setting, not a call: say so, keep the best copy
        warnings.warn(f"sap_kernels: ${CPU_ISA_ENV} ignored: {error}", RuntimeWarning, stacklevel=3)


_apply_cpu_isa_env()


def native_available() -> bool:
    """True when the compiled extension sap_kernels._C is importable."""
    return _extension is not None


def native_has_cuda() -> bool:
    """True when the compiled extension holds the CUDA kernels (built with nvcc)."""
    return _extension is not None and bool(getattr(_extension, "has_cuda", False))


def native(op: str) -> ModuleType:
    """The extension module, or an ImportError that says how to build it."""
    if _extension is None:
        raise ImportError(
            f"{op}: backend 'cpu' needs the compiled extension sap_kernels._C, which did not "
            f"load ({_import_error}). Build it from the source tree with `pip install .` "
            "(or `pip install -e .`): it needs a C++17 compiler with OpenMP and CMake >= 3.18. "
            "backend='torch' works without it."
        )
    return _extension


# From this size on a fresh mask is worth backing with huge pages (whole 2 MiB pages inside it).
HUGE_PAGE_MIN_BYTES = 1 << 23


def empty_mask(numel: int) -> torch.Tensor:
    """An uninitialised CPU bool tensor for a native kernel to write a mask into.

    A large one is advised onto transparent huge pages (Linux, where enabled) before its first
    write: a fresh 1e8-entry mask otherwise costs ~25,000 page faults, which take longer than
    the kernels that fill it.
    """
    out = torch.empty(numel, dtype=torch.bool)
    if _extension is not None and numel >= HUGE_PAGE_MIN_BYTES:
        _extension.advise_huge_pages(out.data_ptr(), numel)
    return out
