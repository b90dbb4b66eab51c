// Picks, for each kernel, the copy built for the chosen instruction set (by default the best
// one this CPU has; see sap_kernels/cpu_isa.h).
#include <atomic>
#include <cstdint>

#include "isa_kernels.h"
#include "sap_kernels/cpu_isa.h"
#include "sap_kernels/power_sums.h"
#include "sap_kernels/sap_step.h"
#include "sap_kernels/topk_mask.h"

namespace sap_kernels {
namespace {

bool cpu_has_x86_64_v3() {
#if defined(SAP_KERNELS_HAS_X86_64_V3)
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                __builtin_cpu_supports("bmi2");
  return supported;
#else
  return false;
#endif
}

bool cpu_has_x86_64_v4() {
#if defined(SAP_KERNELS_HAS_X86_64_V4)
  static const bool supported =
      cpu_has_x86_64_v3() && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl");
  return supported;
#else
  return false;
#endif
}

CpuIsa best_cpu_isa() {
  if (cpu_has_x86_64_v4()) return CpuIsa::kX86_64_V4;
  if (cpu_has_x86_64_v3()) return CpuIsa::kX86_64_V3;
  return CpuIsa::kBaseline;
}

std::atomic<CpuIsa> active_isa{best_cpu_isa()};

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kBaseline: return "baseline";
    case CpuIsa::kX86_64_V3: return "x86-64-v3";
    case CpuIsa::kX86_64_V4: return "x86-64-v4";
  }
  return "unknown";
}

bool cpu_isa_supported(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kBaseline: return true;
    case CpuIsa::kX86_64_V3: return cpu_has_x86_64_v3();
    case CpuIsa::kX86_64_V4: return cpu_has_x86_64_v4();
  }
  return false;
}

CpuIsa active_cpu_isa() { return active_isa.load(std::memory_order_relaxed); }

bool set_cpu_isa(CpuIsa isa) {
  if (!cpu_isa_supported(isa)) return false;
  active_isa.store(isa, std::memory_order_relaxed);
  return true;
}

// Each kernel calls the copy of the active instruction set; copies not compiled in are never
// active (cpu_isa_supported), so their branch falls through to the baseline.
#if defined(SAP_KERNELS_HAS_X86_64_V4)
#define SAP_KERNELS_CALL_V4(call) \
  if (isa == CpuIsa::kX86_64_V4) return cpu::x86_64_v4::call;
#else
#define SAP_KERNELS_CALL_V4(call)
#endif
#if defined(SAP_KERNELS_HAS_X86_64_V3)
#define SAP_KERNELS_CALL_V3(call) \
  if (isa == CpuIsa::kX86_64_V3) return cpu::x86_64_v3::call;
#else
#define SAP_KERNELS_CALL_V3(call)
#endif
#define SAP_KERNELS_DISPATCH(call)     \
  const CpuIsa isa = active_cpu_isa(); \
  SAP_KERNELS_CALL_V4(call)            \
  SAP_KERNELS_CALL_V3(call)            \
  return cpu::baseline::call

int64_t segmented_power_sums_cpu(const SegmentedBuffer& input, double p, double q,
                                 const PowerSumsOutput& out) {
  SAP_KERNELS_DISPATCH(power_sums(input, p, q, out));
}

int64_t segmented_topk_mask_cpu(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out) {
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
#undef SAP_KERNELS_CALL_V3
#undef SAP_KERNELS_CALL_V4

}  // namespace sap_kernels
