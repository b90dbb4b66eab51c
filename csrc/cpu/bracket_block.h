// The bracket read of select_bracket.h, 32 entries a step with AVX2 (float32: BracketBlock;
// float16 / bfloat16: BracketBlock16): compares, mask bytes and the count of entries above the
// bracket stay in vector registers, and a step returns a bit per entry that lies inside the
// bracket (rare), for the caller to gather.
#pragma once

#include "isa.h"

#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

#if defined(__AVX2__)
constexpr bool kHasBracketBlock = true;

// Four vectors of 32-bit 0 / -1 flags to 32 mask bytes (0 / 1) in order: the packs interleave
// 128-bit lanes, the permutation puts them back.
inline void store_mask_bytes(const __m256i flags[4], uint8_t* out) {
  const __m256i words_low = _mm256_packs_epi32(flags[0], flags[1]);
  const __m256i words_high = _mm256_packs_epi32(flags[2], flags[3]);
  __m256i bytes = _mm256_packs_epi16(words_low, words_high);
  bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  bytes = _mm256_and_si256(bytes, _mm256_set1_epi8(1));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), bytes);
}

// Float32 keys (sign cleared) are below 2^31, so the signed compares of AVX2 order them.
struct BracketBlock {
  static constexpr int64_t kSize = 32;
  __m256i lo;
  __m256i hi;
  __m256i above_lanes = _mm256_setzero_si256();  // minus the count of entries above, per lane

  BracketBlock(uint32_t bracket_lo, uint32_t bracket_hi)
      : lo(_mm256_set1_epi32(static_cast<int32_t>(bracket_lo))),
        hi(_mm256_set1_epi32(static_cast<int32_t>(bracket_hi))) {}

  // out[0..32) = live && key > hi; returns bit j set where entry j is live and in [lo, hi].
  template <bool kMasked>
  uint32_t step(const uint32_t* params, const uint8_t* mask, uint8_t* out) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    __m256i above[4];
    uint32_t inside = 0;
    for (int j = 0; j < 4; ++j) {
      const __m256i key = _mm256_and_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(params + 8 * j)), abs_mask);
      __m256i up = _mm256_cmpgt_epi32(key, hi);
      __m256i outside = _mm256_or_si256(up, _mm256_cmpgt_epi32(lo, key));
      if constexpr (kMasked) {
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mask + 8 * j));
        const __m256i dead = _mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_setzero_si256());
        up = _mm256_andnot_si256(dead, up);
        outside = _mm256_or_si256(outside, dead);
      }
      above[j] = up;
      above_lanes = _mm256_add_epi32(above_lanes, up);
      const auto outside_bits = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(outside)));
      inside |= (~outside_bits & 0xffu) << (8 * j);
    }
    store_mask_bytes(above, out);
    return inside;
  }

  int64_t above() const {
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), above_lanes);
    int64_t total = 0;
    for (const int32_t lane : lanes) total -= lane;
    return total;
  }
};
// Float16 / bfloat16 keys (sign cleared) are below 2^15, so the signed 16-bit compares order
// them. The count above is kept by a popcount a step (16-bit lanes would overflow).
struct BracketBlock16 {
  static constexpr int64_t kSize = 32;
  __m256i lo;
  __m256i hi;
  int64_t above_count = 0;

  BracketBlock16(uint16_t bracket_lo, uint16_t bracket_hi)
      : lo(_mm256_set1_epi16(static_cast<int16_t>(bracket_lo))),
        hi(_mm256_set1_epi16(static_cast<int16_t>(bracket_hi))) {}

  // 0 / -1 bytes of the 32 entries in order, from two vectors of 16-bit flags (the pack
  // interleaves 128-bit lanes, the permutation puts them back).
  static __m256i flag_bytes(__m256i low, __m256i high) {
    return _mm256_permute4x64_epi64(_mm256_packs_epi16(low, high), 0xd8);
  }

  // out[0..32) = live && key > hi; returns bit j set where entry j is live and in [lo, hi].
  template <bool kMasked>
  uint32_t step(const uint16_t* params, const uint8_t* mask, uint8_t* out) {
    const __m256i abs_mask = _mm256_set1_epi16(0x7fff);
    __m256i up[2], outside[2];
    for (int j = 0; j < 2; ++j) {
      const __m256i key = _mm256_and_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(params + 16 * j)), abs_mask);
      up[j] = _mm256_cmpgt_epi16(key, hi);
      outside[j] = _mm256_or_si256(up[j], _mm256_cmpgt_epi16(lo, key));
    }
    __m256i up_bytes = flag_bytes(up[0], up[1]);
    __m256i outside_bytes = flag_bytes(outside[0], outside[1]);
    if constexpr (kMasked) {
      const __m256i live = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mask));
      const __m256i dead = _mm256_cmpeq_epi8(live, _mm256_setzero_si256());
      up_bytes = _mm256_andnot_si256(dead, up_bytes);
      outside_bytes = _mm256_or_si256(outside_bytes, dead);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                        _mm256_and_si256(up_bytes, _mm256_set1_epi8(1)));
    above_count += __builtin_popcount(static_cast<uint32_t>(_mm256_movemask_epi8(up_bytes)));
    return ~static_cast<uint32_t>(_mm256_movemask_epi8(outside_bytes));
  }

  int64_t above() const { return above_count; }
};
#else
constexpr bool kHasBracketBlock = false;
#endif

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
