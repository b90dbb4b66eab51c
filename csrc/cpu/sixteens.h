// Power sums of 16/32-bit entries sixteen at a time with AVX-512, for the unscaled mode with an
// exponent pair that takes square roots (0.5 or 1.5 in it); octets.h does the other pairs, and
// all of them elsewhere. Loads are lane-masked, so the last partial step of a segment reads in
// place and dead entries load as 0: no padded copy and no scalar tail.
//
// In cache the octet kernel spends most of the time of p = 0.5 in vsqrtps (~10 cycles a
// vector), and once the work of an entry takes about as long as reading it from memory the two
// hardly overlap. Here:
// - the square root is a r, r the 2^-14 estimate of 1 / sqrt(a) (vrsqrt14ps), refined by one
//   Newton step: within 1.54 2^-24 relative over every float32 of [1, 4) (checked exhaustively),
//   unbiased, subnormals included;
// - the terms a^0.5 and a^1 of 32 entries are added in float32 in two steps (two vectors, then
//   their two halves) before they are widened and accumulated in double: each group's sum is
//   within 2 2^-24 relative of its exact sum, as if each term had that much more error
//   (a^0.5: 3.54 2^-24 in all, a^1: 2 2^-24, both below the 4.2 2^-24 = 2.5e-7 that terms in
//   float32 arithmetic are allowed);
// - a^1.5, a^2, a^3 and a^4 are computed in double from the widened magnitude (and root).
// For pairs of integer exponents, whose terms are exact in double, the octet kernel is faster:
// vcvtps2pd on 512-bit vectors has two ports to run on, on 256-bit ones three.
#pragma once

#include "isa.h"

#include <cstdint>

#include "element.h"
#include "octets.h"
#include "powers.h"

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) && \
    defined(__AVX512DQ__)
#include <immintrin.h>

#define SAP_KERNELS_SIXTEENS 1

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// The first `count` of 16 lanes (count may be <= 0 or > 16). Without a branch: the count of
// a segment's last lanes is as unpredictable as its length.
inline __mmask16 leading_lanes(int64_t count) {
  const int64_t clamped = count < 0 ? 0 : (count > 16 ? 16 : count);
  return static_cast<__mmask16>(_bzhi_u32(0xffffu, static_cast<uint32_t>(clamped)));
}

// The 512-bit intrinsics that fill unused lanes from _mm512_undefined_* warn, in GCC 12, of an
// uninitialised value inside their own header; their zero-masking forms with every lane set
// compile to the same instructions and do not. (Written with the vector types of vectors.h
// throughout, this kernel compiled to ~10% slower code.)
template <class E>
__m512 load_float32_bits16(const typename E::Bits* params, __mmask16 lanes);

template <>
inline __m512 load_float32_bits16<Float32Element>(const uint32_t* params, __mmask16 lanes) {
  return _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(lanes, params));
}

template <>
inline __m512 load_float32_bits16<BFloat16Element>(const uint16_t* params, __mmask16 lanes) {
  const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_maskz_loadu_epi16(lanes, params));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, wide, 16));
}

template <>
inline __m512 load_float32_bits16<Float16Element>(const uint16_t* params, __mmask16 lanes) {
  // Exact, subnormal halves included; inf and NaN stay inf and NaN.
  return _mm512_maskz_cvtph_ps(0xffff, _mm256_maskz_loadu_epi16(lanes, params));
}

// |w| of the live entries among `lanes` of the 16 from params (and mask) on, as float32; 0 in
// the other lanes, which are not read.
template <class E, bool kMasked>
inline __m512 load_magnitudes16(const typename E::Bits* params, const uint8_t* mask,
                                __mmask16 lanes) {
  if constexpr (kMasked) {
    const __m128i live = _mm_maskz_loadu_epi8(lanes, mask);
    lanes = _mm_test_epi8_mask(live, live);
  }
  return _mm512_abs_ps(load_float32_bits16<E>(params, lanes));
}

// sqrt(a) for float32 a >= 0 (see above). Zeros (and, with denormals-are-zero on, subnormals)
// take r = 0, so a root of 0 instead of 0 * inf; NaN and inf give NaN, a non-finite sum.
inline __m512 root16(__m512 a) {
  const __m512 r = _mm512_maskz_rsqrt14_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GT_OQ), a);
  const __m512 h = _mm512_mul_ps(a, r);
  const __m512 error = _mm512_fnmadd_ps(r, h, _mm512_set1_ps(1.0f));  // 1 - r h
  return _mm512_fmadd_ps(_mm512_mul_ps(h, _mm512_set1_ps(0.5f)), error, h);
}

// The low halves by shuffles of the vector types: GCC 12's casts are extracts of lane 0, which warn.
inline __m256 low_half(__m512 values) {
  const auto lanes = (f32x16)(values);
  return (__m256)(__builtin_shufflevector(lanes, lanes, 0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256 high_half(__m512 values) { return _mm512_maskz_extractf32x8_ps(0xff, values, 1); }
inline __m512d widened(__m256 values) { return _mm512_maskz_cvtps_pd(0xff, values); }

inline double lanes_total(__m512d values) {
  const __m256d quads =
      _mm256_add_pd((__m256d)(__builtin_shufflevector((f64x8)(values), (f64x8)(values), 0, 1, 2, 3)),
                    _mm512_maskz_extractf64x4_pd(0xf, values, 1));
  const __m128d pairs = _mm_add_pd(_mm256_castpd256_pd128(quads), _mm256_extractf128_pd(quads, 1));
  return _mm_cvtsd_f64(pairs) + _mm_cvtsd_f64(_mm_unpackhi_pd(pairs, pairs));
}

template <PowerKind kKind>
inline __m512d power8(__m512d x, __m512d root) {
  if constexpr (kKind == PowerKind::kOneAndHalf) return _mm512_mul_pd(x, root);
  if constexpr (kKind == PowerKind::kTwo) return _mm512_mul_pd(x, x);
  if constexpr (kKind == PowerKind::kThree) return _mm512_mul_pd(_mm512_mul_pd(x, x), x);
  if constexpr (kKind == PowerKind::kFour) {
    const __m512d square = _mm512_mul_pd(x, x);
    return _mm512_mul_pd(square, square);
  }
  return x;
}

// Σ a^kKind over 32 entries a step (two vectors of magnitudes and their roots), in 8 double
// lanes.
template <PowerKind kKind>
struct RootPairSum {
  __m512d sum = _mm512_setzero_pd();

  __attribute__((always_inline)) void add(__m512 first, __m512 second, __m512 first_root,
                                          __m512 second_root) {
    if constexpr (kKind == PowerKind::kHalf || kKind == PowerKind::kOne) {
      const __m512 pairs = kKind == PowerKind::kHalf ? _mm512_add_ps(first_root, second_root)
                                                     : _mm512_add_ps(first, second);
      sum = _mm512_add_pd(sum, widened(_mm256_add_ps(low_half(pairs), high_half(pairs))));
    } else {
      add_in_double(first, first_root);
      add_in_double(second, second_root);
    }
  }

  __attribute__((always_inline)) void add_in_double(__m512 magnitudes, __m512 roots) {
    const __m512d low = widened(low_half(magnitudes)), high = widened(high_half(magnitudes));
    __m512d root_low = low, root_high = high;  // unused but for a^1.5
    if constexpr (kKind == PowerKind::kOneAndHalf) {
      root_low = widened(low_half(roots));
      root_high = widened(high_half(roots));
    }
    sum = _mm512_add_pd(sum, _mm512_add_pd(power8<kKind>(low, root_low), power8<kKind>(high, root_high)));
  }
};

// prefetch_ahead (octets.h) for the one or two cache lines a step reads. Also before a
// segment's last step, so that the lines of short segments are fetched ahead too. Not a lambda:
// GCC takes a lambda that only prefetches for one without effects, and drops its calls.
template <class E>
__attribute__((always_inline)) inline void prefetch_step(const typename E::Bits* at) {
  prefetch_ahead<E>(at);
  if constexpr (sizeof(typename E::Bits) == 4) prefetch_ahead<E>(at + 16);
}

// Σ a^p and Σ a^q over the live entries of span (unscaled mode, fast-path kinds kP < kQ, one
// of them 0.5 or 1.5): 32 entries a step, the last 0..31 in one lane-masked step.
template <class E, PowerKind kP, PowerKind kQ, bool kMasked>
__attribute__((always_inline)) inline PowerPair sum_root_powers_by_sixteens(const OctetSpan<E>& span) {
  static_assert(needs_root<kP>() || needs_root<kQ>(), "pairs without roots go by octets");
  const auto [params, mask, n, readable] = span;
  RootPairSum<kP> sum_p;
  RootPairSum<kQ> sum_q;
  auto step = [&](int64_t i, __mmask16 first_lanes, __mmask16 second_lanes) {
    const __m512 first = load_magnitudes16<E, kMasked>(params + i, kMasked ? mask + i : nullptr, first_lanes);
    const __m512 second =
        load_magnitudes16<E, kMasked>(params + i + 16, kMasked ? mask + i + 16 : nullptr, second_lanes);
    const __m512 first_root = root16(first), second_root = root16(second);
    sum_p.add(first, second, first_root, second_root);
    sum_q.add(first, second, first_root, second_root);
  };
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    prefetch_step<E>(params + i);
    step(i, 0xffff, 0xffff);
  }
  // Always taken (no lanes when none are left): cheaper than a branch that mispredicts.
  prefetch_step<E>(params + i);
  step(i, leading_lanes(n - i), leading_lanes(n - i - 16));
  return {lanes_total(sum_p.sum), lanes_total(sum_q.sum)};
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA

#endif
