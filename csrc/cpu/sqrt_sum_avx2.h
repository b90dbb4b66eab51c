// Σ sqrt(|w|) over float32 entries with AVX2: the double-precision square root (vsqrtpd) is
// slow enough to make p = 0.5 compute-bound, so take the float32 root (vsqrtps, correctly
// rounded, 2^-24 relative), then one Newton step in double with a 12-bit reciprocal:
//   y1 = y0 + (a - y0^2) * (1 / (2 y0))
// a - y0^2 is exact in double (y0 has 24 bits), so y1 is within ~2^-36 relative of sqrt(a).
#pragma once

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#define SAP_KERNELS_HAS_SQRT_SUM_AVX2 1

namespace sap_kernels::cpu {

inline double horizontal_sum(__m256d v) {
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, v);
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

// Σ sqrt(a), a = |w| where live, and with it Σ a (kWithFirst) and Σ a^2 (kWithSecond) in the
// same pass: 8 entries per step.
template <bool kWithFirst, bool kWithSecond>
inline void sum_sqrt_float32_avx2(const uint32_t* bits, const uint8_t* mask, int64_t n,
                                  double& sum_sqrt, double& sum_first, double& sum_second) {
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256 smallest = _mm256_set1_ps(1e-30f);  // keeps 1 / y0 finite where a = 0
  __m256d acc_low = _mm256_setzero_pd(), acc_high = _mm256_setzero_pd();
  __m256d first = _mm256_setzero_pd(), second = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i raw = _mm256_and_si256(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + i)), abs_mask);
    if (mask != nullptr) {
      int64_t mask_bytes;
      std::memcpy(&mask_bytes, mask + i, sizeof(mask_bytes));
      const __m256i live = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(mask_bytes));
      raw = _mm256_andnot_si256(_mm256_cmpeq_epi32(live, _mm256_setzero_si256()), raw);
    }
    const __m256 a = _mm256_castsi256_ps(raw);
    const __m256 y0 = _mm256_sqrt_ps(a);
    const __m256 half_reciprocal =
        _mm256_mul_ps(_mm256_rcp_ps(_mm256_max_ps(y0, smallest)), _mm256_set1_ps(0.5f));
    for (int part = 0; part < 2; ++part) {
      const __m128 a4 = part ? _mm256_extractf128_ps(a, 1) : _mm256_castps256_ps128(a);
      const __m128 y4 = part ? _mm256_extractf128_ps(y0, 1) : _mm256_castps256_ps128(y0);
      const __m128 r4 = part ? _mm256_extractf128_ps(half_reciprocal, 1)
                             : _mm256_castps256_ps128(half_reciprocal);
      const __m256d ad = _mm256_cvtps_pd(a4), yd = _mm256_cvtps_pd(y4);
      const __m256d residual = _mm256_fnmadd_pd(yd, yd, ad);  // a - y0^2, exact
      const __m256d y1 = _mm256_fmadd_pd(residual, _mm256_cvtps_pd(r4), yd);
      if (kWithFirst) first = _mm256_add_pd(first, ad);
      if (kWithSecond) second = _mm256_fmadd_pd(ad, ad, second);
      if (part) {
        acc_high = _mm256_add_pd(acc_high, y1);
      } else {
        acc_low = _mm256_add_pd(acc_low, y1);
      }
    }
  }
  double sqrt_total = horizontal_sum(_mm256_add_pd(acc_low, acc_high));
  double first_total = horizontal_sum(first), second_total = horizontal_sum(second);
  for (; i < n; ++i) {
    const bool live = mask == nullptr || mask[i] != 0;
    float value;
    const uint32_t magnitude = bits[i] & 0x7fffffffu;
    std::memcpy(&value, &magnitude, sizeof(value));
    const double a = live ? static_cast<double>(value) : 0.0;
    sqrt_total += std::sqrt(a);
    first_total += a;
    second_total += a * a;
  }
  sum_sqrt += sqrt_total;
  if (kWithFirst) sum_first += first_total;
  if (kWithSecond) sum_second += second_total;
}

}  // namespace sap_kernels::cpu
#endif
