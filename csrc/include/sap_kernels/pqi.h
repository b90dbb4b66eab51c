// PQ Index from segmented power sums (Diao et al., ICLR 2023, Definition 1):
//   I = 1 - d^(1/q - 1/p) * ||a||_p / ||a||_q
// The scale of the power sums cancels. d = 0 or an all-zero segment gives NaN, d = 1 gives 0,
// NaN sums (a non-finite entry) give NaN.
#pragma once

#include <cstdint>

namespace sap_kernels {

void pqi_from_power_sums_cpu(const double* sum_p, const double* sum_q, const int64_t* count,
                             int64_t num_segments, double p, double q, double* pqi);

}  // namespace sap_kernels
