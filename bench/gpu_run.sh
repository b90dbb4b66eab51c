#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and PyTorch: build the extension with the CUDA kernels for its
# GPU, time the GPU benchmark, then run the GPU backends' test suites. Logs and results go to
# ${OUT:-bench/out}; the benchmark's table is printed as it ends.
#     bash bench/gpu_run.sh [phase ...]        phases: build bench tests (default: all three)
# Sized for a short stay on a borrowed GPU machine: each phase runs under its own time limit in seconds (GPU_BUILD_S,
# GPU_BENCH_S, GPU_TESTS_S; 210 + 150 + 180 by default), so that a phase that runs long still
# leaves the next one its turn, and phases.txt records how long each took. The benchmark runs
# before the tests because it checks every result it times against the reference, and its
# figures are what only a GPU gives. The tests use pytest-xdist (8 workers) where installed:
# on a fresh machine most of their time is Triton compiling kernels.
# PYTEST_K picks the tests (default "cuda or triton").
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/out}
mkdir -p "$out"
python=${PYTHON:-python3}
phases=("$@")
[ ${#phases[@]} -eq 0 ] && phases=(build bench tests)

# phase NAME LIMIT: runs the function NAME under LIMIT seconds, logs its status and duration.
phase() {
  local name=$1 limit=$2 start status
  start=$(date +%s)
  timeout "$limit" bash -c "$name"
  status=$?
  echo "$name: exit $status after $(($(date +%s) - start)) s (limit $limit s)" | tee -a "$out/phases.txt"
  return "$status"
}

build() {
  local arch
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
  arch=$("$python" -c "import torch; major, minor = torch.cuda.get_device_capability(); print(f'{major}{minor}')")
  echo "building for sm_$arch" | tee "$out/build.log"
  SAP_KERNELS_CUDA=ON CMAKE_CUDA_ARCHITECTURES="$arch-real" \
    "$python" -m pip install --no-build-isolation --no-deps -e . >> "$out/build.log" 2>&1 &&
    "$python" -c "import sap_kernels as sk; assert sk.native_has_cuda(), 'no CUDA kernels built'"
}

bench() {
  "$python" bench/report_gpu.py --out "$out" > "$out/bench.log" 2>&1
  local status=$?
  tail -40 "$out/bench.log"
  return "$status"
}

tests() {
  local workers=()
  "$python" -c "import xdist" 2> /dev/null && workers=(-n 8)
  "$python" -m pytest -q "${workers[@]}" -k "${PYTEST_K:-cuda or triton}" > "$out/tests.log" 2>&1
  local status=$?
  tail -5 "$out/tests.log"
  return "$status"
}

export -f build bench tests
export out python SAP_KERNELS_REQUIRE_NATIVE=1 HYPOTHESIS_PROFILE=ci PYTHONUNBUFFERED=1
status=0
for name in "${phases[@]}"; do
  case $name in
    build) phase build "${GPU_BUILD_S:-210}" || exit 1 ;;
    bench) phase bench "${GPU_BENCH_S:-150}" || status=1 ;;
    tests) phase tests "${GPU_TESTS_S:-180}" || status=1 ;;
    *) echo "gpu_run.sh: unknown phase '$name' (expected build, bench or tests)" >&2; exit 2 ;;
  esac
done
exit "$status"
