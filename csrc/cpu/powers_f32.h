// x^p for generic exponents in float32 arithmetic, 8 lanes a vector, for float32 / float16 /
// bfloat16 parameters: each term to ~1e-7 relative, summed in double. The double-precision
// path (powers.h) costs about five times more per entry, which would leave the generic
// exponents compute-bound far from the memory bandwidth.
//
// Inputs are scaled into (0, 1] by the segment's power-of-two scale, so log2 x <= 0 and the
// terms that matter (x near 1) have small |log2 x|, where float32's absolute error on log2 x
// is smallest. Entries below 2^-126 of the segment's largest are dropped: with p >= 0.5 each
// such term is below 2^-63 of the largest term (the caller keeps smaller p on the double path).
#pragma once

#include "isa.h"

#include <cstdint>

#include "vectors.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// The exponents this path takes: p >= 0.5 bounds the dropped terms (above); the relative error
// of a term grows with the exponent (q ln2 times the error of log2 x), so q stays <= 4.
constexpr double kGenericFloat32MinP = 0.5;
constexpr double kGenericFloat32MaxQ = 4.0;

// log2(x) for x in [0, 1]; -inf where x < 2^-126 (so 2^(p * that) flushes to 0).
inline f32x8 log2_x8(f32x8 x) {
  const u32x8 bits = (u32x8)(x);
  const i32x8 exponent_int = (i32x8)(bits >> 23) - 127;
  f32x8 k = __builtin_convertvector(exponent_int, f32x8);
  const u32x8 mantissa_bits = (bits & 0x007fffffu) | 0x3f800000u;
  f32x8 m = (f32x8)(mantissa_bits);  // [1, 2)
  const i32x8 upper = m > 1.41421356f;
  m = upper ? m * 0.5f : m;
  k = upper ? k + 1.0f : k;
  const f32x8 s = (m - 1.0f) / (m + 1.0f);  // |s| <= 0.172
  const f32x8 s2 = s * s;
  f32x8 series = splat8(1.0f / 9.0f);
  series = series * s2 + 1.0f / 7.0f;
  series = series * s2 + 1.0f / 5.0f;
  series = series * s2 + 1.0f / 3.0f;
  series = series * s2 + 1.0f;
  const f32x8 result = k + s * series * (2.0f * 1.44269504f);
  return x < 0x1p-126f ? splat8(-__builtin_inff()) : result;
}

// 2^y for y <= 0 (to ~1e-7 relative); 0 below 2^-126.
inline f32x8 exp2_x8(f32x8 y) {
  const f32x8 clamped = y < -127.0f ? splat8(-127.0f) : y;
  const float shifter = 0x1.8p23f;  // adding it rounds to an integer
  const f32x8 n = (clamped + shifter) - shifter;
  const f32x8 f = clamped - n;  // [-0.5, 0.5]
  // least-squares fit of 2^f on [-0.5, 0.5], 2e-8 relative
  f32x8 poly = splat8(1.54697365e-4f);
  poly = poly * f + 1.34004373e-3f;
  poly = poly * f + 9.61802527e-3f;
  poly = poly * f + 5.55032715e-2f;
  poly = poly * f + 2.40226507e-1f;
  poly = poly * f + 6.93147182e-1f;
  poly = poly * f + 1.0f;
  const i32x8 n_int = __builtin_convertvector(n, i32x8);
  const u32x8 power_bits = (u32x8)((n_int + 127) << 23);  // n = -127 gives 0
  return poly * (f32x8)(power_bits);
}

inline void add_to_double(f64x4& acc, f32x8 terms) {
  f64x4 low, high;
  widen(terms, low, high);
  acc += low + high;
}

// x[i] = log2 x[i] for n a multiple of 8.
inline void log2_in_place(float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) {
    f32x8 chunk;
    __builtin_memcpy(&chunk, x + i, sizeof(chunk));
    chunk = log2_x8(chunk);
    __builtin_memcpy(x + i, &chunk, sizeof(chunk));
  }
}

// Σ 2^(p * log2_x[i]) for n a multiple of 16. Short loops, one per exponent, keep the
// constants in registers and let the core overlap many iterations.
inline double sum_exp2(const float* log2_x, int64_t n, float p) {
  f64x4 acc[2] = {};
  for (int64_t i = 0; i < n; i += 16) {
    for (int half = 0; half < 2; ++half) {
      f32x8 chunk;
      __builtin_memcpy(&chunk, log2_x + i + 8 * half, sizeof(chunk));
      add_to_double(acc[half], exp2_x8(p * chunk));
    }
  }
  const f64x4 total = acc[0] + acc[1];
  return (total[0] + total[1]) + (total[2] + total[3]);
}

// Adds Σ x^p (if generic_p) and Σ x^q (if generic_q) over x[0..n), x in [0, 1], n a multiple
// of 16; x is overwritten with log2 x.
inline void add_generic_powers_f32(float* x, int64_t n, float p, float q, bool generic_p,
                                   bool generic_q, double& sum_p, double& sum_q) {
  log2_in_place(x, n);
  if (generic_p) sum_p += sum_exp2(x, n, p);
  if (generic_q) sum_q += sum_exp2(x, n, q);
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
