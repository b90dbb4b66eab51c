// AVX2 pieces for selecting among float32 magnitude keys held as int32: a dead entry is -1,
// below every key, so the signed compares of AVX2 order keys and dead entries alike.
#pragma once

#include "isa.h"

#include <cstdint>

#include "bracket_block.h"
#include "keys_avx512.h"
#include "radix_select.h"

#if defined(__AVX2__)
#include <immintrin.h>

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

constexpr int32_t kMaxKey = 0x7fffffff;

// For each 8-bit compare mask, the lanes to move to the front (the packing permutation).
struct PackTable {
  alignas(64) uint8_t lanes[256][8];
  PackTable() {
    for (int bits = 0; bits < 256; ++bits) {
      int packed = 0;
      for (int lane = 0; lane < 8; ++lane) {
        if ((bits >> lane) & 1) lanes[bits][packed++] = static_cast<uint8_t>(lane);
      }
      for (; packed < 8; ++packed) lanes[bits][packed] = 0;
    }
  }
};
inline const PackTable kPackTable;

// Stores the lanes of `keys` whose bit is set in `bits` at `to`, in order; 8 lanes are
// written (room for them is the caller's); returns how many count.
inline int pack_lanes(__m256i keys, unsigned bits, int32_t* to) {
  const __m128i lanes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(kPackTable.lanes[bits]));
  const __m256i packed = _mm256_permutevar8x32_epi32(keys, _mm256_cvtepu8_epi32(lanes));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(to), packed);
  return __builtin_popcount(bits);
}

// The keys of 8 entries from i on: magnitude bits, or -1 where the mask marks them dead.
template <bool kMasked>
inline __m256i load_keys(const uint32_t* params, const uint8_t* mask, int64_t i) {
  const __m256i key = _mm256_and_si256(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(params + i)), _mm256_set1_epi32(kMaxKey));
  if constexpr (!kMasked) return key;
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mask + i));
  const __m256i dead = _mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_setzero_si256());
  return _mm256_or_si256(key, dead);
}

template <bool kMasked>
inline int32_t load_key(const uint32_t* params, const uint8_t* mask, int64_t i) {
  if (kMasked && mask[i] == 0) return -1;
  return static_cast<int32_t>(params[i] & static_cast<uint32_t>(kMaxKey));
}

inline int32_t lanes_sum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

inline int32_t lanes_min(__m256i v) {
  __m128i s = _mm_min_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_min_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_min_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// out[begin..end) = live && key > bound, 32 entries a step.
template <bool kMasked>
void write_above(const uint32_t* params, const uint8_t* mask, int64_t begin, int64_t end,
                 int32_t bound, uint8_t* out) {
#if defined(SAP_KERNELS_KEYS16)
  write_above16<kMasked>(params, mask, begin, end, bound, out);
#else
  const __m256i bounds = _mm256_set1_epi32(bound);
  int64_t i = begin;
  for (; i + 32 <= end; i += 32) {
    __m256i above[4];
    for (int j = 0; j < 4; ++j) {
      above[j] = _mm256_cmpgt_epi32(load_keys<kMasked>(params, mask, i + 8 * j), bounds);
    }
    store_mask_bytes(above, out + i);
  }
  for (; i < end; ++i) out[i] = static_cast<uint8_t>(load_key<kMasked>(params, mask, i) > bound);
#endif
}

// A threshold, with the number of keys equal to it among all live entries.
struct SmallThreshold {
  Threshold<uint32_t> threshold;
  int64_t ties;
};

// The threshold of the rank-th largest of keys[0..n) (n <= 8 kBlocks; 1 <= rank <= the
// number of keys >= 0; keys[n..8 kBlocks) readable, not used), by counting for every key the
// keys above it: the rank-th largest is the least key with fewer than rank keys above it.
template <int kBlocks>
SmallThreshold rank_threshold(const int32_t* keys, int64_t n, int64_t rank) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lowest = _mm256_set1_epi32(INT32_MIN), none = _mm256_set1_epi32(kMaxKey);
  __m256i key[kBlocks], greater[kBlocks];
  for (int v = 0; v < kBlocks; ++v) {
    const __m256i loaded = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + 8 * v));
    const __m256i present = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n - 8 * v)), lanes);
    key[v] = _mm256_blendv_epi8(lowest, loaded, present);  // lanes past n: below everything
    greater[v] = _mm256_setzero_si256();
  }
  for (int64_t j = 0; j < n; ++j) {
    const __m256i other = _mm256_set1_epi32(keys[j]);
    for (int v = 0; v < kBlocks; ++v) {
      greater[v] = _mm256_sub_epi32(greater[v], _mm256_cmpgt_epi32(other, key[v]));
    }
  }
  const __m256i ranks = _mm256_set1_epi32(static_cast<int32_t>(rank));
  __m256i least = none;
  for (int v = 0; v < kBlocks; ++v) {
    const __m256i within = _mm256_cmpgt_epi32(ranks, greater[v]);
    least = _mm256_min_epi32(least, _mm256_blendv_epi8(none, key[v], within));
  }
  const int32_t threshold = lanes_min(least);
  const __m256i thresholds = _mm256_set1_epi32(threshold);
  __m256i above = _mm256_setzero_si256(), ties = _mm256_setzero_si256();
  for (int v = 0; v < kBlocks; ++v) {
    above = _mm256_sub_epi32(above, _mm256_cmpgt_epi32(key[v], thresholds));
    ties = _mm256_sub_epi32(ties, _mm256_cmpeq_epi32(key[v], thresholds));
  }
  return {{static_cast<uint32_t>(threshold), rank - lanes_sum(above)}, lanes_sum(ties)};
}

// rank_threshold for any n <= 64.
inline SmallThreshold rank_threshold_of_few(const int32_t* keys, int64_t n, int64_t rank) {
  switch ((n + 7) / 8) {
    case 1: return rank_threshold<1>(keys, n, rank);
    case 2: return rank_threshold<2>(keys, n, rank);
    case 3: return rank_threshold<3>(keys, n, rank);
    case 4: return rank_threshold<4>(keys, n, rank);
    case 5: return rank_threshold<5>(keys, n, rank);
    case 6: return rank_threshold<6>(keys, n, rank);
    case 7: return rank_threshold<7>(keys, n, rank);
    default: return rank_threshold<8>(keys, n, rank);
  }
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA

#endif
