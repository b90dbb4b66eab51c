#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and PyTorch: build the extension with the CUDA kernels for its
# GPU, run the GPU backends' test suites, then the GPU benchmark. Logs and results go to
# ${OUT:-bench/out}; the last lines printed are the benchmark's table.
#     bash bench/gpu_run.sh [pytest -k expression, default "cuda or triton"]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/out}
mkdir -p "$out"
python=${PYTHON:-python3}
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
arch=$("$python" -c "import torch; major, minor = torch.cuda.get_device_capability(); print(f'{major}{minor}')")
echo "building for sm_$arch" | tee "$out/build.log"
SAP_KERNELS_CUDA=ON CMAKE_CUDA_ARCHITECTURES="$arch-real" \
  "$python" -m pip install --no-build-isolation --no-deps -e . >> "$out/build.log" 2>&1
"$python" -c "import sap_kernels as sk; assert sk.native_has_cuda(), 'no CUDA kernels built'"
export SAP_KERNELS_REQUIRE_NATIVE=1 HYPOTHESIS_PROFILE=ci
status=0
"$python" -m pytest -q -x -k "${1:-cuda or triton}" > "$out/tests.log" 2>&1 || status=$?
tail -5 "$out/tests.log"
"$python" bench/report_gpu.py --out "$out" 2>&1 | tee "$out/bench.log" | tail -40
exit "$status"
