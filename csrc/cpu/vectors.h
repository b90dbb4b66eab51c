// Vector types as GCC / Clang vector extensions: the same code becomes AVX2, SSE2 or NEON as
// the target allows. A cast between two vector types of one size keeps the bits (a bit cast).
#pragma once

#include "isa.h"

#include <cstdint>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

using f64x4 = double __attribute__((vector_size(32)));
using i64x4 = int64_t __attribute__((vector_size(32)));
using u64x4 = uint64_t __attribute__((vector_size(32)));
using f32x8 = float __attribute__((vector_size(32)));
using i32x8 = int32_t __attribute__((vector_size(32)));
using u32x8 = uint32_t __attribute__((vector_size(32)));
using f32x4 = float __attribute__((vector_size(16)));
using u16x8 = uint16_t __attribute__((vector_size(16)));
using u8x8 = uint8_t __attribute__((vector_size(8)));
using u16x16 = uint16_t __attribute__((vector_size(32)));
using u8x16 = uint8_t __attribute__((vector_size(16)));
#if defined(__AVX512F__)
using f64x8 = double __attribute__((vector_size(64)));
using i64x8 = int64_t __attribute__((vector_size(64)));
using u64x8 = uint64_t __attribute__((vector_size(64)));
using f32x16 = float __attribute__((vector_size(64)));
using i32x16 = int32_t __attribute__((vector_size(64)));
using u32x16 = uint32_t __attribute__((vector_size(64)));
#endif

// The integer vectors of a vector's lanes, and for float lanes the double vector of half of
// them.
template <class F>
struct LaneTypes;
template <>
struct LaneTypes<f32x8> {
  using Signed = i32x8;
  using Unsigned = u32x8;
  using HalfDouble = f64x4;
};
template <>
struct LaneTypes<f64x4> {
  using Signed = i64x4;
  using Unsigned = u64x4;
};
#if defined(__AVX512F__)
template <>
struct LaneTypes<f32x16> {
  using Signed = i32x16;
  using Unsigned = u32x16;
  using HalfDouble = f64x8;
};
template <>
struct LaneTypes<f64x8> {
  using Signed = i64x8;
  using Unsigned = u64x8;
};
#endif

// The largest of eight lanes, folded in halves (a loop over the lanes is a chain of eight
// dependent steps in every short segment).
inline uint32_t horizontal_max(u32x8 lanes) {
  const u32x8 swapped = __builtin_shufflevector(lanes, lanes, 4, 5, 6, 7, 0, 1, 2, 3);
  u32x8 folded = lanes > swapped ? lanes : swapped;
  const u32x8 pairs = __builtin_shufflevector(folded, folded, 2, 3, 0, 1, 6, 7, 4, 5);
  folded = folded > pairs ? folded : pairs;
  return folded[0] > folded[1] ? folded[0] : folded[1];
}

inline f64x4 splat(double value) { return f64x4{value, value, value, value}; }

// The value in every lane of a double vector.
template <class V>
inline V splat_as(double value) {
  return V{} + value;
}

inline f32x8 splat8(float value) {
  return f32x8{value, value, value, value, value, value, value, value};
}

inline f64x4 sqrt_lanes(f64x4 x) {
#if defined(__AVX__)
  return (f64x4)(_mm256_sqrt_pd((__m256d)(x)));
#else
  return f64x4{__builtin_sqrt(x[0]), __builtin_sqrt(x[1]), __builtin_sqrt(x[2]),
               __builtin_sqrt(x[3])};
#endif
}
#if defined(__AVX512F__)
// the masked form with every lane kept: the unmasked intrinsic warns (GCC 12) of an
// uninitialised value inside its own header
inline f64x8 sqrt_lanes(f64x8 x) { return (f64x8)(_mm512_maskz_sqrt_pd(0xff, (__m512d)(x))); }
#endif

// The two halves of eight floats, each widened to four doubles. (GCC lowers
// __builtin_convertvector of four floats to two-lane conversions and shuffles, so AVX builds
// say vcvtps2pd directly.)
inline void widen(f32x8 values, f64x4& low, f64x4& high) {
#if defined(__AVX__)
  const __m256 packed = (__m256)(values);
  low = (f64x4)(_mm256_cvtps_pd(_mm256_castps256_ps128(packed)));
  high = (f64x4)(_mm256_cvtps_pd(_mm256_extractf128_ps(packed, 1)));
  return;
#endif
  f32x4 halves[2];
  __builtin_memcpy(halves, &values, sizeof(halves));
  low = __builtin_convertvector(halves[0], f64x4);
  high = __builtin_convertvector(halves[1], f64x4);
}

#if defined(__AVX512F__)
// Two vcvtps2pd of eight lanes each: __builtin_convertvector of eight floats becomes four-lane
// conversions and inserts, and the unmasked intrinsic warns (GCC 12) of an uninitialised value
// inside its own header, hence the masked form with every lane kept.
inline void widen(f32x16 values, f64x8& low, f64x8& high) {
  const f32x8 halves[2] = {
      __builtin_shufflevector(values, values, 0, 1, 2, 3, 4, 5, 6, 7),
      __builtin_shufflevector(values, values, 8, 9, 10, 11, 12, 13, 14, 15)};
  low = (f64x8)(_mm512_maskz_cvtps_pd(0xff, (__m256)(halves[0])));
  high = (f64x8)(_mm512_maskz_cvtps_pd(0xff, (__m256)(halves[1])));
}

// The largest of sixteen lanes: the larger half, then horizontal_max
// (_mm512_reduce_max_epu32 reads an uninitialised value in GCC 12's header, which warns).
inline uint32_t horizontal_max(u32x16 lanes) {
  const u32x8 low = __builtin_shufflevector(lanes, lanes, 0, 1, 2, 3, 4, 5, 6, 7);
  const u32x8 high = __builtin_shufflevector(lanes, lanes, 8, 9, 10, 11, 12, 13, 14, 15);
  return horizontal_max(low > high ? low : high);
}
#endif

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
