#include "sap_kernels/pqi.h"

#include "sap_kernels/power_sums.h"

namespace sap_kernels {

int64_t segmented_pqi_cpu(const SegmentedBuffer& input, double p, double q, double* pqi,
                          int64_t* count) {
  // One pass: the power-sums kernel writes each segment's PQI as it finishes the segment.
  const PowerSumsOutput out{nullptr, nullptr, nullptr, count, pqi};
  return segmented_power_sums_cpu(input, p, q, out);
}

}  // namespace sap_kernels
