// One segment short enough for the cache, selected by one thread. With AVX2, float32 by
// select_small_avx2.h, and float16 / bfloat16 too, their 15-bit keys widened to 32 bits first
// (that selection orders the keys as integers), and float64 by the high 32 bits of its keys
// first. Otherwise (no AVX2) as follows:
// the first digit's histogram is taken from the params, only the chosen bucket's keys are
// gathered into scratch space, selected there (radix_select.h), and the mask written in one more
// pass over the (cached) segment.
#pragma once

#include "isa.h"

#include <cstdint>
#include <type_traits>
#include <vector>

#include "element.h"
#include "radix_select.h"
#include "segment_keys.h"
#include "select_small_avx2.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// Small enough for the uint32 counts of DigitHistogram, and for the cache.
constexpr int64_t kSmallSegment = int64_t{1} << 15;

// A segment of a few entries: its live keys gathered, then selected among directly.
template <class E>
void select_short(const Keys<E>& keys, int64_t begin, int64_t end, int64_t keep,
                  std::vector<typename E::Bits>& scratch, uint8_t* out) {
  auto* gathered = scratch_of(scratch, static_cast<size_t>(end - begin));
  int64_t live = 0;
  for (int64_t i = begin; i < end; ++i) {
    gathered[live] = keys.key(i);
    live += keys.live(i);
  }
  if (keep <= 0 || live == 0) return write_live(keys, begin, end, 0, out);
  if (keep >= live) return write_live(keys, begin, end, 1, out);
  write_mask(keys, begin, end, select_among_few(gathered, live, keep), 0, out);
}

#if defined(__AVX2__)
// A float16 / bfloat16 segment selected by the float32 vector selection: its magnitude keys
// (the bits with the sign cleared, below 2^15) copied into 32-bit words, which that selection
// reads as it reads float32 bits with the sign cleared; it orders them as integers, so the mask
// is the same. Scalar radix rounds over 16-bit keys took about 4x as long on rows of 1000.
template <class E>
void select_small_widened(const Keys<E>& keys, int64_t begin, int64_t end, int64_t keep,
                          uint8_t* out) {
  static_assert(sizeof(typename E::Bits) == 2, "16-bit keys");
  thread_local std::vector<uint32_t> widened, scratch;
  const auto n = static_cast<size_t>(end - begin);
  uint32_t* keys32 = scratch_of(widened, n);
  for (size_t i = 0; i < n; ++i) keys32[i] = keys.key(begin + static_cast<int64_t>(i));
  const uint8_t* mask = keys.mask == nullptr ? nullptr : keys.mask + begin;
  select_small_vectors(keys32, mask, 0, end - begin, keep, scratch, out + begin);
}

// A float64 segment selected by the float32 vector selection over the high 32 bits of its
// magnitude keys (below 2^31 with the sign cleared), which order the keys but for ties among
// keys sharing them. That selection finds the high word H of the threshold and how many live
// keys have it; keys above H are kept, those below dropped, and only when the keys at H are
// not all kept or all dropped are those few ranked by their whole keys (radix rounds). With
// scalar radix rounds over all 63-bit keys sap_step took about 3x as long on rows of 1000.
inline void select_small_high_words(const Keys<Float64Element>& keys, int64_t begin,
                                    int64_t end, int64_t keep, std::vector<uint64_t>& tied,
                                    uint8_t* out) {
  thread_local std::vector<uint32_t> high, scratch;
  const auto n = static_cast<size_t>(end - begin);
  scratch_of(high, n);
  for (size_t i = 0; i < n; ++i) {
    high[i] = static_cast<uint32_t>(keys.key(begin + static_cast<int64_t>(i)) >> 32);
  }
  const uint8_t* mask = keys.mask == nullptr ? nullptr : keys.mask + begin;
  const int64_t live = count_live(mask, end - begin);
  if (keep <= 0 || live <= keep) return write_live(keys, begin, end, keep > 0, out);
  const SmallThreshold found = small_threshold(high.data(), mask, 0, end - begin, live, keep, scratch);
  const uint32_t high_key = found.threshold.key;
  if (found.threshold.ties_kept == found.ties) {
    return write_above_live(high.data(), mask, 0, end - begin, static_cast<int32_t>(high_key) - 1,
                            out + begin);
  }
  write_above_live(high.data(), mask, 0, end - begin, static_cast<int32_t>(high_key), out + begin);
  scratch_of(tied, static_cast<size_t>(found.ties) + 1);  // + 1: the branch-free gather's last store
  int64_t ties = 0;
  for (int64_t i = begin; i < end; ++i) {
    tied[static_cast<size_t>(ties)] = keys.key(i);
    ties += keys.live(i) && high[static_cast<size_t>(i - begin)] == high_key;
  }
  const Threshold<uint64_t> threshold = select_from_keys<uint64_t>(
      tied.data(), ties, found.threshold.ties_kept, 32 - kDigitBits, uint64_t{high_key} << 32);
  int64_t seen = 0;
  for (int64_t i = begin; i < end; ++i) {
    if (!keys.live(i) || high[static_cast<size_t>(i - begin)] != high_key) continue;
    const uint64_t key = keys.key(i);
    out[i] = static_cast<uint8_t>(key > threshold.key ||
                                  (key == threshold.key && seen < threshold.ties_kept));
    seen += key == threshold.key;
  }
}
#endif

// Prefetches into L1 the entries of [begin, end) that select_small's sample will gather
// (float32 with AVX2: sample_bracket). sap_step selects a tile's segments after their power
// sums, from L2; issued one segment ahead, the sample's loads wait less on L2 (sap_step on
// rows of 1000, two cores over 1e8: 0.97-0.99 of the time without, five runs). Other dtypes
// gather from a copy of their keys.
template <class E>
void prefetch_sample(const Keys<E>& keys, int64_t begin, int64_t end) {
#if defined(__AVX2__)
  if constexpr (std::is_same_v<E, Float32Element>) {
    if (end - begin < kMinVectorSegment) return;  // no sample: ranked by all pairs
    const RowSample grid(begin, end);
    for (int k = 0; k < kRowSample; ++k) {
      __builtin_prefetch(keys.params + grid.first + k * grid.stride, 0, 3);
    }
  }
#else
  (void)keys, (void)begin, (void)end;
#endif
}

// Keeps the `keep` largest live entries of [begin, end) (end - begin <= kSmallSegment).
template <class E>
void select_small(const Keys<E>& keys, int64_t begin, int64_t end, int64_t keep,
                  std::vector<typename E::Bits>& scratch, uint8_t* out) {
  using Bits = typename E::Bits;
  constexpr int kShift = kFirstShift<Bits>;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<E, Float32Element>) {
    return select_small_vectors(keys.params, keys.mask, begin, end, keep, scratch, out);
  }
  if constexpr (std::is_same_v<E, Float16Element> || std::is_same_v<E, BFloat16Element>) {
    return select_small_widened(keys, begin, end, keep, out);
  }
  if constexpr (std::is_same_v<E, Float64Element>) {
    return select_small_high_words(keys, begin, end, keep, scratch, out);
  }
#endif
  if (end - begin <= kFewCandidates) return select_short(keys, begin, end, keep, scratch, out);
  DigitHistogram histogram;
  int64_t live = 0;
  for (int64_t i = begin; i < end; ++i) {
    const uint32_t is_live = keys.live(i);
    histogram.add(i, static_cast<uint32_t>(keys.key(i) >> kShift) & (kBins - 1), is_live);
    live += is_live;
  }
  if (keep <= 0 || live == 0) return write_live(keys, begin, end, 0, out);
  if (keep >= live) return write_live(keys, begin, end, 1, out);
  const BucketChoice choice = histogram.choose(keep);
  Bits* gathered = scratch_of(scratch, static_cast<size_t>(end - begin));
  int64_t candidates = 0;
  for (int64_t i = begin; i < end; ++i) {
    const Bits key = keys.key(i);
    gathered[candidates] = key;
    candidates += keys.live(i) && ((key >> kShift) & (kBins - 1)) == choice.digit;
  }
  const Bits prefix = static_cast<Bits>(static_cast<Bits>(choice.digit) << kShift);
  const int next_shift = kShift >= kDigitBits ? kShift - kDigitBits : 0;
  const Threshold<Bits> threshold = select_from_keys<Bits>(
      gathered, candidates, choice.rank_in_bucket, next_shift, prefix);
  write_mask(keys, begin, end, threshold, 0, out);
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
