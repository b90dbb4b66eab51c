"""sap_kernels: fused kernels for sparsity-informed pruning (PQ Index and SAP).

Segmented ℓp/ℓq power sums, the PQ Index, the SAP prune counts, exact per-segment magnitude
masks and the fused SAP step over flat parameter buffers, on the CPU (compiled C++), on CUDA
GPUs (CUDA C++ and Triton) and in a pure-PyTorch reference (``sap_kernels.reference``); the
SAP pruner on them (``SAPPruner``, ``flatten_parameters``) and SAP in torch.nn.utils.prune's
conventions (``sap_kernels.prune``).
"""

from ._dispatch import BACKENDS
from ._native import cpu_isa, cpu_isas, native_available, native_has_cuda, set_cpu_isa
from .flatten import FlatParameters, flatten_parameters
from .power_sums import PowerSums, segmented_power_sums
from .pqi import segmented_pqi
from .sap import FixedRatioPruner, SAPPruner
from .sap_counts import sap_prune_counts, sap_retain_bound
from .sap_step import SAPStep, sap_step
from .segments import SCOPES, Segments
from .topk_mask import apply_mask, segmented_topk_mask

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "FixedRatioPruner",
    "FlatParameters",
    "SAPPruner",
    "SCOPES",
    "PowerSums",
    "SAPStep",
    "Segments",
    "apply_mask",
    "cpu_isa",
    "cpu_isas",
    "flatten_parameters",
    "native_available",
    "native_has_cuda",
    "sap_prune_counts",
    "sap_retain_bound",
    "sap_step",
    "set_cpu_isa",
    "segmented_power_sums",
    "segmented_pqi",
    "segmented_topk_mask",
]
