// Exact selection by radix select on magnitude bits: with the sign cleared, the bits of a
// non-negative float order as its value, so the k-th largest |w| is found digit by digit from
// the top, never by sorting. A threshold is the key T of the k-th largest live entry and the
// number of entries equal to T that are kept (the first ones in flat order).
#pragma once

#include "isa.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// Scratch space of at least n elements, from a vector kept across segments. It only grows:
// std::vector::resize zero-fills every element it adds, which on ragged layouts (a longer
// segment after a shorter one, again and again) was ~2% of a sap_step in memset.
template <class T>
T* scratch_of(std::vector<T>& scratch, size_t n) {
  if (scratch.size() < n) scratch.resize(n);
  return scratch.data();
}

template <class Key>
struct Threshold {
  Key key = 0;             // keep entries with key > this one ...
  int64_t ties_kept = 0;   // ... and the first ties_kept live entries with key == this one
};

// Significant bits of the magnitude key of each element type.
template <class Key>
constexpr int kKeyBits = sizeof(Key) == 2 ? 15 : (sizeof(Key) == 4 ? 31 : 63);

// In each round, the bucket of the digit that holds the wanted rank, counted from the top.
struct BucketChoice {
  uint32_t digit;
  int64_t rank_in_bucket;  // 1-based rank of the wanted entry among the bucket's, from the top
};

inline BucketChoice choose_bucket(const int64_t* histogram, int bins, int64_t rank) {
  for (int digit = bins - 1; digit >= 0; --digit) {
    if (rank <= histogram[digit]) return {static_cast<uint32_t>(digit), rank};
    rank -= histogram[digit];
  }
  return {0, rank};  // unreachable when rank <= the total count
}

constexpr int kDigitBits = 8;
constexpr int kBins = 1 << kDigitBits;

// The shift of the first (highest) 8-bit digit of a key.
template <class Key>
constexpr int kFirstShift = kKeyBits<Key> - kDigitBits;

// A histogram of 8-bit digits kept in four copies, entry i counted in copy i % 4: runs of equal
// digits (common: magnitudes share their exponent) then do not wait on each other's increments.
struct DigitHistogram {
  uint32_t copies[4][kBins] = {};

  void add(int64_t i, uint32_t digit, uint32_t count) { copies[i & 3][digit] += count; }

  BucketChoice choose(int64_t rank) const {
    int64_t merged[kBins];
    for (int b = 0; b < kBins; ++b) {
      merged[b] = int64_t{copies[0][b]} + copies[1][b] + copies[2][b] + copies[3][b];
    }
    return choose_bucket(merged, kBins, rank);
  }
};

// The threshold of the `rank`-th largest of keys[0..n) (1 <= rank <= n), all of which share
// the digits above `shift` with `prefix`, by 8-bit digits from `shift` down; keys are
// overwritten (the chosen bucket's keys are compacted to the front each round).
// Below this many candidates a histogram round (clearing, merging and scanning 256 bins in four
// copies) costs more than selecting among the candidates directly.
constexpr int64_t kFewCandidates = 256;

// The threshold of the `rank`-th largest of a few keys by introselect (no sort); keys reordered.
template <class Key>
Threshold<Key> select_among_few(Key* keys, int64_t n, int64_t rank) {
  std::nth_element(keys, keys + (rank - 1), keys + n, std::greater<Key>());
  const Key threshold = keys[rank - 1];
  int64_t greater = 0;
  for (int64_t i = 0; i < n; ++i) greater += keys[i] > threshold;
  return Threshold<Key>{threshold, rank - greater};
}

template <class Key>
Threshold<Key> select_from_keys(Key* keys, int64_t n, int64_t rank, int shift, Key prefix) {
  for (;;) {
    if (n <= kFewCandidates) return select_among_few(keys, n, rank);
    DigitHistogram histogram;
    for (int64_t i = 0; i < n; ++i) histogram.add(i, (keys[i] >> shift) & (kBins - 1), 1);
    const BucketChoice choice = histogram.choose(rank);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      keys[kept] = keys[i];
      kept += ((keys[i] >> shift) & (kBins - 1)) == choice.digit;
    }
    n = kept;
    rank = choice.rank_in_bucket;
    prefix = static_cast<Key>(prefix | (static_cast<Key>(choice.digit) << shift));
    if (shift == 0) break;
    // The last digit may overlap bits already fixed: they are equal in every candidate.
    shift = shift >= kDigitBits ? shift - kDigitBits : 0;
  }
  // All n candidates now equal prefix; the rank-th of them (from the top) is the last kept tie.
  return Threshold<Key>{prefix, rank};
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
