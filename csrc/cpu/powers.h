// x^p for non-negative doubles: fast paths for the exponents pruning uses most (0.5, 1, 1.5,
// 2, 3, 4) and exp2(p * log2 x) on 4-wide vectors for the rest.
#pragma once

#include "isa.h"

#include <cmath>
#include <cstdint>

#include "vectors.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

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

template <PowerKind kKind>
inline double power(double x) {
  static_assert(kKind != PowerKind::kGeneric, "generic exponents go through power_x4");
  if constexpr (kKind == PowerKind::kHalf) return std::sqrt(x);
  if constexpr (kKind == PowerKind::kOne) return x;
  if constexpr (kKind == PowerKind::kOneAndHalf) return x * std::sqrt(x);
  if constexpr (kKind == PowerKind::kTwo) return x * x;
  if constexpr (kKind == PowerKind::kThree) return x * x * x;
  if constexpr (kKind == PowerKind::kFour) return (x * x) * (x * x);
  return 0.0;
}

// log2(x) for finite x >= 0 to ~1e-13 absolute, lane by lane (V: f64x4, or f64x8 with
// AVX-512; the same operations on each lane, so the same bits at either width). Returns -inf
// for x = 0 (so 2^(p * that) is 0 for every p > 0) and x itself for NaN / inf.
// ln m = 2 atanh(s), s = (m-1)/(m+1), m in [sqrt(1/2), sqrt(2)).
template <class V>
inline V log2_lanes_f64(V x) {
  using Signed = typename LaneTypes<V>::Signed;
  using Unsigned = typename LaneTypes<V>::Unsigned;
  const Signed tiny = x < 0x1p-1000;  // subnormals: lift into the normal range first
  const V lifted = tiny ? x * 0x1p200 : x;
  const Unsigned bits = (Unsigned)(lifted);
  // the exponent field as a double, without an int64 -> double conversion (none in AVX2)
  const Unsigned exponent_bits = (bits >> 52) | 0x4330000000000000ull;
  const V exponent = (V)(exponent_bits) - (0x1p52 + 1023.0);
  const Unsigned mantissa_bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
  V m = (V)(mantissa_bits);
  const Signed upper = m > 1.4142135623730951;
  m = upper ? m * 0.5 : m;
  const V k = exponent + (upper ? splat_as<V>(1.0) : splat_as<V>(0.0)) -
              (tiny ? splat_as<V>(200.0) : splat_as<V>(0.0));
  const V s = (m - 1.0) / (m + 1.0);
  const V s2 = s * s;
  // |s| <= 0.172: the first omitted term, s^16 / 17, is below 2e-14 of the sum
  V series = splat_as<V>(1.0 / 15.0);
  series = series * s2 + 1.0 / 13.0;
  series = series * s2 + 1.0 / 11.0;
  series = series * s2 + 1.0 / 9.0;
  series = series * s2 + 1.0 / 7.0;
  series = series * s2 + 1.0 / 5.0;
  series = series * s2 + 1.0 / 3.0;
  series = series * s2 + 1.0;
  const V result = k + s * series * (2.0 * 1.4426950408889634);
  const Signed finite = x <= 1.7976931348623157e308;  // false for NaN and inf
  return x == 0.0 ? splat_as<V>(-__builtin_inf()) : (finite ? result : x);
}

inline f64x4 log2_x4(f64x4 x) { return log2_lanes_f64(x); }

// 2^y to ~2e-13 relative for y <= 1023, lane by lane as log2_lanes_f64; results below the
// normal range flush to 0 (they are negligible next to the largest term). Taylor series of
// e^t, |t| <= ln(2)/2.
template <class V>
inline V exp2_lanes_f64(V y) {
  using Unsigned = typename LaneTypes<V>::Unsigned;
  const V clamped = y < -1100.0 ? splat_as<V>(-1100.0) : y;
  const double shifter = 0x1.8p52;  // adding it rounds to an integer kept in the low bits
  const V shifted = clamped + shifter;
  const V n = shifted - shifter;
  const V t = (clamped - n) * 0.6931471805599453;
  // |t| <= 0.347: the first omitted term, t^11 / 11!, is below 2e-13
  V poly = splat_as<V>(1.0 / 3628800.0);
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
  const Unsigned shifted_bits = (Unsigned)(shifted);
  const Unsigned n_bits = shifted_bits - 0x4338000000000000ull;  // n as a two's-complement int
  const Unsigned power_bits = (n_bits + 1023) << 52;
  const V two_to_n = (V)(power_bits);
  return n < -1022.0 ? splat_as<V>(0.0) : poly * two_to_n;
}

inline f64x4 exp2_x4(f64x4 y) { return exp2_lanes_f64(y); }

// Adds Σ x^p (if generic_p) and Σ x^q (if generic_q) over x[0..n), n a multiple of 16.
// Four vectors per step: the polynomials are long dependency chains, and independent vectors
// let the core overlap them.
inline void add_generic_powers(const double* x, int64_t n, double p, double q, bool generic_p,
                               bool generic_q, double& sum_p, double& sum_q) {
  constexpr int kLanes = 4;
  f64x4 acc_p[kLanes] = {}, acc_q[kLanes] = {};
  for (int64_t i = 0; i < n; i += 4 * kLanes) {
    f64x4 log2_x[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) {
      f64x4 chunk;
      __builtin_memcpy(&chunk, x + i + 4 * lane, sizeof(chunk));
      log2_x[lane] = log2_x4(chunk);
    }
    if (generic_p) {
      for (int lane = 0; lane < kLanes; ++lane) acc_p[lane] += exp2_x4(p * log2_x[lane]);
    }
    if (generic_q) {
      for (int lane = 0; lane < kLanes; ++lane) acc_q[lane] += exp2_x4(q * log2_x[lane]);
    }
  }
  const f64x4 total_p = (acc_p[0] + acc_p[1]) + (acc_p[2] + acc_p[3]);
  const f64x4 total_q = (acc_q[0] + acc_q[1]) + (acc_q[2] + acc_q[3]);
  sum_p += (total_p[0] + total_p[1]) + (total_p[2] + total_p[3]);
  sum_q += (total_q[0] + total_q[1]) + (total_q[2] + total_q[3]);
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
