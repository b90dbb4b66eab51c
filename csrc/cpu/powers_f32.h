// x^p for generic exponents in float32 arithmetic, 8 lanes a vector, for float32 / float16 /
// bfloat16 parameters, in the copies without AVX-512 (which has power_tables.h instead): each
// term to ~1e-7 relative near the segment's largest, summed in double; float32's absolute
// error on log2 x moves a term x^p by p ln 2 times that, so smaller terms (larger |log2 x|)
// carry more, ~1e-6 at 2^-30 of the largest. The double-precision path (powers.h) costs about
// five times more per entry, which would leave the generic exponents compute-bound far from
// the memory bandwidth.
//
// Inputs are scaled into (0, 1] by the segment's power-of-two scale, so log2 x <= 0 and the
// terms that matter (x near 1) have small |log2 x|, where float32's absolute error on log2 x
// is smallest. Entries below 2^-126 of the segment's largest are dropped: with p >= 0.5 each
// such term is below 2^-63 of the largest term (the caller keeps smaller p on the double path).
//
// A chunk's magnitudes are read once into an L1 buffer (with their max, the scale:
// chunked_sums.h); then two loops over it: log2 x of every entry, then 2^(p log2 x) and
// 2^(q log2 x). Fused into one loop, each entry's chain of ~100 cycles of latency fills the
// out-of-order window, and that loop ran ~1.4x slower than the two.
#pragma once

#include "isa.h"

#include <cstdint>

#include "vectors.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// The exponents this path takes: p >= 0.5 bounds the dropped terms (above); the relative error
// of a term grows with the exponent (q ln2 times the error of log2 x), so q stays <= 4.
constexpr double kGenericFloat32MinP = 0.5;
constexpr double kGenericFloat32MaxQ = 4.0;

// log2 of the dropped entries: finite, so that 2^(p * that) below is 0 times a finite value.
constexpr float kDroppedLog2 = -1000.0f;

// log2(x) for x in [0, 1]; kDroppedLog2 where x < 2^-126. F: 8 or 16 float lanes.
template <class F>
inline F log2_lanes(F x) {
  using I = typename LaneTypes<F>::Signed;
  const I bits = (I)(x);
  // x = 2^k m with m in [sqrt(1/2), sqrt(2)): subtracting the bits of sqrt(1/2) carries into
  // the exponent field exactly when the mantissa reaches sqrt(1/2) (as musl's logf does).
  const I offset = bits - 0x3f3504f3;
  const I k = offset >> 23;  // arithmetic shift
  const F m = (F)(bits - (k << 23));
  const F s = (m - 1.0f) / (m + 1.0f);  // |s| <= 0.172; log2 m = 2 atanh(s) / ln 2
  const F s2 = s * s;
  // minimax fit of 2 atanh(s) / (s ln 2) in s^2: log2 m within 2e-10
  F series = F{} + 0.4342632f;
  series = series * s2 + 0.5765842f;
  series = series * s2 + 0.96180075f;
  series = series * s2 + 2.88539f;
  const F result = s * series + __builtin_convertvector(k, F);
  return bits < 0x00800000 ? F{} + kDroppedLog2 : result;
}

inline f32x8 log2_x8(f32x8 x) { return log2_lanes(x); }

// 2^(p y) for p y <= 0 (to ~1e-7 relative); 0 below 2^-126.
template <class F>
inline F exp2_lanes(F y, float p) {
  using U = typename LaneTypes<F>::Unsigned;
  // Adding 1.5 2^23 rounds p y to an integer n, kept in the low bits of the sum; clamping the
  // sum at n = -127 makes 2^n below the bits 0.
  const float shifter = 0x1.8p23f;
  const F least = F{} + (shifter - 127.0f);
  F shifted = p * y + shifter;
  shifted = shifted > least ? shifted : least;  // one max instruction
  const F n = shifted - shifter;
  const F f = p * y - n;  // [-0.5, 0.5], or far below where clamped (then times 0)
  // least-squares fit of 2^f on [-0.5, 0.5], 2e-9 relative
  F poly = F{} + 1.54697365e-4f;
  poly = poly * f + 1.34004373e-3f;
  poly = poly * f + 9.61802527e-3f;
  poly = poly * f + 5.55032715e-2f;
  poly = poly * f + 2.40226507e-1f;
  poly = poly * f + 6.93147182e-1f;
  poly = poly * f + 1.0f;
  // the low 9 bits of `shifted` are n mod 2^9: shifted into the exponent field, plus the bias
  const U power_bits = ((U)(shifted) << 23) + (127u << 23);  // n = -127 gives 0
  return poly * (F)(power_bits);
}

// The vectors of the generic terms and of their sums: 16 lanes with AVX-512 (whose terms come
// from power_tables.h), else 8. The buffers of magnitudes are padded to whole vectors.
#if defined(__AVX512F__)
using Exp2Vector = f32x16;
#else
using Exp2Vector = f32x8;
#endif
constexpr int kExp2Lanes = sizeof(Exp2Vector) / sizeof(float);
using Exp2Sum = typename LaneTypes<Exp2Vector>::HalfDouble;

inline void add_to_double(Exp2Sum& acc, Exp2Vector terms) {
  Exp2Sum low, high;
  widen(terms, low, high);
  acc += low + high;
}

inline Exp2Vector load_lanes(const float* x) {
  Exp2Vector chunk;
  __builtin_memcpy(&chunk, x, sizeof(chunk));
  return chunk;
}

// Σ 2^(p log2_x[i]) of four vectors: two float32 additions per term (each within 2^-24 of
// the partial sum, below the terms' own error) before the widening, which costs as much.
inline Exp2Vector exp2_sum4(const float* log2_x, float p) {
  constexpr int kL = kExp2Lanes;
  return (exp2_lanes(load_lanes(log2_x), p) + exp2_lanes(load_lanes(log2_x + kL), p)) +
         (exp2_lanes(load_lanes(log2_x + 2 * kL), p) + exp2_lanes(load_lanes(log2_x + 3 * kL), p));
}

inline double horizontal_sum(Exp2Sum acc) {
  double total = 0.0;
  for (int lane = 0; lane < kExp2Lanes / 2; lane += 2) total += acc[lane] + acc[lane + 1];
  return total;
}

// Adds Σ x^p (if kP) and Σ x^q (if kQ) given log2_x[0..n), n a multiple of kExp2Lanes: one
// loop for both exponents, so each log2 x is loaded once.
template <bool kP, bool kQ>
void add_exp2_sums(const float* log2_x, int64_t n, float p, float q, double& sum_p,
                   double& sum_q) {
  Exp2Sum acc_p = {}, acc_q = {};
  int64_t i = 0;
  for (; i + 4 * kExp2Lanes <= n; i += 4 * kExp2Lanes) {
    if constexpr (kP) add_to_double(acc_p, exp2_sum4(log2_x + i, p));
    if constexpr (kQ) add_to_double(acc_q, exp2_sum4(log2_x + i, q));
  }
  for (; i < n; i += kExp2Lanes) {  // short segments: at most three more vectors
    if constexpr (kP) add_to_double(acc_p, exp2_lanes(load_lanes(log2_x + i), p));
    if constexpr (kQ) add_to_double(acc_q, exp2_lanes(load_lanes(log2_x + i), q));
  }
  sum_p += horizontal_sum(acc_p);
  sum_q += horizontal_sum(acc_q);
}

// Adds Σ x^p (if generic_p) and Σ x^q (if generic_q) given log2_x[0..n), n a multiple of
// kExp2Lanes.
inline void add_generic_powers_f32(const float* log2_x, int64_t n, float p, float q,
                                   bool generic_p, bool generic_q, double& sum_p,
                                   double& sum_q) {
  if (generic_p && generic_q) return add_exp2_sums<true, true>(log2_x, n, p, q, sum_p, sum_q);
  if (generic_p) return add_exp2_sums<true, false>(log2_x, n, p, q, sum_p, sum_q);
  if (generic_q) add_exp2_sums<false, true>(log2_x, n, p, q, sum_p, sum_q);
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
