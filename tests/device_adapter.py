"""Runs the CPU-tensor test suites on a GPU backend: while on_device(backend) is active, the
public ops of sap_kernels move their tensor arguments to the GPU (CPU tensors under Triton's
interpreter), call the op there, and bring the results back to the CPU. out= and apply_mask
write back into the caller's CPU tensors, as the ops do in place."""

from __future__ import annotations

import contextlib
import functools

import pytest
import torch

import sap_kernels as sk

# The ops the suites call through `sk.<name>`.
WRAPPED = (
    "segmented_power_sums",
    "segmented_pqi",
    "sap_retain_bound",
    "sap_prune_counts",
    "segmented_topk_mask",
    "sap_step",
    "apply_mask",
)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _to_device(value):
    if isinstance(value, torch.Tensor):
        return value.to(device())
    return value


def _to_host(value):
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # PowerSums, SAPStep
        return type(value)(*(_to_host(item) for item in value))
    return value


def _wrap(name: str, op, backend: str):
    @functools.wraps(op)
    def on_gpu(*args, **kwargs):
        if kwargs.get("backend", backend) != backend and name != "apply_mask":
            return op(*args, **kwargs)
        if name == "apply_mask":
            params, mask = args
            moved = _to_device(params)
            op(moved, _to_device(mask))
            params.copy_(moved.cpu())
            return params
        out = kwargs.pop("out", None)
        moved_args = [_to_device(arg) for arg in args]
        moved_kwargs = {key: _to_device(value) for key, value in kwargs.items()}
        if isinstance(out, torch.Tensor):
            moved_kwargs["out"] = out.to(device())
            result = op(*moved_args, **moved_kwargs)
            out.copy_(moved_kwargs["out"].cpu())
            if isinstance(result, torch.Tensor):
                return out
            # sap_step: an SAPStep whose mask is out
            return type(result)(out, *(_to_host(item) for item in result[1:]))
        if out is not None:
            moved_kwargs["out"] = out  # not a tensor: the op's own error
        return _to_host(op(*moved_args, **moved_kwargs))

    return on_gpu


@contextlib.contextmanager
def on_device(backend: str):
    """Routes the ops' calls with backend=backend (or no backend) through the GPU."""
    with pytest.MonkeyPatch.context() as patch:
        for name in WRAPPED:
            patch.setattr(sk, name, _wrap(name, getattr(sk, name), backend))
        yield
