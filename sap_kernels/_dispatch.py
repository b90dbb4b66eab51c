"""Backend choice: an explicit backend=, else $SAP_KERNELS_BACKEND, else the fastest here."""

from __future__ import annotations

import os

import torch

from ._native import native_available

BACKENDS = ("cpu", "cuda", "triton", "torch")
BACKEND_ENV = "SAP_KERNELS_BACKEND"


def resolve_backend(op: str, backend: str | None, device: torch.device) -> str:
    """The backend that runs op for tensors on device; a clear error when it cannot run here."""
    if backend is None:
        backend = os.environ.get(BACKEND_ENV) or None
    if backend is None:
        return "cpu" if device.type == "cpu" and native_available() else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"{op}: backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "cpu" and device.type != "cpu":
        raise ValueError(f"{op}: backend 'cpu' needs tensors on the CPU, got device {device}")
    if backend in ("cuda", "triton"):
        raise RuntimeError(
            f"{op}: backend {backend!r} is not available in this version of sap_kernels; "
            "use 'cpu' or 'torch'"
        )
    return backend
