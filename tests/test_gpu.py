"""The GPU backends at their real sizes, on a GPU (skipped without one): buffers of millions of
entries, so that the combine of the power sums runs several levels, and segments just past the
sizes where the selection changes kind (a tile: 2048 entries; one block: 65536). PQI against the
float64 reference, masks bit for bit against the reference's, sap_step against the composition
of the separate ops on the same backend."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close_report, pqi_atol
from mask_oracle import assert_masks_equal, per_segment_counts

import sap_kernels as sk
from sap_kernels import reference

GPU_BACKENDS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            not torch.cuda.is_available() or (name == "cuda" and not sk.native_has_cuda()),
            reason="needs a CUDA GPU (and, for 'cuda', the extension built with nvcc)",
        ),
    )
    for name in ("cuda", "triton")
]


def lengths_of(layout: str, n: int) -> list[int]:
    if layout == "global":
        return [n]
    if layout == "rows":
        return [1000] * (n // 1000)
    if layout == "past the sizes":
        return [2047, 2048, 2049, 65535, 65536, 65537, 300_001, 0, 1] * (n // 1_000_000)
    if layout == "tiny":
        generator = torch.Generator().manual_seed(1)
        return torch.randint(0, 20, (n // 10,), generator=generator).tolist()
    generator = torch.Generator().manual_seed(2)  # ragged
    return (torch.randn(n // 90, generator=generator) + 4).exp().round().long().tolist()


LAYOUTS = ("global", "rows", "past the sizes", "tiny", "ragged")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_large_buffers(backend: str, layout: str, dtype: torch.dtype) -> None:
    seg = sk.Segments.from_lengths(lengths_of(layout, 5_000_000))
    generator = torch.Generator().manual_seed(4)
    params = torch.randn(seg.numel, generator=generator).to(dtype)
    params[::7] = params[::7].abs().round()  # ties
    mask = torch.rand(seg.numel, generator=generator) < 0.8
    gpu, gpu_mask = params.cuda(), mask.cuda()
    for p, q in ((0.5, 1.0), (0.7, 1.3)):
        got = sk.segmented_pqi(gpu, seg, p, q, gpu_mask, backend=backend).cpu()
        want = reference.pqi(params, seg.offsets, p, q, mask)
        assert_close_report(got, want, 0.0, pqi_atol(dtype, p, q, backend), f"{backend} pqi")
    live = per_segment_counts(mask, seg.offsets)
    for keep in (live // 3, live - 1, torch.zeros_like(live) + 5):
        got = sk.segmented_topk_mask(gpu, seg, keep.cuda(), gpu_mask, backend=backend).cpu()
        want = reference.topk_mask(params, seg.offsets, keep, mask)
        assert_masks_equal(got, want, params, seg.offsets, f"{backend} {layout} topk")
    step = sk.sap_step(gpu, seg, 0.5, 1.0, gpu_mask, backend=backend)
    pqi = sk.segmented_pqi(gpu, seg, 0.5, 1.0, gpu_mask, backend=backend)
    assert torch.equal(step.pqi.nan_to_num(), pqi.nan_to_num()), "sap_step PQI != segmented_pqi"
    count = sk.segmented_power_sums(gpu, seg, 0.5, 1.0, gpu_mask, backend=backend).count
    n_prune = sk.sap_prune_counts(pqi, count, 0.5, 1.0, backend=backend)
    assert torch.equal(step.count, count) and torch.equal(step.n_prune, n_prune)
    composed = sk.segmented_topk_mask(gpu, seg, count - n_prune, gpu_mask, backend=backend)
    assert torch.equal(step.mask, composed), "sap_step mask != the composed ops' mask"


@pytest.mark.parametrize("values", ["normal", "spread over binades"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_long_segments_by_candidates(backend: str, dtype: torch.dtype, values: str) -> None:
    """Segments selected by every tile they cover (past 65536 entries) or by one block / program
    (16384, 60000: past the on-chip room), with continuous values (no ties), so that their last
    rounds read only the candidates left: from the third round on (normal values) or the second
    (values spread over many binades, or a threshold in the top binade)."""
    seg = sk.Segments.from_lengths([3_000_000, 16_384, 65_537, 60_000, 1_000_000])
    generator = torch.Generator().manual_seed(6)
    params = torch.randn(seg.numel, generator=generator, dtype=torch.float64)
    if values != "normal":
        params = (8 * params).exp()
    params = params.to(dtype)
    mask = torch.rand(seg.numel, generator=generator) < 0.9
    live = per_segment_counts(mask, seg.offsets)
    for keep in (live // 2, live // 50, live - 10, torch.ones_like(live)):
        got = sk.segmented_topk_mask(params.cuda(), seg, keep.cuda(), mask.cuda(),
                                     backend=backend).cpu()  # fmt: skip
        want = reference.topk_mask(params, seg.offsets, keep, mask)
        assert_masks_equal(got, want, params, seg.offsets, f"{backend} {values} topk")


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_segment_past_two_to_the_32(backend: str) -> None:
    """One bfloat16 segment of 2^32 + 2^20 entries, nearly all of them equal, so that one bin of
    its histograms counts past 2^32 (32-bit counts would wrap): the largest entries (at the end)
    and the first ties in index order are kept, and the live count is right."""
    if torch.cuda.get_device_properties(0).total_memory < 40 * 2**30:
        pytest.skip("needs 40 GiB of GPU memory")
    n, top, ties_kept = 2**32 + 2**20, 1000, 12_345
    params = torch.ones(n, dtype=torch.bfloat16, device="cuda")
    params[n - top :] = 2.0
    seg = sk.Segments.from_lengths([n])
    count = sk.segmented_power_sums(params, seg, 1.0, 2.0, backend=backend).count
    assert int(count[0]) == n
    keep = torch.tensor([top + ties_kept])
    got = sk.segmented_topk_mask(params, seg, keep.cuda(), backend=backend)
    assert bool(got[:ties_kept].all()) and bool(got[n - top :].all())
    assert int(got.sum()) == top + ties_kept
