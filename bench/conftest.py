"""pytest setup of the benchmarks: the in-tree sap_kernels, and OpenMP threads that sleep when
idle (see report.py: a spinning worker costs every parallel region ~8 ms on a 2-vCPU VM)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
