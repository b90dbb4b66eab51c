// Picks, for each kernel, the copy built for the best instruction set this CPU has.
#include <cstdint>

#include "isa_kernels.h"
#include "sap_kernels/power_sums.h"
#include "sap_kernels/sap_step.h"
#include "sap_kernels/topk_mask.h"

namespace sap_kernels {
namespace {

bool has_x86_64_v3() {
#if defined(SAP_KERNELS_HAS_X86_64_V3)
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                __builtin_cpu_supports("bmi2");
  return supported;
#else
  return false;
#endif
}

}  // namespace

#if defined(SAP_KERNELS_HAS_X86_64_V3)
#define SAP_KERNELS_DISPATCH(call) \
  return has_x86_64_v3() ? cpu::x86_64_v3::call : cpu::baseline::call
#else
#define SAP_KERNELS_DISPATCH(call) return cpu::baseline::call
#endif

int64_t segmented_power_sums_cpu(const SegmentedBuffer& input, double p, double q,
                                 const PowerSumsOutput& out) {
  SAP_KERNELS_DISPATCH(power_sums(input, p, q, out));
}

void segmented_topk_mask_cpu(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out) {
  SAP_KERNELS_DISPATCH(topk_mask(input, keep, out));
}

int64_t count_nonfinite_live_cpu(const SegmentedBuffer& input) {
  SAP_KERNELS_DISPATCH(count_nonfinite_live(input));
}

int64_t sap_step_cpu(const SegmentedBuffer& input, const SapParameters& sap, double* pqi,
                     int64_t* count, int64_t* prune, uint8_t* out) {
  SAP_KERNELS_DISPATCH(sap_step(input, sap, pqi, count, prune, out));
}

#undef SAP_KERNELS_DISPATCH

}  // namespace sap_kernels
