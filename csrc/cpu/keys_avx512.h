// AVX-512 pieces of the selection among float32 keys (keys_avx2.h: magnitude bits as int32, a
// dead entry -1): sixteen keys a vector, compares straight into lane masks, and packing by
// vpcompressd instead of a permutation looked up per 8 keys. Lanes past the end of a range
// are masked off, so a range needs no scalar tail.
#pragma once

#include "isa.h"

#include <cstdint>

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#include <immintrin.h>

#define SAP_KERNELS_KEYS16 1

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// Room past the end of a buffer of packed keys that a 16-lane store may write.
constexpr int64_t kPackSlack = 16;

// The first `count` lanes (count may be <= 0 or > 16).
inline __mmask16 first_lanes(int64_t count) {
  if (count <= 0) return 0;
  return count >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << count) - 1u);
}

// The keys of the 16 entries from i on, -1 where dead or outside `lanes` (those not read).
template <bool kMasked>
inline __m512i load_keys16(const uint32_t* params, const uint8_t* mask, int64_t i,
                           __mmask16 lanes) {
  const __m512i key =
      _mm512_and_si512(_mm512_maskz_loadu_epi32(lanes, params + i), _mm512_set1_epi32(0x7fffffff));
  __mmask16 live = lanes;
  if constexpr (kMasked) {
    const __m128i bytes = _mm_maskz_loadu_epi8(lanes, mask + i);
    live = _mm_test_epi8_mask(bytes, bytes);
  }
  return _mm512_mask_mov_epi32(_mm512_set1_epi32(-1), live, key);
}

// Stores the lanes of `keys` set in `lanes` at `to`, in order (16 lanes written: room for them
// is the caller's); returns how many count.
inline int64_t pack_lanes16(__m512i keys, __mmask16 lanes, int32_t* to) {
  _mm512_storeu_si512(to, _mm512_maskz_compress_epi32(lanes, keys));
  return __builtin_popcount(lanes);
}

// The lanes of `keys` in [lo, lo + width] (width unsigned): key - lo <= width in unsigned
// arithmetic, one compare instead of two (compares into lane masks share a port with
// vpcompressd).
inline __mmask16 inside16(__m512i keys, __m512i lo, __m512i width) {
  return _mm512_cmple_epu32_mask(_mm512_sub_epi32(keys, lo), width);
}

// out[begin..end) = live && key > bound, 64 entries a step (one 64-byte store).
template <bool kMasked>
void write_above16(const uint32_t* params, const uint8_t* mask, int64_t begin, int64_t end,
                   int32_t bound, uint8_t* out) {
  const __m512i bounds = _mm512_set1_epi32(bound);
  int64_t i = begin;
  for (; i + 64 <= end; i += 64) {
    uint64_t above = 0;
    for (int j = 0; j < 4; ++j) {
      const __m512i keys = load_keys16<kMasked>(params, mask, i + 16 * j, 0xffff);
      above |= uint64_t{_mm512_cmpgt_epi32_mask(keys, bounds)} << (16 * j);
    }
    _mm512_storeu_si512(out + i, _mm512_maskz_set1_epi8(above, 1));
  }
  for (; i < end; i += 16) {
    const __mmask16 lanes = first_lanes(end - i);
    const __mmask16 above =
        _mm512_cmpgt_epi32_mask(load_keys16<kMasked>(params, mask, i, lanes), bounds);
    _mm_mask_storeu_epi8(out + i, lanes, _mm_maskz_set1_epi8(above, 1));
  }
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA

#else
namespace sap_kernels::cpu::SAP_KERNELS_ISA {
constexpr int64_t kPackSlack = 8;  // the 8-lane stores of keys_avx2.h
}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
#endif
