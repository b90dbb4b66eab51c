// Zeroes pruned weights in place: one pass over params and mask, no temporary.
#include "sap_kernels/apply_mask.h"

#include <cstdint>

namespace sap_kernels {
namespace {

template <class Bits>
void zero_dead(Bits* params, const uint8_t* mask, int64_t numel) {
#pragma omp parallel for simd schedule(static)
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
