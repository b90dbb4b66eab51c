// sap_retain_bound_cuda and sap_prune_counts_cuda: elementwise over segments, in double, with
// the device functions that sap_step's kernels use too (terms.cuh).
#include "sap_kernels/cuda.h"
#include "terms.cuh"

namespace sap_kernels {
namespace {

using namespace cuda;

__global__ void retain_bound_kernel(const double* pqi, const int64_t* count, int64_t n,
                                    CountRule rule, double* retain) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s < n) retain[s] = cuda::retain_bound(pqi[s], count[s], rule);
}

__global__ void prune_counts_kernel(const double* pqi, const int64_t* count, int64_t n,
                                    CountRule rule, int64_t* prune) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s < n) prune[s] = cuda::prune_count(pqi[s], count[s], rule);
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>(ceil_div(n, kThreads)); }

}  // namespace

int sap_retain_bound_cuda(const double* pqi, const int64_t* count, int64_t num_segments,
                          const SapParameters& sap, double* retain, void* stream) {
  if (num_segments == 0) return 0;
  retain_bound_kernel<<<blocks_for(num_segments), kThreads, 0,
                        static_cast<cudaStream_t>(stream)>>>(pqi, count, num_segments,
                                                             make_count_rule(sap), retain);
  return static_cast<int>(cudaGetLastError());
}

int sap_prune_counts_cuda(const double* pqi, const int64_t* count, int64_t num_segments,
                          const SapParameters& sap, int64_t* prune, void* stream) {
  if (num_segments == 0) return 0;
  prune_counts_kernel<<<blocks_for(num_segments), kThreads, 0,
                        static_cast<cudaStream_t>(stream)>>>(pqi, count, num_segments,
                                                             make_count_rule(sap), prune);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace sap_kernels
