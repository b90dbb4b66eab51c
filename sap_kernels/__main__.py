"""python -m sap_kernels: the main job, sap-prune (sap_kernels/cli.py)."""

import sys

from .cli import main

sys.exit(main())
