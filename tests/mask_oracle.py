"""Helpers of the mask tests: per-segment counts of a bool mask, an oracle for top-k masks that
is independent of sap_kernels.reference, an equality check that reports the first
mismatching entries with their segment and magnitude, and a check against the reference."""

from __future__ import annotations

import torch

import sap_kernels as sk
from sap_kernels import reference


def per_segment_counts(flags: torch.Tensor | None, offsets: torch.Tensor) -> torch.Tensor:
    """Number of True entries of flags in each segment (int64 [S]); None counts every entry."""
    offsets = offsets.to("cpu", torch.int64)
    if flags is None:
        return offsets.diff()
    running = torch.cat([torch.zeros(1, dtype=torch.int64), flags.cpu().long().cumsum(0)])
    return running[offsets].diff()


def keep_counts_tensor(k: int | torch.Tensor, num_segments: int) -> torch.Tensor:
    """k as an int64 tensor [S] (an int is the same k for every segment)."""
    if isinstance(k, int):
        return torch.full((num_segments,), k, dtype=torch.int64)
    return k.to("cpu", torch.int64).contiguous()


def sorted_topk(
    params: torch.Tensor, offsets: torch.Tensor, k: int | torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """The top-k mask segment by segment, in plain Python: the live entries sorted by the key
    (-|w|, flat index), the first min(k, d) kept."""
    magnitude = params.detach().cpu().double().abs().tolist()
    live = [True] * len(magnitude) if mask is None else mask.cpu().reshape(-1).tolist()
    bounds = offsets.cpu().tolist()
    keep = keep_counts_tensor(k, len(bounds) - 1).tolist()
    out = [False] * len(magnitude)
    for segment, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        index = [i for i in range(start, end) if live[i]]
        index.sort(key=lambda i: (-magnitude[i], i))
        for i in index[: keep[segment]]:
            out[i] = True
    return torch.tensor(out, dtype=torch.bool)


def assert_masks_equal(
    actual: torch.Tensor,
    expected: torch.Tensor,
    params: torch.Tensor,
    offsets: torch.Tensor,
    what: str,
    max_report: int = 10,
) -> None:
    """Asserts two bool masks are equal entry for entry. On failure the message lists the first
    `max_report` mismatching flat indices with their segment, |w| and both values, and the kept
    counts of the first segments that differ."""
    assert actual.dtype == torch.bool, f"{what}: dtype {actual.dtype}, expected torch.bool"
    assert actual.shape == expected.shape, (
        f"{what}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    )
    actual, expected = actual.cpu(), expected.cpu()
    bad = actual != expected
    if not bool(bad.any()):
        return
    offsets = offsets.to("cpu", torch.int64)
    indices = bad.nonzero().view(-1)
    segments = torch.searchsorted(offsets, indices, right=True) - 1
    magnitude = params.detach().cpu().double().abs()
    lines = [
        f"{what}: {indices.numel()} of {actual.numel()} mask entries differ; "
        f"first {min(max_report, indices.numel())}:"
    ]
    for index, segment in zip(indices[:max_report].tolist(), segments[:max_report].tolist()):
        lines.append(
            f"  [{index}] segment {segment} |w|={magnitude[index].item()!r} "
            f"actual={bool(actual[index])} expected={bool(expected[index])}"
        )
    got_counts = per_segment_counts(actual, offsets)
    want_counts = per_segment_counts(expected, offsets)
    for segment in segments.unique()[:3].tolist():
        lines.append(
            f"  segment {segment} [{offsets[segment]}, {offsets[segment + 1]}): kept "
            f"{int(got_counts[segment])}, expected {int(want_counts[segment])}"
        )
    raise AssertionError("\n".join(lines))


def check_topk_against_reference(
    backend: str,
    params: torch.Tensor,
    segments: sk.Segments,
    kept: float,
    mask: torch.Tensor | None,
    context: str,
) -> None:
    """segmented_topk_mask keeping round(kept * d) of the d live entries of every segment
    equals reference.topk_mask and keeps exactly that many."""
    live = per_segment_counts(mask, segments.offsets)
    k = (live.double() * kept).round().long()
    got = sk.segmented_topk_mask(params, segments, k, mask, backend=backend)
    want = reference.topk_mask(params, segments.offsets, k, mask)
    assert_masks_equal(got, want, params, segments.offsets, f"{backend} {context}")
    assert torch.equal(per_segment_counts(got, segments.offsets), torch.minimum(k, live))
