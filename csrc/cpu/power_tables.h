// x^p for generic exponents by table lookup, 16 lanes a vector (the AVX-512 copy), in place of
// powers_f32.h's float32 log2 / exp2: no division, half the multiplies and multiply-adds (13 a
// vector for both exponents, against ~26), and no pass over a buffer of logarithms.
//
// A magnitude x scaled by 2^-e (x < 2^e) is 2^j m, j = exponent(x) - e in [-32, -1] for all
// but the smallest entries, m in [1, 2). With c the centre of m's 32nd of [1, 2) (the top five
// bits of the mantissa) and r = m / c - 1 (|r| <= 1/64),
//
//     (2^j m)^p = 2^(p j) * c^p * (1 + r)^p,
//
// the first two factors from 32-entry tables in registers (vpermt2ps), the last from its
// binomial series to r^4 (the next term is below 1e-9 for p <= 4). The tables are built in
// double for each call's exponents; the relative rounding errors of their float entries ride
// along with the series (which is small, and rounded with it), so that a term takes two float32
// roundings: within 2.5 2^-24 (1.5e-7) of x^p, at any distance below the segment's largest
// (tests/test_generic_terms.py), where log2 / exp2 lose more the smaller the term.
//
// Entries below 2^(e-32) and float32 subnormals ("far" lanes, rare in weights: below 2^-32 of
// the segment's largest) have no table row; a vector holding one computes those lanes in
// double by log2 / exp2 (powers.h) instead, several times the cost of a vector by the tables.
// Zero lanes (dead entries, padding) give 0.
#pragma once

#include "isa.h"

#include <cmath>
#include <cstdint>

#include "accumulator.h"
#include "element.h"
#include "powers.h"
#include "vectors.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// The exponents the tables take: p >= 1/4 and q <= 4. No term is dropped at any p (the far
// lanes are computed in double), but a relative error e on each term moves the PQI by up to
// e (1/p + 1/q): p >= 1/4 keeps that within 1.2e-6 (smaller p take float64 terms; the PQI of
// p = 0.01 would be off by up to 1.5e-5). q <= 4 keeps 2^(q j) at or above 2^-128 for
// j >= -32, so that its float and that float's relative error are finite.
constexpr double kTablesMinExponent = 0.25;
constexpr double kTablesMaxExponent = 4.0;

// The tables of one exponent p: 2^(p j) for j = -32 .. -1 at index j mod 32 and c_i^p, as
// floats and the relative errors of those floats, and the binomial coefficients of (1 + r)^p.
struct PowerTable {
  alignas(64) float power_of_scale[32];
  alignas(64) float scale_error[32];
  alignas(64) float power_of_centre[32];
  alignas(64) float centre_error[32];
  float binomial[4];  // p, p(p-1)/2, p(p-1)(p-2)/6, p(p-1)(p-2)(p-3)/24
};

// Both exponents' tables and the shared 1 / c_i, built once per call.
struct PowerTables {
  alignas(64) float inverse_centre[32];
  PowerTable p;
  PowerTable q;
  double p_exponent;
  double q_exponent;

  PowerTables(double p_exponent_, double q_exponent_)
      : p_exponent(p_exponent_), q_exponent(q_exponent_) {
    for (int i = 0; i < 32; ++i) {
      inverse_centre[i] = static_cast<float>(1.0 / (1.0 + (i + 0.5) / 32.0));
    }
    fill(p, p_exponent_);
    fill(q, q_exponent_);
  }

 private:
  // value as a float, and (value - that float) / that float
  static void split(double value, float& rounded, float& relative_error) {
    rounded = static_cast<float>(value);
    relative_error = static_cast<float>((value - rounded) / rounded);
  }

  void fill(PowerTable& table, double p) const {
    for (int j = -32; j <= -1; ++j) {
      split(std::exp2(p * j), table.power_of_scale[j & 31], table.scale_error[j & 31]);
    }
    // c_i is 1 / inverse_centre[i] exactly, so that r = m * inverse_centre[i] - 1 is exact
    for (int i = 0; i < 32; ++i) {
      split(std::pow(1.0 / inverse_centre[i], p), table.power_of_centre[i], table.centre_error[i]);
    }
    table.binomial[0] = static_cast<float>(p);
    table.binomial[1] = static_cast<float>(p * (p - 1) / 2);
    table.binomial[2] = static_cast<float>(p * (p - 1) * (p - 2) / 6);
    table.binomial[3] = static_cast<float>(p * (p - 1) * (p - 2) * (p - 3) / 24);
  }
};

// The scale 2^-e of a run of magnitudes: as the offset of their table rows and the bound of
// their far lanes, and, for the copies without the tables, as the two float factors that
// powers_f32.h's log2 takes (Scaling::for_exponent's split).
struct TableScale {
  int32_t row_offset;  // 127 + e: a lane's row is its biased exponent minus this, mod 32
  uint32_t far_below;  // lanes with 0 < bits <= far_below have no row
  float high;
  float low;

  static TableScale for_exponent(int exponent, float high, float low) {
    const int lowest_biased = 95 + exponent > 1 ? 95 + exponent : 1;  // j >= -32, normal
    return TableScale{127 + exponent, (static_cast<uint32_t>(lowest_biased) << 23) - 1, high,
                      low};
  }

  // The scale of a short segment from the float32 bits of its largest magnitude (> 0,
  // finite): e with max = f 2^e, f in [0.5, 1), from the exponent field, or for a subnormal
  // max (bits * 2^-149) from the width of its bits; and 2^-e split as Scaling::for_exponent
  // splits it. Inlined and without a call (frexp) in it: as a call, every short segment's
  // vectors went to the stack and back around it.
  __attribute__((always_inline)) static TableScale for_largest(uint32_t max_bits, int& exponent) {
    exponent = max_bits >= 0x00800000u ? static_cast<int>(max_bits >> 23) - 126
                                       : 32 - __builtin_clz(max_bits) - 149;
    const int half = -exponent / 2;
    return for_exponent(exponent, float_power_of_two(half), float_power_of_two(-exponent - half));
  }

 private:
  // 2^k as a float, for -126 <= k <= 127.
  static float float_power_of_two(int k) {
    return bit_cast<float>(static_cast<uint32_t>(k + 127) << 23);
  }
};

// A short segment's start from the float32 bits of its largest live magnitude: its NaN / inf
// entries counted (bits >= kInfBits), or nothing to add (0), or its scale. Returns whether
// terms follow, in units of that scale.
// Inlined: as a call it took acc and scale through the stack, on the path of every segment.
template <class E>
__attribute__((always_inline)) inline bool scale_of_short_segment(
    uint32_t max_bits, const typename E::Bits* params, const uint8_t* mask, int64_t n,
    Accumulator& acc, TableScale& scale) {
  if (max_bits >= Float32Element::kInfBits) [[unlikely]] {
    acc.nonfinite = count_nonfinite<E>(params, mask, n);
    return false;
  }
  if (max_bits == 0) return false;
  scale = TableScale::for_largest(max_bits, acc.exponent);
  acc.has_scale = true;
  return true;
}

#if defined(__AVX512F__)
#define SAP_KERNELS_POWER_TABLES 1

// A table's vectors come from one of two places (kHeld):
// - held in registers (the loops over long runs, where they stay there);
// - read from memory where a term needs them, as the permutes' and multiply-adds' operands (a
//   short segment: loaded into registers they were copied to the stack at every segment, for
//   there are more of them than free registers).
// The arithmetic is the same either way, so are the terms' bits.

// 32 floats looked up by the low five bits of each lane.
template <bool kHeld>
class Lookup32;

template <>
class Lookup32<true> {
 public:
  __attribute__((always_inline)) explicit Lookup32(const float* table)
      : low_(_mm512_load_ps(table)), high_(_mm512_load_ps(table + 16)) {}
  __attribute__((always_inline)) __m512 operator()(__m512i index) const {
    return _mm512_permutex2var_ps(low_, index, high_);
  }

 private:
  __m512 low_, high_;
};

template <>
class Lookup32<false> {
 public:
  __attribute__((always_inline)) explicit Lookup32(const float* table) : table_(table) {}
  __attribute__((always_inline)) __m512 operator()(__m512i index) const {
    return _mm512_permutex2var_ps(_mm512_load_ps(table_), index, _mm512_load_ps(table_ + 16));
  }

 private:
  const float* table_;
};

// One float in every lane.
template <bool kHeld>
class Splat;

template <>
class Splat<true> {
 public:
  __attribute__((always_inline)) explicit Splat(const float* value)
      : vector_(_mm512_set1_ps(*value)) {}
  __attribute__((always_inline)) __m512 operator()() const { return vector_; }

 private:
  __m512 vector_;
};

template <>
class Splat<false> {
 public:
  __attribute__((always_inline)) explicit Splat(const float* value) : value_(value) {}
  __attribute__((always_inline)) __m512 operator()() const { return _mm512_set1_ps(*value_); }

 private:
  const float* value_;
};

// One exponent's tables.
template <bool kHeld>
class PowerRegisters {
 public:
  __attribute__((always_inline)) explicit PowerRegisters(const PowerTable& t)
      : scale_(t.power_of_scale),
        scale_error_(t.scale_error),
        centre_(t.power_of_centre),
        centre_error_(t.centre_error),
        b1_(t.binomial),
        b2_(t.binomial + 1),
        b3_(t.binomial + 2),
        b4_(t.binomial + 3) {}

  // 2^(p j) c^p (1 + r)^p of the lanes in `live` (0 elsewhere); row = j mod 32, column = i.
  __attribute__((always_inline)) __m512 terms(__m512i row, __m512i column, __m512 r,
                                              __mmask16 live) const {
    __m512 series = _mm512_fmadd_ps(b4_(), r, b3_());
    series = _mm512_fmadd_ps(series, r, b2_());
    series = _mm512_fmadd_ps(series, r, b1_());  // (1 + r)^p = 1 + r series
    // the tables' relative errors: (1 + a)(1 + b)(1 + r series) = 1 + r series + a + b, to
    // within a product of two of them (< 2^-28)
    const __m512 errors = _mm512_add_ps(scale_error_(row), centre_error_(column));
    const __m512 correction = _mm512_fmadd_ps(r, series, errors);
    const __m512 centre = centre_(column);
    const __m512 mantissa_power = _mm512_fmadd_ps(centre, correction, centre);
    return _mm512_maskz_mul_ps(live, scale_(row), mantissa_power);
  }

 private:
  Lookup32<kHeld> scale_, scale_error_, centre_, centre_error_;
  Splat<kHeld> b1_, b2_, b3_, b4_;
};

// The terms (x 2^-e)^p and (x 2^-e)^q of sixteen magnitudes at a time (kP / kQ: which are
// wanted; kHeld: the tables held in registers or read where needed, as above).
template <bool kP, bool kQ, bool kHeld = true>
class TablePowers {
 public:
  __attribute__((always_inline)) explicit TablePowers(const PowerTables& tables)
      : inverse_centre_(tables.inverse_centre),
        p_(tables.p),
        q_(tables.q),
        p_exponent_(tables.p_exponent),
        q_exponent_(tables.q_exponent) {}

  // Inlined (the loops that call it are the hot path; as a call, the terms and the tables went
  // through memory).
  __attribute__((always_inline)) void terms(f32x16 magnitudes, const TableScale& scale,
                                            f32x16& term_p, f32x16& term_q) const {
    const u32x16 bits = (u32x16)(magnitudes);
    const __mmask16 live = _mm512_test_epi32_mask((__m512i)(bits), (__m512i)(bits));
    const i32x16 row = (i32x16)(bits >> 23) - scale.row_offset;  // j mod 32 in the low bits
    const u32x16 column = bits >> 18;  // the top five mantissa bits (vpermt2ps reads five)
    const f32x16 mantissa = (f32x16)((bits & 0x007fffffu) | 0x3f800000u);
    const __m512 inverse = inverse_centre_((__m512i)(column));
    const __m512 r = _mm512_fmsub_ps((__m512)(mantissa), inverse, _mm512_set1_ps(1.0f));
    // (a term not wanted is 0)
    term_p = kP ? (f32x16)(p_.terms((__m512i)(row), (__m512i)(column), r, live)) : f32x16{};
    term_q = kQ ? (f32x16)(q_.terms((__m512i)(row), (__m512i)(column), r, live)) : f32x16{};
    // 0 < bits <= far_below, as one unsigned compare (0 wraps to the largest)
    const __mmask16 far =
        _mm512_cmple_epu32_mask((__m512i)(bits - 1u), _mm512_set1_epi32(scale.far_below - 1u));
    if (far != 0) [[unlikely]] {
      const TermPair exact = far_lanes(magnitudes, scale.row_offset - 127, far, p_exponent_,
                                       q_exponent_, TermPair{term_p, term_q});
      term_p = exact.p;
      term_q = exact.q;
    }
  }

 private:
  struct TermPair {
    f32x16 p, q;
  };

  // `terms` with the far lanes' terms in double: (x 2^-e)^p = 2^(p log2(x 2^-e)), each within
  // ~1e-13 before it is rounded to float. Out of line and given values only, so that the hot
  // path keeps its registers.
  __attribute__((noinline)) static TermPair far_lanes(f32x16 magnitudes, int exponent,
                                                      __mmask16 far, double p, double q,
                                                      TermPair terms) {
    alignas(64) float x[16], p_terms[16], q_terms[16];
    __builtin_memcpy(x, &magnitudes, sizeof(x));
    __builtin_memcpy(p_terms, &terms.p, sizeof(p_terms));
    __builtin_memcpy(q_terms, &terms.q, sizeof(q_terms));
    const double unit = std::ldexp(1.0, -exponent);
    for (int lane = 0; lane < 16; lane += 4) {
      const f64x4 scaled = f64x4{x[lane], x[lane + 1], x[lane + 2], x[lane + 3]} * unit;
      const f64x4 log2_scaled = log2_x4(scaled);
      const f64x4 power_p = exp2_x4(p * log2_scaled);
      const f64x4 power_q = exp2_x4(q * log2_scaled);
      for (int k = 0; k < 4; ++k) {
        if ((far >> (lane + k) & 1) == 0) continue;
        if (kP) p_terms[lane + k] = static_cast<float>(power_p[k]);
        if (kQ) q_terms[lane + k] = static_cast<float>(power_q[k]);
      }
    }
    __builtin_memcpy(&terms.p, p_terms, sizeof(p_terms));
    __builtin_memcpy(&terms.q, q_terms, sizeof(q_terms));
    return terms;
  }

  Lookup32<kHeld> inverse_centre_;
  PowerRegisters<kHeld> p_;
  PowerRegisters<kHeld> q_;
  double p_exponent_;
  double q_exponent_;
};

#endif  // SAP_KERNELS_POWER_TABLES

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
