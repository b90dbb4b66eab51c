"""PyTorch integration: every public op is a torch.library custom op (torch.ops.sap_kernels.*)
with a fake implementation that passes torch.library.opcheck, and composes with
torch.compile(fullgraph=True); backend choice, its environment override and its errors."""

from __future__ import annotations

import pytest
import torch
from conftest import BACKENDS_HERE

import sap_kernels as sk
from sap_kernels._dispatch import BACKEND_ENV

OPS = torch.ops.sap_kernels


def sample_inputs(dtype: torch.dtype = torch.float32) -> tuple:
    """A small segmented buffer; every segment has live entries, so that no PQI is NaN
    (opcheck compares NaN as unequal)."""
    gen = torch.Generator().manual_seed(3)
    params = torch.randn(40, generator=gen).to(dtype)
    offsets = torch.tensor([0, 7, 9, 20, 21, 40])
    mask = torch.rand(40, generator=gen) < 0.7
    mask[offsets[:-1]] = True
    return params, offsets, mask


def opcheck_cases(backend: str) -> list[tuple[str, tuple]]:
    params, offsets, mask = sample_inputs()
    keep = torch.tensor([3, 0, 5, 1, 30])
    pqi = sk.segmented_pqi(params, offsets, 0.5, 1.0, mask, backend="torch")
    count = sk.segmented_power_sums(params, offsets, 0.5, 1.0, mask, backend="torch").count
    out = torch.zeros(40, dtype=torch.bool)
    cases = []
    for m in (None, mask):
        cases += [
            ("segmented_power_sums", (params, offsets, 0.5, 1.0, m, "raise", backend)),
            ("segmented_pqi", (params, offsets, 1.0, 2.0, m, "raise", backend)),
            ("segmented_topk_mask", (params, offsets, keep, m, backend)),
            ("segmented_topk_mask_out", (params, offsets, keep, m, backend, out)),
            ("sap_step", (params, offsets, 0.5, 1.0, m, 0.0, 1.0, 0.9, backend)),
            ("sap_step_out", (params, offsets, 0.5, 1.0, m, 0.0, 1.0, 0.9, backend, out)),
        ]
    cases += [
        ("sap_retain_bound", (pqi, count, 0.5, 1.0, 0.1, backend)),
        ("sap_prune_counts", (pqi, count, 0.5, 1.0, 0.1, 1.0, 0.9, backend)),
        ("apply_mask", (params.clone(), mask)),
    ]
    return cases


@pytest.mark.parametrize("index", range(len(opcheck_cases("torch"))))
def test_opcheck(backend: str, index: int) -> None:
    name, args = opcheck_cases(backend)[index]
    torch.library.opcheck(getattr(OPS, name), args)


def pqi_and_step(params: torch.Tensor, segments: sk.Segments, mask: torch.Tensor, backend: str):
    """A pruning step as a user might compile it: PQI, then the SAP step, then a statistic."""
    pqi = sk.segmented_pqi(params, segments, 0.5, 1.0, mask, backend=backend)
    step = sk.sap_step(params, segments, 0.5, 1.0, mask, backend=backend)
    return pqi, step.mask, step.n_prune, (step.mask.sum() / params.numel()).to(torch.float64)


def test_compiles_fullgraph(backend: str) -> None:
    params, offsets, mask = sample_inputs()
    segments = sk.Segments(offsets)
    torch._dynamo.reset()
    compiled = torch.compile(pqi_and_step, fullgraph=True)
    got = compiled(params, segments, mask, backend)
    want = pqi_and_step(params, segments, mask, backend)
    for a, b in zip(got, want):
        assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def test_compiles_fullgraph_with_raw_offsets(backend: str) -> None:
    """Raw offsets need no Segments: the op checks their values at run time."""
    params, offsets, _ = sample_inputs()
    torch._dynamo.reset()

    def pqi_of(x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        return sk.segmented_pqi(x, o, 1.0, 2.0, backend=backend) * 2

    compiled = torch.compile(pqi_of, fullgraph=True)
    want = pqi_of(params, offsets)
    assert torch.equal(compiled(params, offsets).nan_to_num(), want.nan_to_num())
    bad = torch.tensor([0, 9, 3, 20, 21, 40])
    with pytest.raises(ValueError, match="^segmented_pqi: offsets must be non-decreasing"):
        compiled(params, bad)


def test_compiled_out_and_apply_mask() -> None:
    """The mutating ops (out=, apply_mask) keep their meaning under torch.compile."""
    params, offsets, _ = sample_inputs()
    segments = sk.Segments(offsets)
    torch._dynamo.reset()

    def prune(x: torch.Tensor, out: torch.Tensor, step_out: torch.Tensor) -> torch.Tensor:
        sk.segmented_topk_mask(x, segments, 2, out=out)
        n_prune = sk.sap_step(x, segments, 0.5, 1.0, out=step_out).n_prune
        return sk.apply_mask(x, out), n_prune

    x, out, step_out = (
        params.clone(),
        torch.zeros(40, dtype=torch.bool),
        torch.zeros(40, dtype=torch.bool),
    )
    _, n_prune = torch.compile(prune, fullgraph=True)(x, out, step_out)
    want_mask = sk.segmented_topk_mask(params, segments, 2)
    want_step = sk.sap_step(params, segments, 0.5, 1.0)
    assert torch.equal(out, want_mask)
    assert torch.equal(step_out, want_step.mask) and torch.equal(n_prune, want_step.n_prune)
    assert torch.equal(x, torch.where(want_mask, params, 0.0))


def test_environment_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    params, offsets, _ = sample_inputs(torch.float64)
    monkeypatch.setenv(BACKEND_ENV, "torch")
    via_env = sk.segmented_power_sums(params, offsets, 0.7, 1.3)
    torch_sums = sk.segmented_power_sums(params, offsets, 0.7, 1.3, backend="torch")
    assert all(torch.equal(a, b) for a, b in zip(via_env, torch_sums))
    monkeypatch.setenv(BACKEND_ENV, "gpu")
    with pytest.raises(ValueError, match="^segmented_pqi: backend must be one of"):
        sk.segmented_pqi(params, offsets, 0.7, 1.3)


@pytest.mark.skipif("cpu" not in BACKENDS_HERE, reason="needs the compiled extension")
def test_default_on_cpu_is_compiled_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    from sap_kernels._dispatch import default_backend

    assert default_backend(torch.device("cpu")) == "cpu"


def test_gpu_backends_are_opt_in_until_they_have_run_on_a_gpu() -> None:
    """The default for CUDA tensors is the reference while the GPU kernels are unproven."""
    from sap_kernels._dispatch import default_backend

    assert default_backend(torch.device("cuda")) == "torch"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors on a machine without GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gpu_backend_on_cpu_tensors_is_clear_error(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    params, offsets, _ = sample_inputs()
    with pytest.raises(RuntimeError) as info:
        sk.sap_step(params, offsets, 0.5, 1.0, backend=backend)
    message = str(info.value)
    assert message.startswith(f"sap_step: backend '{backend}' is not available here: ")
    assert "CUDA tensors" in message


def test_backend_must_be_str() -> None:
    params, offsets, _ = sample_inputs()
    with pytest.raises(TypeError, match="^segmented_pqi: backend must be a str or None, got int"):
        sk.segmented_pqi(params, offsets, 0.5, 1.0, backend=3)


@pytest.mark.skipif(not sk.native_has_cuda(), reason="the extension was built without CUDA")
def test_cuda_kernels_are_built_in() -> None:
    """A build with nvcc carries the CUDA entry points (run here only where a GPU is)."""
    from sap_kernels._native import native

    extension = native("test")
    for name in ("power_sums_cuda", "topk_mask_cuda", "sap_step_cuda", "retain_bound_cuda"):
        assert callable(getattr(extension, name)), name
    assert extension.power_sums_cuda_workspace(10**6, 1000, 0, 1.0) > 0
