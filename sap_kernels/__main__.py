"""python -m sap_kernels: the PQ Index / SAP prune-count report of a small model."""

import sys

from .report import main

sys.exit(main())
