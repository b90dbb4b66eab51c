// x^p summed over a chunk of non-negative doubles, with fast paths for the exponents pruning
// uses most (0.5, 1, 1.5, 2, 3, 4) and a vectorizable exp2(p * log2 x) for the rest.
#pragma once

#include <cmath>
#include <cstdint>

#include "element.h"

namespace sap_kernels::cpu {

enum class PowerKind { kHalf, kOne, kOneAndHalf, kTwo, kThree, kFour, kGeneric };

inline PowerKind classify_exponent(double p) {
  if (p == 0.5) return PowerKind::kHalf;
  if (p == 1.0) return PowerKind::kOne;
  if (p == 1.5) return PowerKind::kOneAndHalf;
  if (p == 2.0) return PowerKind::kTwo;
  if (p == 3.0) return PowerKind::kThree;
  if (p == 4.0) return PowerKind::kFour;
  return PowerKind::kGeneric;
}

// log2(x) for finite x >= 0 to ~1e-15 absolute, branch-free so loops over it vectorize.
// Returns -2000 for x = 0 (so that exp2 of any positive multiple gives 0) and x itself for
// NaN / inf. Series: ln m = 2 atanh(s), s = (m-1)/(m+1), m in [sqrt(1/2), sqrt(2)).
inline double fast_log2(double x) {
  const bool tiny = x < 0x1p-1000;  // subnormals: lift into the normal range first
  const double lifted = tiny ? x * 0x1p200 : x;
  const uint64_t bits = bit_cast<uint64_t>(lifted);
  // exponent as a double without an int64 -> double conversion (none in AVX2)
  const double exponent =
      bit_cast<double>((bits >> 52) | 0x4330000000000000ull) - (0x1p52 + 1023.0);
  double m = bit_cast<double>((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
  const bool upper = m > 1.4142135623730951;
  m = upper ? m * 0.5 : m;
  const double k = exponent + (upper ? 1.0 : 0.0) - (tiny ? 200.0 : 0.0);
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double series = 1.0 / 19.0;
  series = series * s2 + 1.0 / 17.0;
  series = series * s2 + 1.0 / 15.0;
  series = series * s2 + 1.0 / 13.0;
  series = series * s2 + 1.0 / 11.0;
  series = series * s2 + 1.0 / 9.0;
  series = series * s2 + 1.0 / 7.0;
  series = series * s2 + 1.0 / 5.0;
  series = series * s2 + 1.0 / 3.0;
  series = series * s2 + 1.0;
  const double log2_m = 2.0 * s * series * 1.4426950408889634;
  const double result = k + log2_m;
  const bool finite = x <= 1.7976931348623157e308;  // false for NaN and inf
  return x == 0.0 ? -2000.0 : (finite ? result : x);
}

// 2^y to ~1e-15 relative for y <= 1023; results below the normal range flush to 0 (they are
// negligible next to the segment's largest term). Taylor series of e^t, |t| <= ln(2)/2.
inline double fast_exp2(double y) {
  const double clamped = y < -1100.0 ? -1100.0 : y;
  const double shifter = 0x1.8p52;  // adding it rounds to an integer kept in the low bits
  const double shifted = clamped + shifter;
  const double n = shifted - shifter;
  const double t = (clamped - n) * 0.6931471805599453;
  double poly = 1.0 / 479001600.0;
  poly = poly * t + 1.0 / 39916800.0;
  poly = poly * t + 1.0 / 3628800.0;
  poly = poly * t + 1.0 / 362880.0;
  poly = poly * t + 1.0 / 40320.0;
  poly = poly * t + 1.0 / 5040.0;
  poly = poly * t + 1.0 / 720.0;
  poly = poly * t + 1.0 / 120.0;
  poly = poly * t + 1.0 / 24.0;
  poly = poly * t + 1.0 / 6.0;
  poly = poly * t + 0.5;
  poly = poly * t + 1.0;
  poly = poly * t + 1.0;
  const int64_t n_int =
      static_cast<int64_t>(bit_cast<uint64_t>(shifted) - bit_cast<uint64_t>(shifter));
  const double two_to_n = bit_cast<double>(static_cast<uint64_t>(n_int + 1023) << 52);
  return n < -1022.0 ? 0.0 : poly * two_to_n;
}

inline void fill_log2(const double* x, int64_t n, double* log2_x) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) log2_x[i] = fast_log2(x[i]);
}

// Σ x[i]^p; log2_x must hold fast_log2(x) when kind is kGeneric.
inline double sum_power(PowerKind kind, double p, const double* x, const double* log2_x,
                        int64_t n) {
  double sum = 0.0;
  switch (kind) {
    case PowerKind::kHalf:
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; ++i) sum += std::sqrt(x[i]);
      break;
    case PowerKind::kOne:
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; ++i) sum += x[i];
      break;
    case PowerKind::kOneAndHalf:
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; ++i) sum += x[i] * std::sqrt(x[i]);
      break;
    case PowerKind::kTwo:
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
      break;
    case PowerKind::kThree:
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i] * x[i];
      break;
    case PowerKind::kFour:
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; ++i) {
        const double square = x[i] * x[i];
        sum += square * square;
      }
      break;
    case PowerKind::kGeneric:
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; ++i) sum += fast_exp2(p * log2_x[i]);
      break;
  }
  return sum;
}

}  // namespace sap_kernels::cpu
