// The power-sums kernel is compiled once per instruction set; each copy lives in its own
// namespace (SAP_KERNELS_ISA) and power_sums_dispatch.cpp picks one at run time.
#pragma once

#include <cstdint>

#include "sap_kernels/power_sums.h"

#include "isa.h"

namespace sap_kernels::cpu {
namespace baseline {
int64_t power_sums(const SegmentedBuffer& input, double p, double q, const PowerSumsOutput& out);
}
namespace x86_64_v3 {
int64_t power_sums(const SegmentedBuffer& input, double p, double q, const PowerSumsOutput& out);
}
}  // namespace sap_kernels::cpu
