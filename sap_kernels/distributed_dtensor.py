"""Weights sharded as DTensors (FSDP2's fully_shard, or torch.distributed.tensor directly) as
the distributed ops take them: this rank's local shards laid end to end, with the ranges of
the global flat buffer (the weights laid end to end, in order) that they are.

    weights = sharded_weights([p for p in model.parameters() if p.dim() > 1])
    step = sap_step_distributed(weights.buffer, weights.segments("neuron"), 0.5, 1.0,
                                weights.ranges, mask)
    weights.apply_mask(step.mask)

Shard(0) (FSDP2's placement) and Replicate on a 1-D mesh are supported; a replicated weight,
or a plain tensor, counts as held by the mesh's (or group's) rank 0 alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .segments import Segments


@dataclass
class ShardedWeights:
    """This rank's part of several weights laid end to end in one global flat buffer.

    buffer: the local shards, flattened and laid end to end (a copy); ranges: (global start,
    length) of each in the global buffer; shapes: the weights' global shapes; locals: the local
    tensors themselves (the DTensors' to_local()), which apply_mask writes.
    """

    buffer: torch.Tensor
    ranges: list[tuple[int, int]]
    shapes: list[torch.Size]
    locals: list[torch.Tensor]
    owners: list[int | None]  # replicated weights: the global rank that holds them; else None
    group: object = None

    def segments(self, scope: str) -> Segments:
        """Neuron (rows of each weight), layer or global segments of the global buffer."""
        return Segments.for_shapes(self.shapes, scope)

    def apply_mask(self, mask: torch.Tensor) -> None:
        """Zeroes, in each local shard, the entries that mask (this rank's part, bool) prunes.
        A replicated weight gets its holder's mask on every rank (a broadcast: every rank
        calls this)."""
        start = 0
        with torch.no_grad():
            for local, (_, length), owner in zip(self.locals, self.ranges, self.owners):
                if owner is None:
                    piece = mask[start : start + length].view(local.shape)
                else:
                    piece = mask[start : start + length].to(torch.uint8)
                    if length == 0:
                        piece = torch.empty(local.numel(), dtype=torch.uint8)
                    dist.broadcast(piece, src=owner, group=self.group)
                    piece = piece.view(local.shape).bool()
                local.masked_fill_(~piece, 0)
                start += length


def _local_part(weight: torch.Tensor, group) -> tuple[torch.Tensor, int, int, int | None]:
    """(local tensor, first global row, rows it counts for here, the global rank that holds it
    when it is replicated) of one weight on this rank."""
    try:
        from torch.distributed.tensor import DTensor, Replicate, Shard
    except ImportError:  # torch without DTensor: plain tensors only
        DTensor = ()  # noqa: N806
    rows = weight.shape[0] if weight.dim() else 1
    if not isinstance(weight, DTensor):
        holder = dist.get_global_rank(group, 0) if group is not None else 0
        return weight.detach(), 0, rows if dist.get_rank() == holder else 0, holder
    mesh, placements = weight.device_mesh, weight.placements
    if mesh.ndim != 1 or len(placements) != 1:
        raise ValueError(
            f"sharded_weights: needs DTensors on a 1-D mesh, got a {mesh.ndim}-D mesh with "
            f"placements {placements}"
        )
    local = weight.to_local()
    coordinate = mesh.get_coordinate()[0]
    if isinstance(placements[0], Replicate):
        holder = int(mesh.mesh.reshape(-1)[0])
        return local, 0, rows if coordinate == 0 else 0, holder
    if not (isinstance(placements[0], Shard) and placements[0].dim == 0):
        raise ValueError(
            f"sharded_weights: supports Shard(0) and Replicate placements, got {placements[0]}"
        )
    chunk = -(-rows // mesh.size())  # torch.chunk's split: ceil(rows / ranks) rows a rank
    first = min(coordinate * chunk, rows)
    expected = min(chunk, rows - first)
    if local.shape[0] != expected:
        raise ValueError(
            f"sharded_weights: a Shard(0) weight of {rows} rows on {mesh.size()} ranks should "
            f"hold {expected} rows on rank {coordinate}, holds {local.shape[0]}"
        )
    return local, first, expected, None


def sharded_weights(weights: Iterable[torch.Tensor], group=None) -> ShardedWeights:
    """This rank's part of the weights laid end to end (see the module docstring).

    Args:
        weights: DTensors (Shard(0) or Replicate on a 1-D mesh) or plain tensors, in the order
            they lie in the global buffer; the same list on every rank.
        group: the process group of the plain tensors' rank 0 (None: the default group).
    """
    locals_, ranges, shapes, pieces, owners = [], [], [], [], []
    global_start = 0
    for weight in weights:
        local, first_row, rows, owner = _local_part(weight, group)
        owners.append(owner)
        row_length = weight.numel() // (weight.shape[0] if weight.dim() and weight.shape[0] else 1)
        ranges.append((global_start + first_row * row_length, rows * row_length))
        shapes.append(weight.shape)
        locals_.append(local)
        pieces.append(local.reshape(-1)[: rows * row_length])
        global_start += weight.numel()
    if not shapes:
        raise ValueError("sharded_weights: no weights given")
    buffer = torch.cat([piece.detach() for piece in pieces]).contiguous()
    return ShardedWeights(buffer, ranges, shapes, locals_, owners, group)
