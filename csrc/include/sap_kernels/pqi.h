// PQ Index (Diao et al., ICLR 2023, Definition 1):
//   I = 1 - d^(1/q - 1/p) * ||a||_p / ||a||_q
// d = 0 or an all-zero segment gives NaN, d = 1 gives 0, a non-finite entry gives NaN.
#pragma once

#include <cstdint>

#include "sap_kernels/power_sums.h"

namespace sap_kernels {

// The PQI of every segment in one read of the buffer; count (may be nullptr) receives the live
// entries. Returns the number of non-finite live entries, as segmented_power_sums_cpu does.
int64_t segmented_pqi_cpu(const SegmentedBuffer& input, double p, double q, double* pqi,
                          int64_t* count);

}  // namespace sap_kernels
