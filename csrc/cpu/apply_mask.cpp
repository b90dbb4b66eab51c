// Zeroes pruned weights in place: one pass over params and mask, no temporary.
#include "sap_kernels/apply_mask.h"

#include <omp.h>

#include <cstdint>

namespace sap_kernels {
namespace {

// Below this many entries one thread zeroes them: waking the others (tens of microseconds
// once they sleep) would cost more than it saves (as tiles.h's threads_for). A team of one,
// not an `if` clause: GCC's code for `parallel for simd if (false)` ran ~30x slower.
constexpr int64_t kParallelEntries = int64_t{1} << 16;

template <class Bits>
void zero_dead(Bits* params, const uint8_t* mask, int64_t numel) {
  const int threads = numel >= kParallelEntries ? omp_get_max_threads() : 1;
#pragma omp parallel for simd schedule(static) num_threads(threads)
  for (int64_t i = 0; i < numel; ++i) {
    params[i] = mask[i] != 0 ? params[i] : Bits{0};
  }
}

}  // namespace

void apply_mask_cpu(void* params, int element_size, const uint8_t* mask, int64_t numel) {
  switch (element_size) {
    case 2: return zero_dead(static_cast<uint16_t*>(params), mask, numel);
    case 4: return zero_dead(static_cast<uint32_t*>(params), mask, numel);
    case 8: return zero_dead(static_cast<uint64_t*>(params), mask, numel);
    default: return;
  }
}

}  // namespace sap_kernels
