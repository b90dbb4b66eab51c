"""Backend choice: an explicit backend=, else $SAP_KERNELS_BACKEND, else the default for the
device. A backend that cannot run here is a clear error, never a silent fallback."""

from __future__ import annotations

import os

import torch

from ._native import native_available, native_has_cuda

BACKENDS = ("cpu", "cuda", "triton", "torch")
BACKEND_ENV = "SAP_KERNELS_BACKEND"

# The default per device type, best first. On the CPU the C++ kernels are 25-700x faster than
# the reference (bench/results/zen4/cpu_pqi.md). On CUDA GPUs the reference, for now: the "cuda" and
# "triton" kernels have not yet run on a GPU (README, "Backends"), so they are opt-in
# (backend= or $SAP_KERNELS_BACKEND) until the GPU test suites and benchmark have passed there.
DEFAULT_ORDER = {"cpu": ("cpu", "torch"), "cuda": ("torch",)}


def triton_available() -> bool:
    """True when the triton package imports."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_interpreted() -> bool:
    """Whether Triton kernels run in its interpreter (TRITON_INTERPRET=1), which takes CPU
    tensors: how the Triton kernels are tested on machines without a GPU."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def unavailable_reason(backend: str, device: torch.device) -> str | None:
    """Why backend cannot run on tensors of device here, or None when it can."""
    if backend == "cpu" and device.type != "cpu":
        return f"it needs tensors on the CPU, got device {device}"
    if backend == "cuda":
        if device.type != "cuda":
            return f"it needs CUDA tensors, got device {device}"
        if not native_available() or not native_has_cuda():
            return (
                "sap_kernels was built without its CUDA kernels (rebuild with nvcc on the PATH, "
                "or SAP_KERNELS_CUDA=ON to make a missing nvcc an error)"
            )
    if backend == "triton":
        if not triton_available():
            return "the triton package is not installed (pip install triton)"
        if device.type == "cpu" and not triton_interpreted():
            return "Triton kernels need CUDA tensors (or CPU tensors with TRITON_INTERPRET=1)"
        if device.type not in ("cpu", "cuda"):
            return f"Triton kernels need CUDA tensors, got device {device}"
    return None


def default_backend(device: torch.device) -> str:
    """The first backend of DEFAULT_ORDER that can run on device ("torch" runs anywhere)."""
    for backend in DEFAULT_ORDER.get(device.type, ("torch",)):
        if backend == "cpu" and not native_available():
            continue
        if unavailable_reason(backend, device) is None:
            return backend
    return "torch"


def resolve_backend(op: str, backend: str | None, device: torch.device) -> str:
    """The backend that runs op for tensors on device; a clear error when it cannot run here."""
    if backend is None:
        backend = os.environ.get(BACKEND_ENV) or None
    if backend is None:
        return default_backend(device)
    if backend not in BACKENDS:
        raise ValueError(f"{op}: backend must be one of {BACKENDS} or None, got {backend!r}")
    reason = unavailable_reason(backend, device)
    if reason is not None:
        raise RuntimeError(f"{op}: backend {backend!r} is not available here: {reason}")
    return backend


def check_backend_argument(op: str, backend: object) -> str | None:
    """backend as a custom op takes it (a str or None); its value is checked by the op."""
    if backend is not None and not isinstance(backend, str):
        raise TypeError(f"{op}: backend must be a str or None, got {type(backend).__name__}")
    return backend
