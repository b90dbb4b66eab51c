// segmented_power_sums_cuda: the power sums (and PQI) of every segment, one read of the buffer
// (two in scaled mode), load-balanced by tiles (sums.cuh, sums_launch.cuh).
#include "sap_kernels/cuda.h"
#include "sums_launch.cuh"

namespace sap_kernels {

using namespace cuda;

size_t power_sums_cuda_workspace_bytes(int64_t numel, int64_t num_segments, ScalarType,
                                       double) {
  return sums_workspace_bytes(numel, num_segments);
}

// The arguments every power-sum launch shares; the caller sets the outputs.
cuda::SumsArgs sums_arguments(const SegmentedBuffer& input, double p, double q,
                              int32_t* nonfinite) {
  cuda::SumsArgs a{};
  a.params = input.params;
  a.mask = input.mask;
  a.offsets = input.offsets;
  a.numel = input.numel;
  a.num_segments = input.num_segments;
  a.p = cuda::make_exponent(p);
  a.q = cuda::make_exponent(q);
  a.inv_p = 1.0 / p;
  a.inv_q = 1.0 / q;
  a.nonfinite = nonfinite;
  return a;
}

int segmented_power_sums_cuda(const SegmentedBuffer& input, double p, double q,
                              const PowerSumsOutput& out, int32_t* nonfinite,
                              const CudaLaunch& launch_info) {
  SumsArgs a = sums_arguments(input, p, q, nonfinite);
  a.scale = out.scale;
  a.sum_p = out.sum_p;
  a.sum_q = out.sum_q;
  a.count = out.count;
  a.pqi = out.pqi;
  Workspace workspace(launch_info.workspace, launch_info.workspace_bytes);
  const auto stream = static_cast<cudaStream_t>(launch_info.stream);
  const bool fits = for_dtype(input.dtype, [&](auto traits) {
    return launch_sums<decltype(traits), false>(a, input.dtype, workspace, stream);
  });
  if (!fits) return static_cast<int>(cudaErrorInvalidValue);
  return static_cast<int>(cudaGetLastError());
}

const char* cuda_error_message(int code) {
  if (code == static_cast<int>(cudaErrorInvalidValue)) {
    return "invalid value (or a workspace smaller than the op needs)";
  }
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

}  // namespace sap_kernels
