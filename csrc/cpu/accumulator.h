// The state of a segment's power sums while its pieces are read, and the small per-chunk
// helpers both summing paths share (power_sums.cpp, chunked_sums.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "element.h"
#include "isa.h"
#include "powers.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

struct PowerTables;  // power_tables.h

struct Exponents {
  double p;
  double q;
  PowerKind kind_p;
  PowerKind kind_q;
  bool scaled;
  bool generic_in_float32;  // generic exponents in float32 arithmetic (powers_f32.h)
  bool by_octets;           // unscaled fast-path exponents on 16/32-bit entries (octets.h)
  const PowerTables* tables = nullptr;  // generic_in_float32 with AVX-512 (power_tables.h)
};

// Power sums of part of one segment, in units of 2^exponent.
struct Accumulator {
  int exponent = 0;
  bool has_scale = false;  // false until a non-zero live entry is seen (scaled mode)
  double sum_p = 0.0;
  double sum_q = 0.0;
  int64_t count = 0;
  int64_t nonfinite = 0;

  // Moves the sums to units of 2^new_exponent (new_exponent >= exponent).
  void rescale_to(int new_exponent, const Exponents& ex) {
    if (has_scale && new_exponent > exponent) {
      const double shift = static_cast<double>(exponent - new_exponent);
      sum_p *= std::exp2(ex.p * shift);
      sum_q *= std::exp2(ex.q * shift);
    }
    if (!has_scale || new_exponent > exponent) exponent = new_exponent;
    has_scale = true;
  }

  // Appends `later`, the accumulator of the entries that follow these in the segment.
  void merge(const Accumulator& later, const Exponents& ex) {
    count += later.count;
    nonfinite += later.nonfinite;
    if (!later.has_scale) return;
    Accumulator aligned = later;
    const int common = has_scale ? std::max(exponent, later.exponent) : later.exponent;
    rescale_to(common, ex);
    aligned.rescale_to(common, ex);
    sum_p += aligned.sum_p;
    sum_q += aligned.sum_q;
  }
};

template <class E>
int64_t count_nonfinite(const typename E::Bits* params, const uint8_t* mask, int64_t n) {
  int64_t found = 0;
  for (int64_t i = 0; i < n; ++i) found += live_abs_bits<E>(params, mask, i) >= E::kInfBits;
  return found;
}

// The live entries of mask[0..n) (nullptr: all n), a vector of bytes a step where the ISA
// has byte compares into bits (the last step lane-masked with AVX-512), else eight bytes a
// step as a word. The plain loop, vectorised, widened every byte to 64 bits (9% of sap_step's
// time on masked rows of 1000), and its scalar tail was most of a short segment.
inline int64_t count_live(const uint8_t* mask, int64_t n) {
  if (mask == nullptr) return n;
  int64_t live = 0, i = 0;
#if defined(__AVX512BW__)
  for (; i < n; i += 64) {
    const int64_t left = n - i;
    const __mmask64 lanes = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
    const __m512i bytes = _mm512_maskz_loadu_epi8(lanes, mask + i);  // reads only `lanes`
    live += __builtin_popcountll(_mm512_test_epi8_mask(bytes, bytes));
  }
  return live;
#else
#if defined(__AVX2__)
  for (; i + 32 <= n; i += 32) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mask + i));
    const auto dead = static_cast<unsigned>(
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, _mm256_setzero_si256())));
    live += 32 - __builtin_popcount(dead);
  }
#endif
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, mask + i, sizeof word);
    word |= word >> 4;  // any bit of a byte into its lowest bit
    word |= word >> 2;
    word |= word >> 1;
    live += __builtin_popcountll(word & 0x0101010101010101u);
  }
  for (; i < n; ++i) live += mask[i] != 0;
  return live;
#endif
}

template <class E>
typename E::Bits max_live_abs_bits(const typename E::Bits* params, const uint8_t* mask,
                                   int64_t n) {
  using Bits = typename E::Bits;
  Bits max_bits = 0;
#pragma omp simd reduction(max : max_bits)
  for (int64_t i = 0; i < n; ++i) {
    const Bits bits = live_abs_bits<E>(params, mask, i);
    max_bits = bits > max_bits ? bits : max_bits;
  }
  return max_bits;
}

// 2^exponent, built from its bits where it is a normal double (subnormal powers come only
// from float64 segments of subnormals, rare enough for ldexp).
inline double power_of_two(int exponent) {
  if (exponent < -1022 || exponent > 1023) return std::ldexp(1.0, exponent);
  return bit_cast<double>(static_cast<uint64_t>(exponent + 1023) << 52);
}

// e with value = f * 2^e, f in [0.5, 1), for a positive finite value, from its bits where it is
// a normal double (as frexp, which is a library call).
inline int binary_exponent(double value) {
  const int biased = static_cast<int>((bit_cast<uint64_t>(value) >> 52) & 0x7ff);
  if (biased == 0) {
    int exponent = 0;
    std::frexp(value, &exponent);
    return exponent;
  }
  return biased - 1022;
}

// The multiplier that brings a chunk's entries below 1 in scaled mode: 2^-e, in two factors
// since 2^-e overflows a double for a float64 segment of subnormals (e < -1022).
struct Scaling {
  double high = 1.0;
  double low = 1.0;
  static Scaling for_exponent(int exponent) {
    const int half = -exponent / 2;
    return Scaling{power_of_two(half), power_of_two(-exponent - half)};
  }
};

// Unscaled sums: finite entries cannot make them overflow, so a non-finite sum means a NaN /
// inf entry; the scale is 2^0 once a non-zero entry was seen.
// Inlined, so that the accumulator stays in registers (a struct passed through the stack
// stalls store forwarding once a segment).
template <class E>
__attribute__((always_inline)) inline Accumulator finish_unscaled(const typename E::Bits* params,
                                                                  const uint8_t* mask, int64_t n,
                                                                  Accumulator acc) {
  if (!std::isfinite(acc.sum_p) || !std::isfinite(acc.sum_q)) [[unlikely]] {
    acc.nonfinite = count_nonfinite<E>(params, mask, n);
  }
  acc.has_scale = acc.sum_p > 0.0;
  return acc;
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
