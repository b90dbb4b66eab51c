// The terms a^r of the power sums, the PQ Index of a segment and its SAP prune count, on the
// device, with the contract of the Triton backend (sap_kernels/triton/terms.py):
// - unscaled (16/32-bit params, every a^q within float64's range): a^r in float32 arithmetic,
//   returned as a double: multiplies in double for r = 1..4, the correctly rounded float32
//   square root for 0.5 and 1.5, else 2^(r log2 a) with the power of two split off exactly;
// - scaled (float64 params or larger q): x = a / scale in [0, 2), x^r in double.
// The build turns off multiply-add contraction (-fmad=false), and every fused step here is an
// explicit fma, so that the same inputs give the same bits in every kernel that uses these.
#pragma once

#include <cmath>
#include <cstdint>

#include "common.cuh"
#include "sap_kernels/sap_counts.h"

namespace sap_kernels::cuda {

enum ExponentKind : int { kGeneric = 0, kOne, kTwo, kThree, kFour, kHalf, kThreeHalves };

inline ExponentKind exponent_kind(double r) {
  if (r == 1.0) return kOne;
  if (r == 2.0) return kTwo;
  if (r == 3.0) return kThree;
  if (r == 4.0) return kFour;
  if (r == 0.5) return kHalf;
  if (r == 1.5) return kThreeHalves;
  return kGeneric;
}

// An exponent as the kernels take it: r = high + low with high of 12 significant bits.
struct Exponent {
  double value;
  float value_f32;
  float high;
  float low;
  int kind;
};

inline Exponent make_exponent(double r) {
  int binary_exponent = 0;
  const double mantissa = std::frexp(r, &binary_exponent);
  const double high = std::ldexp(std::nearbyint(mantissa * 4096.0) / 4096.0, binary_exponent);
  return {r, static_cast<float>(r), static_cast<float>(high), static_cast<float>(r - high),
          exponent_kind(r)};
}

// Whether every term a^q of a buffer of this dtype lies in float64's normal range unscaled
// (log2 of the smallest subnormal and of the bound of the largest magnitude per dtype).
inline bool fits_unscaled(int low, int high, double q) {
  return q * -low <= 1022.0 && q * high <= 1023.0;
}

__device__ __forceinline__ double unscaled_term(float a, const Exponent& r) {
  switch (r.kind) {
    case kOne:
      return static_cast<double>(a);
    case kTwo: {
      const double wide = a;
      return __dmul_rn(wide, wide);
    }
    case kThree: {
      const double wide = a;
      return __dmul_rn(__dmul_rn(wide, wide), wide);
    }
    case kFour: {
      const double wide = a;
      const double square = __dmul_rn(wide, wide);
      return __dmul_rn(square, square);
    }
    case kHalf:
      return static_cast<double>(__fsqrt_rn(a));
    case kThreeHalves:
      return __dmul_rn(static_cast<double>(a), static_cast<double>(__fsqrt_rn(a)));
    default:
      break;
  }
  if (!(a < INFINITY)) return static_cast<double>(a);  // NaN and inf are terms of their own
  if (a == 0.0f) return 0.0;
  // subnormals are scaled by 2^24 first, so that every mantissa is normal
  const bool subnormal = a < 1.17549435e-38f;
  const uint32_t bits = __float_as_uint(subnormal ? __fmul_rn(a, 16777216.0f) : a);
  const int exponent = static_cast<int>((bits >> 23) & 0xffu) - 127 - (subnormal ? 24 : 0);
  const float mantissa = __uint_as_float((bits & 0x7fffffu) | 0x3f800000u);
  const float e = static_cast<float>(exponent);
  const float high = __fmul_rn(r.high, e);  // exact: 12 by at most 8 significant bits
  const float n_high = floorf(high);
  const float fraction =
      __fmaf_rn(r.value_f32, log2f(mantissa), __fmaf_rn(r.low, e, __fsub_rn(high, n_high)));
  const float n_low = floorf(fraction);
  const double scaled = static_cast<double>(exp2f(__fsub_rn(fraction, n_low)));
  return __dmul_rn(scaled, power_of_two(static_cast<int64_t>(n_high) +
                                        static_cast<int64_t>(n_low)));
}

__device__ __forceinline__ double scaled_term(double x, const Exponent& r) {
  switch (r.kind) {
    case kOne:
      return x;
    case kTwo:
      return __dmul_rn(x, x);
    case kThree:
      return __dmul_rn(__dmul_rn(x, x), x);
    case kFour: {
      const double square = __dmul_rn(x, x);
      return __dmul_rn(square, square);
    }
    case kHalf:
      return __dsqrt_rn(x);
    case kThreeHalves:
      return __dmul_rn(x, __dsqrt_rn(x));
    default:
      break;
  }
  if (!(x < INFINITY)) return x;  // NaN and inf stay what they are
  return x > 0.0 ? exp2(__dmul_rn(r.value, log2(x))) : 0.0;
}

// I = 1 - d^(1/q - 1/p) ||a||_p / ||a||_q from equally scaled double sums; 0 for d = 1, NaN
// for d = 0, all-zero or non-finite sums.
__device__ __forceinline__ double pqi_value(double sum_p, double sum_q, int64_t count,
                                            double inv_p, double inv_q) {
  if (count == 0 || !(sum_p > 0.0) || !(sum_q < INFINITY) || !(sum_p < INFINITY)) return NAN;
  if (count == 1) return 0.0;
  const double log_d = log2(static_cast<double>(count));
  const double log_ratio = __fma_rn(__dsub_rn(inv_q, inv_p), log_d,
                                    __fma_rn(inv_p, log2(sum_p), -__dmul_rn(inv_q, log2(sum_q))));
  return __dsub_rn(1.0, exp2(log_ratio));
}

// The factors of the prune count that depend on the parameters alone (host, double).
struct CountRule {
  double eta_factor;    // (1 + eta_r)^(-q/(q-p))
  double exponent;      // q p / (q - p)
  double gamma;
  double beta;
};

inline CountRule make_count_rule(const SapParameters& sap) {
  return {std::pow(1.0 + sap.eta_r, -sap.q / (sap.q - sap.p)),
          sap.q * sap.p / (sap.q - sap.p), sap.gamma, sap.beta};
}

// r = d (1 + eta_r)^(-q/(q-p)) (1 - I)^(qp/(q-p)); NaN where I is NaN.
__device__ __forceinline__ double retain_bound(double pqi, int64_t count, const CountRule& rule) {
  const double x = __dsub_rn(1.0, pqi);
  double power;
  if (rule.exponent == 1.0) {
    power = x;
  } else if (rule.exponent == 2.0) {
    power = __dmul_rn(x, x);
  } else {
    power = x > 0.0 ? exp2(__dmul_rn(rule.exponent, log2(x))) : (x == 0.0 ? 0.0 : x);
  }
  return __dmul_rn(__dmul_rn(static_cast<double>(count), rule.eta_factor), power);
}

// c = floor(max(0, min(gamma (d - r), beta d))); 0 where I is NaN or d = 0.
__device__ __forceinline__ int64_t prune_count(double pqi, int64_t count, const CountRule& rule) {
  if (pqi != pqi || count == 0) return 0;
  const double d = static_cast<double>(count);
  const double r = retain_bound(pqi, count, rule);
  const double wanted = fmin(__dmul_rn(rule.gamma, __dsub_rn(d, r)), __dmul_rn(rule.beta, d));
  return static_cast<int64_t>(floor(fmax(0.0, wanted)));
}

}  // namespace sap_kernels::cuda
