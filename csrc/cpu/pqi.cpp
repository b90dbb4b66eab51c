#include "sap_kernels/pqi.h"

#include "pqi_value.h"
#include "sap_kernels/power_sums.h"

namespace sap_kernels {

int64_t segmented_pqi_cpu(const SegmentedBuffer& input, double p, double q, double* pqi,
                          int64_t* count) {
  // One pass: the power-sums kernel writes each segment's PQI as it finishes the segment.
  const PowerSumsOutput out{nullptr, nullptr, nullptr, count, pqi};
  return segmented_power_sums_cpu(input, p, q, out);
}

void pqi_from_power_sums_cpu(const double* sum_p, const double* sum_q, const int64_t* count,
                             int64_t num_segments, double p, double q, double* pqi) {
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < num_segments; ++s) {
    pqi[s] = cpu::SAP_KERNELS_ISA::pqi_value(sum_p[s], sum_q[s], count[s], p, q);
  }
}

}  // namespace sap_kernels
