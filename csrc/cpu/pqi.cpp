#include "sap_kernels/pqi.h"

#include <cmath>
#include <limits>

namespace sap_kernels {

void pqi_from_power_sums_cpu(const double* sum_p, const double* sum_q, const int64_t* count,
                             int64_t num_segments, double p, double q, double* pqi) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double length_exponent = 1.0 / q - 1.0 / p;
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < num_segments; ++s) {
    const double d = static_cast<double>(count[s]);
    if (count[s] == 0 || sum_p[s] == 0.0 || std::isnan(sum_p[s])) {  // empty, zero, NaN
      pqi[s] = nan;
      continue;
    }
    if (count[s] == 1) {  // a single live entry is as dense as a vector can be
      pqi[s] = 0.0;
      continue;
    }
    // ||a||_p / ||a||_q: the common scale of both sums cancels.
    const double norm_ratio = std::pow(sum_p[s], 1.0 / p) / std::pow(sum_q[s], 1.0 / q);
    pqi[s] = 1.0 - std::pow(d, length_exponent) * norm_ratio;
  }
}

}  // namespace sap_kernels
