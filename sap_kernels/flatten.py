"""flatten_parameters: a module's prunable weights moved into one flat buffer, in place.

Each prunable parameter keeps its identity (the same ``nn.Parameter`` object, so optimizers and
``state_dict`` keep working) but its data becomes a view into one contiguous 1-D buffer, the
weights laid end to end in the module's parameter order. Every op of sap_kernels then reads
the whole model in one call, with no copy, and a mask of the buffer's size masks the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .segments import SCOPES, Segments


def prunable(name: str, parameter: nn.Parameter) -> bool:
    """The paper's choice: every weight with more than one dimension (no biases, no norms)."""
    return parameter.dim() > 1


@dataclass
class FlatParameters:
    """The prunable weights of a module in one buffer.

    Attributes:
        buffer: 1-D contiguous tensor; parameter i is buffer[starts[i] : starts[i] + numel].
        names: the parameters' names in the module (``module.named_parameters()``), in order.
        parameters: the parameters themselves, now views into buffer.
        starts: where each starts in buffer.
    """

    buffer: torch.Tensor
    names: list[str]
    parameters: list[nn.Parameter]
    starts: list[int]
    _segments: dict[str, Segments] = field(default_factory=dict, repr=False)

    @property
    def shapes(self) -> list[torch.Size]:
        return [parameter.shape for parameter in self.parameters]

    def segments(self, scope: str) -> Segments:
        """The segments of scope "neuron" (one per output row of each weight), "layer" (one
        per weight) or "global" (one) over the buffer; built once per scope."""
        if scope not in SCOPES:
            raise ValueError(
                f"FlatParameters.segments: scope must be one of {SCOPES}, got {scope!r}"
            )
        if scope not in self._segments:
            self._segments[scope] = Segments.for_shapes(self.shapes, scope)
        return self._segments[scope]

    def piece(self, index: int) -> slice:
        """The buffer's slice that parameter `index` occupies."""
        start = self.starts[index]
        return slice(start, start + self.parameters[index].numel())

    def is_intact(self) -> bool:
        """Whether every parameter is still a view into the buffer (module.to() or assigning
        new data breaks that; flatten again afterwards)."""
        base = self.buffer.untyped_storage().data_ptr()
        return all(
            parameter.untyped_storage().data_ptr() == base
            and parameter.data_ptr() == self.buffer[self.piece(i)].data_ptr()
            for i, parameter in enumerate(self.parameters)
        )


def flatten_parameters(
    module: nn.Module,
    include: Callable[[str, nn.Parameter], bool] = prunable,
) -> FlatParameters:
    """Moves the prunable weights of module into one contiguous buffer and rebinds each as a
    view of it (``parameter.data = buffer[a:b].view(shape)``), so that a pruning step reads
    them in place.

    Args:
        module: the model; flatten after moving it to its device and dtype (``module.to()``
            makes new tensors, which are no longer views of the buffer).
        include: which parameters to move, given (name, parameter); default: every weight with
            more than one dimension, as the paper prunes.

    Returns:
        FlatParameters: the buffer, the names, parameters and starts, and their Segments.
    """
    op = "flatten_parameters"
    chosen = [
        (name, parameter)
        for name, parameter in module.named_parameters()
        if include(name, parameter)
    ]
    if not chosen:
        raise ValueError(f"{op}: no parameter of the module was chosen to flatten")
    dtypes = {parameter.dtype for _, parameter in chosen}
    devices = {parameter.device for _, parameter in chosen}
    if len(dtypes) > 1 or len(devices) > 1:
        raise ValueError(
            f"{op}: the chosen parameters must share one dtype and device, got dtypes "
            f"{sorted(map(str, dtypes))} and devices {sorted(map(str, devices))}"
        )
    total = sum(parameter.numel() for _, parameter in chosen)
    buffer = torch.empty(total, dtype=dtypes.pop(), device=devices.pop())
    starts, start = [], 0
    with torch.no_grad():
        for _, parameter in chosen:
            piece = buffer[start : start + parameter.numel()].view(parameter.shape)
            piece.copy_(parameter)
            parameter.data = piece
            starts.append(start)
            start += parameter.numel()
    return FlatParameters(buffer, [name for name, _ in chosen], [p for _, p in chosen], starts)
