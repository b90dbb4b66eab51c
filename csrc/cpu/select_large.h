// One long segment selected by all threads. Both ways end in a threshold (radix_select.h);
// the ties kept at it are the first ones in flat order.
// - By histograms (exact, any input): each round, every thread takes a histogram of one 16-bit
//   digit over its share of the segment's candidates (entries whose higher digits match the
//   prefix chosen so far); the merged histogram picks the next digit. Then a count of ties per
//   share, an exclusive scan, and each share writes its own mask.
// - By a bracket (select_bracket.h): one read that writes the mask of all but a few entries;
//   those few are selected and fixed up afterwards. It falls back to the histograms when the
//   bracket misses or would need more memory than allowed.
#pragma once

#include "isa.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "radix_select.h"
#include "segment_keys.h"
#include "select_bracket.h"
#include "select_small.h"
#include "tiles.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// out[begin..end) = value where live, by all threads.
template <class E>
void write_live_parallel(const Keys<E>& keys, int64_t begin, int64_t end, uint8_t value,
                         uint8_t* out) {
  const int threads = threads_for(end - begin, kSelectEntriesPerThread);
  const Shares shares{begin, end, threads};
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int share = 0; share < threads; ++share) {
    write_live(keys, shares.share_begin(share), shares.share_begin(share + 1), value, out);
  }
}

// The mask of a known threshold, by all threads: ties counted per share, scanned, written.
template <class E>
void write_threshold_parallel(const Keys<E>& keys, int64_t begin, int64_t end,
                              const Threshold<typename E::Bits>& threshold, uint8_t* out) {
  const int threads = threads_for(end - begin, kSelectEntriesPerThread);
  const Shares shares{begin, end, threads};
  std::vector<int64_t> ties(static_cast<size_t>(threads) + 1, 0);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int share = 0; share < threads; ++share) {
    int64_t found = 0;
    for (int64_t i = shares.share_begin(share); i < shares.share_begin(share + 1); ++i) {
      found += keys.live(i) && keys.key(i) == threshold.key;
    }
    ties[static_cast<size_t>(share) + 1] = found;
  }
  for (int share = 0; share < threads; ++share) ties[share + 1] += ties[share];
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int share = 0; share < threads; ++share) {
    write_mask(keys, shares.share_begin(share), shares.share_begin(share + 1), threshold,
               ties[static_cast<size_t>(share)], out);
  }
}

// The threshold of the keep-th largest live key of [begin, end) by 16-bit digit rounds over
// the whole segment (0 < keep <= live entries).
template <class E>
Threshold<typename E::Bits> threshold_by_histograms(const Keys<E>& keys, int64_t begin,
                                                    int64_t end, int64_t keep) {
  using Bits = typename E::Bits;
  constexpr int kWideDigitBits = 16;
  constexpr int kWideBins = 1 << kWideDigitBits;
  const int threads = threads_for(end - begin, kSelectEntriesPerThread);
  const Shares shares{begin, end, threads};
  std::vector<int64_t> histograms(static_cast<size_t>(threads) * kWideBins);
  std::vector<int64_t> merged(kWideBins);
  Bits prefix = 0;
  int64_t rank = keep;
  int fixed_bits = 0;  // high bits of the key decided so far
  while (fixed_bits < kKeyBits<Bits>) {
    const int digit_bits = std::min(kWideDigitBits, kKeyBits<Bits> - fixed_bits);
    const int shift = kKeyBits<Bits> - fixed_bits - digit_bits;
    const Bits digit_mask = static_cast<Bits>((Bits{1} << digit_bits) - 1);
    const Bits prefix_now = prefix;
    const int fixed_now = fixed_bits;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int share = 0; share < threads; ++share) {
      int64_t* histogram = histograms.data() + static_cast<size_t>(share) * kWideBins;
      std::fill(histogram, histogram + kWideBins, 0);
      for (int64_t i = shares.share_begin(share); i < shares.share_begin(share + 1); ++i) {
        const Bits key = keys.key(i);
        const bool candidate = keys.live(i) && (fixed_now == 0 || (key >> (shift + digit_bits)) ==
                                                                      (prefix_now >> (shift + digit_bits)));
        histogram[(key >> shift) & digit_mask] += candidate;
      }
    }
    for (int b = 0; b < (1 << digit_bits); ++b) {
      int64_t total = 0;
      for (int share = 0; share < threads; ++share) {
        total += histograms[static_cast<size_t>(share) * kWideBins + b];
      }
      merged[static_cast<size_t>(b)] = total;
    }
    const BucketChoice choice = choose_bucket(merged.data(), 1 << digit_bits, rank);
    prefix = static_cast<Bits>(prefix | (static_cast<Bits>(choice.digit) << shift));
    rank = choice.rank_in_bucket;
    fixed_bits += digit_bits;
  }
  return Threshold<Bits>{prefix, rank};
}


// Keeps the `keep` largest of the `live` live entries of [begin, end), by all threads.
template <class E>
void select_large(const Keys<E>& keys, int64_t begin, int64_t end, int64_t live, int64_t keep,
                  uint8_t* out) {
  if (keep <= 0 || live == 0 || keep >= live) {
    return write_live_parallel(keys, begin, end, keep > 0 ? 1 : 0, out);
  }
  if (select_by_bracket(keys, begin, end, live, keep, out)) return;
  write_threshold_parallel(keys, begin, end, threshold_by_histograms(keys, begin, end, keep), out);
}

// Every segment once: those of at most kSmallSegment entries by one thread each (the threads
// the buffer is worth, threads_for; a dynamic schedule since lengths vary), each call given
// that thread's scratch space; then the longer ones in order, each by all threads.
template <class Bits, class SelectShort, class SelectLong>
void select_each_segment(const int64_t* offsets, int64_t num_segments, SelectShort select_short,
                         SelectLong select_long) {
  std::vector<int64_t> long_segments;
  for (int64_t s = 0; s < num_segments; ++s) {
    if (offsets[s + 1] - offsets[s] > kSmallSegment) long_segments.push_back(s);
  }
  const int threads = threads_for(offsets[num_segments] - offsets[0], kSelectEntriesPerThread);
#pragma omp parallel num_threads(threads)
  {
    std::vector<Bits> scratch;
#pragma omp for schedule(dynamic, 64)
    for (int64_t s = 0; s < num_segments; ++s) {
      if (offsets[s + 1] - offsets[s] <= kSmallSegment) select_short(s, scratch);
    }
  }
  for (const int64_t s : long_segments) select_long(s);
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
