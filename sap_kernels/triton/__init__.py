"""The Triton backend: the same ops as the C++ one, for CUDA tensors (and, under
TRITON_INTERPRET=1, for CPU tensors: how they are tested without a GPU).

Every kernel is load-balanced by fixed-size tiles of the flat buffer, mapped to segments by a
binary search over the offsets (``tiles.py``), never by one program per segment. Modules:
``tiles`` (the tile plan, segment ids within a tile, records of the pieces that cross tiles and
their combine), ``power_sums`` (power sums and PQI), ``sap_counts`` (the SAP counts),
``select_tile`` and ``topk_mask`` (exact masks); sap_step composes them
(``sap_kernels.sap_step.composed_step``).
"""
