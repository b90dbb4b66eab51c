// One float32 segment in cache (up to kSmallSegment entries) selected with AVX2, by one thread.
//
// Keys are the magnitude bits as int32 (a dead entry is -1, below every key), so the signed
// compares of AVX2 order them. A strided sample of 32 keys, ranked by all-pairs compares,
// gives a bracket [lo, hi] about the threshold (row_sigmas standard deviations of the sample
// rank on each side). One vector read counts the keys above hi and packs the ones inside to
// the front of the scratch space (a permutation looked up from the compare bits: no branch per
// key). While more than kSampleAgain keys are left, another sample of them narrows them the
// same way; then 64-bin histograms of (key - lo), each round packing the chosen bin's keys,
// until at most kRankedDirectly are left, which are ranked by all pairs. A last vector read
// writes the mask; only when the threshold's ties are split does a scalar pass keep the first
// ones in flat order.
// A bracket that misses costs one more read, with the side of it that holds the threshold.
// No branch depends on the data's order, and the mask is exact whatever the sample shows.
// Segments shorter than kMinVectorSegment, and the last few keys of longer ones, are ranked
// by comparing all pairs (keys_avx2.h). The sample is gathered into vectors (vpgatherdd). In the
// AVX-512 copy (keys_avx512.h) the packing reads and the mask write take 16 keys a step, with
// compares into lane masks and vpcompressd.
#pragma once

#include "isa.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "accumulator.h"
#include "keys_avx2.h"
#include "radix_select.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

#if defined(__AVX2__)
constexpr bool kHasSmallVectors = true;

// From this many entries on a strided sample of kRowSample brackets the threshold; shorter
// segments are ranked by all pairs.
constexpr int64_t kMinVectorSegment = 64;
constexpr int kRowSample = 32;
// The bracket's half-width in standard deviations of the sample rank: narrower brackets leave
// fewer keys for the later rounds, wider ones miss less often (a miss reads the keys once
// more). Measured on rows of random normal keys, keep fractions uniform in [0.5, 0.99], one
// core in cache: 1.0 was 13% faster than 1.5 on rows of 1000, the same on 128 to 4096, and
// 7% slower on 16384, where the rounds after the first are longer.
inline double row_sigmas(int64_t n) { return n <= 4096 ? 1.0 : 1.5; }
constexpr int kBinBits = 6;
// Above this many keys left, another sample narrows them (below, histograms of them do).
constexpr int64_t kSampleAgain = 256;
// At most this many keys left, all pairs of them are compared (rank_threshold).
constexpr int64_t kRankedDirectly = 64;

// The keys at 0-based positions `first` and `second` from the top of the sample, by ranking
// every key against all others: the position-th largest is the least key with at most
// `position` keys above it.
// `keys` holds the sample as vectors, `sample` the same in memory.
constexpr int kSampleVectors = kRowSample / 8;
inline void sample_keys_at(const __m256i keys[kSampleVectors], const int32_t* sample, int first,
                           int second, int32_t& first_key, int32_t& second_key) {
  constexpr int kVectors = kSampleVectors;
  __m256i greater[kVectors];
  for (int v = 0; v < kVectors; ++v) greater[v] = _mm256_setzero_si256();
  for (int j = 0; j < kRowSample; ++j) {
    const __m256i other = _mm256_set1_epi32(sample[j]);
    for (int v = 0; v < kVectors; ++v) {
      greater[v] = _mm256_sub_epi32(greater[v], _mm256_cmpgt_epi32(other, keys[v]));
    }
  }
  const __m256i none = _mm256_set1_epi32(kMaxKey);
  const __m256i first_bound = _mm256_set1_epi32(first + 1), second_bound = _mm256_set1_epi32(second + 1);
  __m256i first_least = none, second_least = none;
  for (int v = 0; v < kVectors; ++v) {
    const __m256i at_first = _mm256_cmpgt_epi32(first_bound, greater[v]);
    const __m256i at_second = _mm256_cmpgt_epi32(second_bound, greater[v]);
    first_least = _mm256_min_epi32(first_least, _mm256_blendv_epi8(none, keys[v], at_first));
    second_least = _mm256_min_epi32(second_least, _mm256_blendv_epi8(none, keys[v], at_second));
  }
  first_key = lanes_min(first_least);
  second_key = lanes_min(second_least);
}

struct KeyRange {
  int32_t lo;
  int32_t hi;
};

// The lane offsets 0, stride, ..., 7 stride of a strided gather (stride * 7 < 2^31).
inline __m256i stride_offsets(int64_t stride) {
  return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                            _mm256_set1_epi32(static_cast<int32_t>(stride)));
}

// Keys read from a segment of the params (and its mask) ...
template <bool kMasked>
struct SegmentKeys {
  const uint32_t* params;
  const uint8_t* mask;
  // The keys of entries first, first + stride, ..., first + 7 stride, gathered into a vector:
  // built in memory one by one, the vector load after them would wait for the stores.
  __m256i strided8(int64_t first, int64_t stride) const {
    const auto* base = reinterpret_cast<const int*>(params + first);
    __m256i key = _mm256_and_si256(_mm256_i32gather_epi32(base, stride_offsets(stride), 4),
                                   _mm256_set1_epi32(kMaxKey));
    if constexpr (!kMasked) return key;
    int dead = 0;
    for (int lane = 0; lane < 8; ++lane) dead |= (mask[first + lane * stride] == 0) << lane;
    const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i dead_bits = _mm256_and_si256(_mm256_set1_epi32(dead), lane_bits);
    return _mm256_or_si256(key, _mm256_cmpeq_epi32(dead_bits, lane_bits));  // dead: -1
  }
  __m256i eight(int64_t i) const { return load_keys<kMasked>(params, mask, i); }
  int32_t one(int64_t i) const { return load_key<kMasked>(params, mask, i); }
#if defined(SAP_KERNELS_KEYS16)
  __m512i sixteen(int64_t i, __mmask16 lanes) const {
    return load_keys16<kMasked>(params, mask, i, lanes);
  }
#endif
};

// ... or keys already packed into scratch space (all live).
struct PackedKeys {
  const int32_t* keys;
  __m256i strided8(int64_t first, int64_t stride) const {
    return _mm256_i32gather_epi32(keys + first, stride_offsets(stride), 4);
  }
  __m256i eight(int64_t i) const {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i));
  }
  int32_t one(int64_t i) const { return keys[i]; }
#if defined(SAP_KERNELS_KEYS16)
  __m512i sixteen(int64_t i, __mmask16 lanes) const {
    return _mm512_mask_loadu_epi32(_mm512_set1_epi32(-1), lanes, keys + i);
  }
#endif
};

// The entries a segment [begin, end)'s sample takes: kRowSample of them, `stride` apart from
// `first` (prefetch_sample reads the same ones ahead).
struct RowSample {
  int64_t stride;
  int64_t first;
  RowSample(int64_t begin, int64_t end)
      : stride((end - begin) / kRowSample), first(begin + stride / 2) {}
};

// A bracket inside `range` about the rank-th largest of the `live` keys of source[begin, end),
// from a strided sample of them.
template <class Source>
KeyRange sample_bracket(const Source& source, int64_t begin, int64_t end, int64_t live,
                        int64_t rank, KeyRange range) {
  alignas(32) int32_t sample[kRowSample];
  __m256i keys[kSampleVectors];
  const RowSample grid(begin, end);
  int sampled_live = 0;
  for (int v = 0; v < kSampleVectors; ++v) {
    keys[v] = source.strided8(grid.first + 8 * v * grid.stride, grid.stride);
    _mm256_store_si256(reinterpret_cast<__m256i*>(sample + 8 * v), keys[v]);
    const __m256i live_lanes = _mm256_cmpgt_epi32(keys[v], _mm256_set1_epi32(-1));
    sampled_live += __builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(live_lanes)));
  }
  const double kept = static_cast<double>(rank) / static_cast<double>(live);
  const double centre = kept * sampled_live;  // sample keys above the threshold
  const double spread = std::sqrt(sampled_live * kept * (1.0 - kept));
  const double margin = row_sigmas(end - begin) * spread + 1.0;
  const int hi_position = static_cast<int>(std::floor(centre - margin));
  const int lo_position = static_cast<int>(std::ceil(centre + margin));
  int32_t hi_key = range.hi, lo_key = range.lo;
  sample_keys_at(keys, sample, std::max(hi_position, 0), std::min(lo_position, kRowSample - 1),
                 hi_key, lo_key);
  // Positions beyond the sample leave that side of the range as it was.
  return {lo_position < sampled_live ? lo_key : range.lo, hi_position >= 0 ? hi_key : range.hi};
}

struct BracketCount {
  int64_t above;
  int64_t inside;
};

#if defined(SAP_KERNELS_KEYS16)
// pack_bracket sixteen keys a step, the last step lane-masked.
template <class Source>
BracketCount pack_bracket16(const Source& source, int64_t begin, int64_t end, KeyRange bracket,
                            int32_t* inside) {
  // lo <= key <= hi as key - lo <= hi - lo in unsigned arithmetic (inside16); an empty bracket
  // as the one key INT32_MIN, which no key is.
  const bool empty = bracket.lo > bracket.hi;
  const __m512i lo = _mm512_set1_epi32(empty ? INT32_MIN : bracket.lo);
  const __m512i hi = _mm512_set1_epi32(bracket.hi);
  const __m512i width = _mm512_set1_epi32(
      empty ? 0 : static_cast<int32_t>(static_cast<uint32_t>(bracket.hi) - static_cast<uint32_t>(bracket.lo)));
  int64_t above = 0, found = 0;
  for (int64_t i = begin; i < end; i += 16) {
    const __m512i key = source.sixteen(i, first_lanes(end - i));
    above += __builtin_popcount(_mm512_cmpgt_epi32_mask(key, hi));
    found += pack_lanes16(key, inside16(key, lo, width), inside + found);
  }
  return {above, found};
}
#endif

// Counts the live keys of source[begin, end) above the bracket and packs those inside it into
// `inside` (room for end - begin + kPackSlack).
template <class Source>
BracketCount pack_bracket(const Source& source, int64_t begin, int64_t end, KeyRange bracket,
                          int32_t* inside) {
#if defined(SAP_KERNELS_KEYS16)
  return pack_bracket16(source, begin, end, bracket, inside);
#else
  const __m256i lo = _mm256_set1_epi32(bracket.lo), hi = _mm256_set1_epi32(bracket.hi);
  __m256i above_lanes = _mm256_setzero_si256();
  int64_t found = 0, i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256i key = source.eight(i);
    const __m256i above = _mm256_cmpgt_epi32(key, hi);
    const __m256i outside = _mm256_or_si256(above, _mm256_cmpgt_epi32(lo, key));
    above_lanes = _mm256_sub_epi32(above_lanes, above);
    const unsigned bits = ~static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(outside))) & 0xffu;
    found += pack_lanes(key, bits, inside + found);
  }
  int64_t above = lanes_sum(above_lanes);
  for (; i < end; ++i) {
    const int32_t key = source.one(i);
    above += key > bracket.hi;
    inside[found] = key;
    found += key >= bracket.lo && key <= bracket.hi;
  }
  return {above, found};
#endif
}

// One round: `range` holds the rank-th largest of the `live` keys of source[begin, end); a
// sample narrows it to a bracket, whose keys are packed into `to` (a miss reads once more, on
// the side of the bracket that holds the threshold). Returns how many were packed; rank and
// range now refer to them.
template <class Source>
int64_t narrow_by_sample(const Source& source, int64_t begin, int64_t end, int64_t live,
                         int64_t& rank, KeyRange& range, int32_t* to) {
  KeyRange bracket = sample_bracket(source, begin, end, live, rank, range);
  BracketCount count = pack_bracket(source, begin, end, bracket, to);
  if (rank <= count.above) {  // above the bracket (so bracket.hi < range.hi)
    bracket = {bracket.hi + 1, range.hi};
    count = pack_bracket(source, begin, end, bracket, to);
  } else if (rank > count.above + count.inside) {  // below it (so bracket.lo > range.lo)
    bracket = {range.lo, bracket.lo - 1};
    count = pack_bracket(source, begin, end, bracket, to);
  }
  rank -= count.above;
  range = bracket;
  return count.inside;
}

// Packs the keys of keys[0..n) that lie in `range` to the front, in place; returns how many.
inline int64_t pack_range(int32_t* keys, int64_t n, KeyRange range) {
#if defined(SAP_KERNELS_KEYS16)
  // In place: the 16 lanes a step stores at packed <= i overwrite only keys already read.
  return pack_bracket16(PackedKeys{keys}, 0, n, range, keys).inside;
#else
  const __m256i lo = _mm256_set1_epi32(range.lo), hi = _mm256_set1_epi32(range.hi);
  int64_t found = 0, i = 0;
  // The 8 lanes stored at found <= i overwrite only keys already read.
  for (; i + 8 <= n; i += 8) {
    const __m256i key = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i));
    const __m256i outside = _mm256_or_si256(_mm256_cmpgt_epi32(key, hi), _mm256_cmpgt_epi32(lo, key));
    const unsigned bits = ~static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(outside))) & 0xffu;
    found += pack_lanes(key, bits, keys + found);
  }
  for (; i < n; ++i) {
    const int32_t key = keys[i];
    keys[found] = key;
    found += key >= range.lo && key <= range.hi;
  }
  return found;
#endif
}

// The threshold of the rank-th largest of keys[0..n) (1 <= rank <= n), all in `range`;
// every key equal to it is among them. Keys are reordered.
inline SmallThreshold select_in_range(int32_t* keys, int64_t n, int64_t rank, KeyRange range) {
  for (;;) {
    if (range.lo == range.hi) return {{static_cast<uint32_t>(range.lo), rank}, n};
    if (n <= kRankedDirectly) return rank_threshold_of_few(keys, n, rank);
    // 64 bins over the range; four copies, so that runs of one bin do not wait on each other.
    const auto width = static_cast<uint32_t>(range.hi - range.lo);
    const int shift = std::max(0, 32 - __builtin_clz(width) - kBinBits);
    uint32_t copies[4][1 << kBinBits] = {};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      for (int c = 0; c < 4; ++c) ++copies[c][static_cast<uint32_t>(keys[i + c] - range.lo) >> shift];
    }
    for (; i < n; ++i) ++copies[0][static_cast<uint32_t>(keys[i] - range.lo) >> shift];
    auto bin = static_cast<int>(width >> shift);
    for (;; --bin) {
      const int64_t in_bin = int64_t{copies[0][bin]} + copies[1][bin] + copies[2][bin] + copies[3][bin];
      if (bin == 0 || rank <= in_bin) break;
      rank -= in_bin;
    }
    const int64_t bin_lo = int64_t{range.lo} + (int64_t{bin} << shift);
    const int64_t bin_hi = std::min<int64_t>(range.hi, bin_lo + (int64_t{1} << shift) - 1);
    range = {static_cast<int32_t>(bin_lo), static_cast<int32_t>(bin_hi)};
    n = pack_range(keys, n, range);
  }
}

// Writes the mask of [begin, end) for a threshold: key > threshold, and of the ties at it the
// first ties_kept live ones in flat order (a scalar pass, only when some ties are dropped).
template <bool kMasked>
void write_threshold(const uint32_t* params, const uint8_t* mask, int64_t begin, int64_t end,
                     const SmallThreshold& found, uint8_t* out) {
  const auto key = static_cast<int32_t>(found.threshold.key);
  if (found.threshold.ties_kept == found.ties) {  // every tie kept: key >= threshold
    return write_above<kMasked>(params, mask, begin, end, key - 1, out);
  }
  write_above<kMasked>(params, mask, begin, end, key, out);
  int64_t kept_ties = 0;
  for (int64_t i = begin; i < end && kept_ties < found.threshold.ties_kept; ++i) {
    if (load_key<kMasked>(params, mask, i) == key) {
      out[i] = 1;
      ++kept_ties;
    }
  }
}

// The threshold of the keep-th largest of the live keys of [begin, end) (0 < keep < live), with
// the number of live keys equal to it; scratch has room for 2 (end - begin + kPackSlack) keys.
// Segments shorter than kMinVectorSegment have their keys copied and ranked by all pairs.
template <bool kMasked>
SmallThreshold small_threshold(const uint32_t* params, const uint8_t* mask, int64_t begin,
                               int64_t end, int64_t live, int64_t keep, int32_t* scratch) {
  int32_t* keys = scratch;
  if (end - begin < kMinVectorSegment) {
    const int64_t n = end - begin;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys + i), load_keys<kMasked>(params, mask, begin + i));
    }
    for (; i < n; ++i) keys[i] = load_key<kMasked>(params, mask, begin + i);
    return rank_threshold_of_few(keys, n, keep);
  }
  int32_t* spare = scratch + (end - begin + kPackSlack);
  KeyRange range{0, kMaxKey};
  int64_t rank = keep;
  int64_t n = narrow_by_sample(SegmentKeys<kMasked>{params, mask}, begin, end, live, rank, range,
                               keys);
  // More rounds of samples while they pay: each costs a vector read of the keys left.
  while (n > kSampleAgain && range.lo != range.hi) {
    const int64_t narrowed = narrow_by_sample(PackedKeys{keys}, 0, n, n, rank, range, spare);
    std::swap(keys, spare);
    const bool slow = 4 * narrowed > 3 * n;  // ties or a sample that keeps missing
    n = narrowed;
    if (slow) break;
  }
  return select_in_range(keys, n, rank, range);
}

// The threshold of the keep-th largest live key of [begin, end) (0 < keep < live).
inline SmallThreshold small_threshold(const uint32_t* params, const uint8_t* mask, int64_t begin,
                                      int64_t end, int64_t live, int64_t keep,
                                      std::vector<uint32_t>& scratch) {
  auto* keys = reinterpret_cast<int32_t*>(
      scratch_of(scratch, static_cast<size_t>(2 * (end - begin + kPackSlack))));
  if (mask == nullptr) return small_threshold<false>(params, mask, begin, end, live, keep, keys);
  return small_threshold<true>(params, mask, begin, end, live, keep, keys);
}

// out[begin..end) = live && key > bound.
inline void write_above_live(const uint32_t* params, const uint8_t* mask, int64_t begin,
                             int64_t end, int32_t bound, uint8_t* out) {
  if (mask == nullptr) return write_above<false>(params, mask, begin, end, bound, out);
  write_above<true>(params, mask, begin, end, bound, out);
}

// Keeps the keep largest live entries of [begin, end) (end - begin <= kSmallSegment).
inline void select_small_vectors(const uint32_t* params, const uint8_t* mask, int64_t begin,
                                 int64_t end, int64_t keep, std::vector<uint32_t>& scratch,
                                 uint8_t* out) {
  const int64_t live = count_live(mask == nullptr ? mask : mask + begin, end - begin);
  if (keep <= 0 || keep >= live) {
    // Nothing is above kMaxKey; every live key is above -1.
    return write_above_live(params, mask, begin, end, keep <= 0 ? kMaxKey : -1, out);
  }
  const SmallThreshold found = small_threshold(params, mask, begin, end, live, keep, scratch);
  if (mask == nullptr) return write_threshold<false>(params, mask, begin, end, found, out);
  write_threshold<true>(params, mask, begin, end, found, out);
}
#else
constexpr bool kHasSmallVectors = false;
#endif

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
