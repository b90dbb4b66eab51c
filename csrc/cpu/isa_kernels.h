// The kernels compiled once per instruction set: each copy lives in its own namespace
// (SAP_KERNELS_ISA) and isa_dispatch.cpp picks one at run time.
#pragma once

#include <cstdint>

#include "sap_kernels/power_sums.h"
#include "sap_kernels/sap_counts.h"

namespace sap_kernels::cpu {

#define SAP_KERNELS_DECLARE_ISA_KERNELS                                                       \
  int64_t power_sums(const SegmentedBuffer& input, double p, double q,                      \
                     const PowerSumsOutput& out);                                             \
  int64_t topk_mask(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out);        \
  int64_t count_nonfinite_live(const SegmentedBuffer& input);                               \
  int64_t sap_step(const SegmentedBuffer& input, const SapParameters& sap, double* pqi,      \
                   int64_t* count, int64_t* prune, uint8_t* out);

namespace baseline {
SAP_KERNELS_DECLARE_ISA_KERNELS
}
namespace x86_64_v3 {
SAP_KERNELS_DECLARE_ISA_KERNELS
}
namespace x86_64_v4 {
SAP_KERNELS_DECLARE_ISA_KERNELS
}

#undef SAP_KERNELS_DECLARE_ISA_KERNELS

}  // namespace sap_kernels::cpu
