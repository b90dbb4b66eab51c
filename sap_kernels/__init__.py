"""sap_kernels: fused kernels for sparsity-informed pruning (PQ Index and SAP).

Segmented ℓp/ℓq power sums, the PQ Index and the SAP prune counts over flat parameter buffers,
on the CPU (compiled C++) with a pure-PyTorch reference (``sap_kernels.reference``).
"""

from ._dispatch import BACKENDS
from ._native import native_available
from .power_sums import PowerSums, segmented_power_sums
from .pqi import segmented_pqi
from .sap_counts import sap_prune_counts, sap_retain_bound
from .segments import SCOPES, Segments

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "SCOPES",
    "PowerSums",
    "Segments",
    "native_available",
    "sap_prune_counts",
    "sap_retain_bound",
    "segmented_power_sums",
    "segmented_pqi",
]
