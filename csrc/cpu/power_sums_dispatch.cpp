// Picks the power-sums kernel built for the best instruction set this CPU has.
#include "power_sums_isa.h"

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

int64_t segmented_power_sums_cpu(const SegmentedBuffer& input, double p, double q,
                                 const PowerSumsOutput& out) {
#if defined(SAP_KERNELS_HAS_X86_64_V3)
  if (has_x86_64_v3()) return cpu::x86_64_v3::power_sums(input, p, q, out);
#endif
  return cpu::baseline::power_sums(input, p, q, out);
}

}  // namespace sap_kernels
