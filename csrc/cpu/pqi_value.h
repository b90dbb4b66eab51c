// The PQ Index of segments from their power sums (the scale cancels), four at a time:
//   I = 1 - d^(1/q - 1/p) * sum_p^(1/p) / sum_q^(1/q)
//     = 1 - 2^(log2(sum_p) / p - log2(sum_q) / q + (1/q - 1/p) log2(d))
// NaN for d = 0, an all-zero segment or NaN sums; 0 for d = 1. Three pow calls a segment cost
// more than reading a short segment's entries, hence the vectorized log2 / exp2 (powers.h,
// ~1e-13), used alike for single segments so that every path gives the same bits.
#pragma once

#include <cstdint>

#include "isa.h"
#include "powers.h"
#include "vectors.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

inline f64x4 pqi_x4(f64x4 sum_p, f64x4 sum_q, f64x4 count, double p, double q) {
  const f64x4 exponent =
      log2_x4(sum_p) * (1.0 / p) - log2_x4(sum_q) * (1.0 / q) + log2_x4(count) * (1.0 / q - 1.0 / p);
  const f64x4 pqi = 1.0 - exp2_x4(exponent);
  const f64x4 nan = splat(__builtin_nan(""));
  const f64x4 dense = count == 1.0 ? splat(0.0) : pqi;  // one live entry: as dense as can be
  return (count == 0.0) | (sum_p == 0.0) | (sum_p != sum_p) ? nan : dense;
}

inline double pqi_value(double sum_p, double sum_q, int64_t count, double p, double q) {
  const double d = static_cast<double>(count);
  return pqi_x4(splat(sum_p), splat(sum_q), splat(d), p, q)[0];
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
