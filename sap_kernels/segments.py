"""Segments: the CSR cut of a flat parameter buffer into contiguous segments."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch.utils.weak import WeakIdKeyDictionary

SCOPES = ("neuron", "layer", "global")

# Offsets tensors already validated, with the version and the last offset they had then: the
# custom ops check them again only if they changed (an in-place write bumps the version).
_validated: WeakIdKeyDictionary = WeakIdKeyDictionary()


class Segments:
    """S contiguous segments of a flat buffer, given by int64 offsets of length S + 1.

    ``offsets[0] = 0``, non-decreasing, and segment s is ``[offsets[s], offsets[s + 1])``.
    Empty segments are allowed. The offsets are validated once, here.

    Args:
        offsets: 1-D integer tensor (or sequence) of length S + 1.
    """

    def __init__(self, offsets: torch.Tensor | Sequence[int], *, _op: str = "Segments") -> None:
        self.offsets = _validated_offsets(_op, offsets)
        self._numel = int(self.offsets[-1])
        _remember_validated(self.offsets, self._numel)
        self._on_device: dict[torch.device, torch.Tensor] = {}

    @classmethod
    def from_lengths(cls, lengths: torch.Tensor | Sequence[int]) -> Segments:
        """Segments of the given non-negative lengths, laid end to end."""
        lengths = _integer_tensor("Segments.from_lengths", "lengths", lengths)
        if lengths.numel() and int(lengths.min()) < 0:
            raise ValueError(
                f"Segments.from_lengths: lengths must be >= 0, got {int(lengths.min())} "
                f"at index {int(lengths.argmin())}"
            )
        offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=offsets[1:])
        return cls(offsets, _op="Segments.from_lengths")

    @classmethod
    def for_shapes(cls, shapes: Iterable[Sequence[int] | torch.Size], scope: str) -> Segments:
        """Segments of weights of these shapes laid end to end (each flattened, row-major).

        Args:
            shapes: the weights' shapes, in the order they lie in the buffer.
            scope: ``"neuron"`` (one segment per output row: ``weight.view(out, -1)``, so a
                conv's output channel), ``"layer"`` (one per weight) or ``"global"`` (one).
        """
        if scope not in SCOPES:
            raise ValueError(f"Segments.for_shapes: scope must be one of {SCOPES}, got {scope!r}")
        shapes = [tuple(int(size) for size in shape) for shape in shapes]
        sizes = [math.prod(shape) for shape in shapes]
        if scope == "global":
            return cls.from_lengths([sum(sizes)])
        if scope == "layer":
            return cls.from_lengths(sizes)
        pieces = []
        for shape, size in zip(shapes, sizes):
            rows = shape[0] if shape else 1
            row_length = size // rows if rows else 0
            pieces.append(torch.full((rows,), row_length, dtype=torch.int64))
        lengths = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.int64)
        return cls.from_lengths(lengths)

    @property
    def num_segments(self) -> int:
        return self.offsets.numel() - 1

    @property
    def numel(self) -> int:
        """The length of the buffer these segments cut (offsets[-1])."""
        return self._numel

    def lengths(self) -> torch.Tensor:
        return self.offsets.diff()

    def offsets_on(self, device: torch.device) -> torch.Tensor:
        """The offsets on device (copied once, then cached)."""
        if self.offsets.device == device:
            return self.offsets
        if device not in self._on_device:
            copy = self.offsets.to(device)
            _remember_validated(copy, self._numel)
            self._on_device[device] = copy
        return self._on_device[device]

    def __len__(self) -> int:
        return self.num_segments

    def __repr__(self) -> str:
        return f"Segments(num_segments={self.num_segments}, numel={self.numel})"


def offsets_argument(
    op: str, segments: Segments | torch.Tensor, params: torch.Tensor
) -> torch.Tensor:
    """The int64 offsets a custom op takes, on params' device, from a Segments or a 1-D integer
    tensor. Only what needs no look at the values is checked here (so that this traces under
    torch.compile); the op checks the values (`check_offsets`), unless a Segments did."""
    if isinstance(segments, Segments):
        _check_end(op, segments.numel, params.numel())
        return segments.offsets_on(params.device)
    if not isinstance(segments, torch.Tensor):
        raise TypeError(
            f"{op}: segments must be a sap_kernels.Segments or a 1-D int64 offsets tensor, "
            f"got {type(segments).__name__}"
        )
    _check_integer_dtype(op, "offsets", segments)
    if segments.dim() != 1:
        raise ValueError(f"{op}: offsets must be 1-D, got shape {tuple(segments.shape)}")
    return segments.to(device=params.device, dtype=torch.int64)


def check_offsets(op: str, offsets: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Validates the offsets a custom op received for params: int64, 1-D, on params' device,
    then (unless already validated and unchanged since) their values. Returns them contiguous."""
    if not isinstance(offsets, torch.Tensor) or offsets.dtype != torch.int64:
        got = offsets.dtype if isinstance(offsets, torch.Tensor) else type(offsets).__name__
        raise TypeError(f"{op}: offsets must be an int64 tensor, got {got}")
    if offsets.dim() != 1:
        raise ValueError(f"{op}: offsets must be 1-D, got shape {tuple(offsets.shape)}")
    if offsets.device != params.device:
        raise ValueError(
            f"{op}: offsets must be on {params.device} like params, got {offsets.device}"
        )
    offsets = offsets.contiguous()
    known = _validated.get(offsets)
    if known is not None and known[0] == offsets._version:
        end = known[1]
    else:
        end = int(_validated_offsets(op, offsets)[-1])
        _remember_validated(offsets, end)
    _check_end(op, end, params.numel())
    return offsets


def _remember_validated(offsets: torch.Tensor, end: int) -> None:
    _validated[offsets] = (offsets._version, end)


def _check_end(op: str, end: int, numel: int) -> None:
    if end != numel:
        raise ValueError(f"{op}: offsets must end at params.numel() = {numel}, got {end}")


def _check_integer_dtype(op: str, name: str, tensor: torch.Tensor) -> None:
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise TypeError(f"{op}: {name} must be integers (int64), got dtype {tensor.dtype}")


def _integer_tensor(op: str, name: str, values: torch.Tensor | Sequence[int]) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        tensor = values
    else:  # an empty sequence would otherwise become float32
        tensor = torch.as_tensor(values, dtype=torch.int64 if len(values) == 0 else None)
    _check_integer_dtype(op, name, tensor)
    if tensor.dim() != 1:
        raise ValueError(f"{op}: {name} must be 1-D, got shape {tuple(tensor.shape)}")
    return tensor.to(torch.int64).contiguous()


def _validated_offsets(op: str, offsets: torch.Tensor | Sequence[int]) -> torch.Tensor:
    offsets = _integer_tensor(op, "offsets", offsets).cpu()
    if offsets.numel() == 0:
        raise ValueError(f"{op}: offsets must have at least one entry (0), got an empty tensor")
    if int(offsets[0]) != 0:
        raise ValueError(f"{op}: offsets must start at 0, got offsets[0] = {int(offsets[0])}")
    steps = offsets.diff()
    if steps.numel() and int(steps.min()) < 0:
        at = int(steps.argmin())
        raise ValueError(
            f"{op}: offsets must be non-decreasing, got offsets[{at}] = {int(offsets[at])} > "
            f"offsets[{at + 1}] = {int(offsets[at + 1])}"
        )
    return offsets
