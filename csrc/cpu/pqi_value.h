// The PQ Index of one segment from its power sums (the scale cancels):
//   I = 1 - d^(1/q - 1/p) * sum_p^(1/p) / sum_q^(1/q)
// NaN for d = 0, an all-zero segment or NaN sums; 0 for d = 1.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "isa.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

inline double pqi_value(double sum_p, double sum_q, int64_t count, double p, double q) {
  if (count == 0 || sum_p == 0.0 || std::isnan(sum_p)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (count == 1) return 0.0;  // a single live entry is as dense as a vector can be
  const double norm_ratio = std::pow(sum_p, 1.0 / p) / std::pow(sum_q, 1.0 / q);
  return 1.0 - std::pow(static_cast<double>(count), 1.0 / q - 1.0 / p) * norm_ratio;
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
