// Exact per-segment magnitude masks on the CPU by radix select (radix_select.h).
//
// Segments of up to kSmallSegment entries are each selected by one thread: their live keys are
// gathered once into a buffer that stays in cache, selected there, and the mask written in one
// more pass over the (cached) segment. Longer segments are selected by all threads together:
// each round, every thread takes a histogram of one 16-bit digit over its share of the
// segment's candidates (entries whose higher digits match the prefix chosen so far); the
// merged histogram picks the next digit. The ties kept at the threshold are the first ones in
// flat order: a count per share, an exclusive scan, and each share writes its own mask.
#include "sap_kernels/topk_mask.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "accumulator.h"
#include "element.h"
#include "radix_select.h"
#include "tiles.h"

namespace sap_kernels {
namespace {

using namespace cpu::SAP_KERNELS_ISA;

// Small enough for the uint32 counts of DigitHistogram, and for the cache.
constexpr int64_t kSmallSegment = int64_t{1} << 15;
constexpr int kWideDigitBits = 16;

template <class E>
struct Keys {
  using Bits = typename E::Bits;
  const Bits* params;
  const uint8_t* mask;
  bool live(int64_t i) const { return mask == nullptr || mask[i] != 0; }
  Bits key(int64_t i) const { return static_cast<Bits>(params[i] & E::kAbsMask); }
};

// Writes out[begin..end) for a threshold; ties_before = ties (live, key == T) before begin.
template <class E>
void write_mask(const Keys<E>& keys, int64_t begin, int64_t end,
                const Threshold<typename E::Bits>& threshold, int64_t ties_before, uint8_t* out) {
  int64_t ties = ties_before;
  for (int64_t i = begin; i < end; ++i) {
    const bool live = keys.live(i);
    const auto key = keys.key(i);
    const bool tie = live && key == threshold.key;
    out[i] = static_cast<uint8_t>((live && key > threshold.key) || (tie && ties < threshold.ties_kept));
    ties += tie;
  }
}

template <class E>
void write_live(const Keys<E>& keys, int64_t begin, int64_t end, uint8_t value, uint8_t* out) {
  for (int64_t i = begin; i < end; ++i) out[i] = keys.live(i) ? value : 0;
}

// A segment of a few entries: its live keys gathered, then selected among directly.
template <class E>
void select_short(const Keys<E>& keys, int64_t begin, int64_t end, int64_t keep,
                  std::vector<typename E::Bits>& buffer, uint8_t* out) {
  buffer.resize(static_cast<size_t>(end - begin));
  int64_t live = 0;
  for (int64_t i = begin; i < end; ++i) {
    buffer[static_cast<size_t>(live)] = keys.key(i);
    live += keys.live(i);
  }
  if (keep <= 0 || live == 0) return write_live(keys, begin, end, 0, out);
  if (keep >= live) return write_live(keys, begin, end, 1, out);
  write_mask(keys, begin, end, select_among_few(buffer.data(), live, keep), 0, out);
}

// One short segment by one thread; buffer is that thread's scratch space. The first digit's
// histogram is taken from the params, and only the chosen bucket's keys are gathered.
template <class E>
void select_small(const Keys<E>& keys, int64_t begin, int64_t end, int64_t keep,
                  std::vector<typename E::Bits>& buffer, uint8_t* out) {
  using Bits = typename E::Bits;
  constexpr int kShift = kFirstShift<Bits>;
  if (end - begin <= kFewCandidates) return select_short(keys, begin, end, keep, buffer, out);
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
  buffer.resize(static_cast<size_t>(end - begin));
  int64_t candidates = 0;
  for (int64_t i = begin; i < end; ++i) {
    const Bits key = keys.key(i);
    buffer[static_cast<size_t>(candidates)] = key;
    candidates += keys.live(i) && ((key >> kShift) & (kBins - 1)) == choice.digit;
  }
  const Bits prefix = static_cast<Bits>(static_cast<Bits>(choice.digit) << kShift);
  const int next_shift = kShift >= kDigitBits ? kShift - kDigitBits : 0;
  const Threshold<Bits> threshold = select_from_keys<Bits>(
      buffer.data(), candidates, choice.rank_in_bucket, next_shift, prefix);
  write_mask(keys, begin, end, threshold, 0, out);
}

// The shares of [begin, end) that the threads take, the same for every pass over it.
struct Shares {
  int64_t begin;
  int64_t end;
  int count;
  int64_t share_begin(int share) const { return begin + (end - begin) * share / count; }
};

// One long segment by all threads: 16-bit digits over the candidates, then the mask.
template <class E>
void select_large(const Keys<E>& keys, int64_t begin, int64_t end, int64_t keep, uint8_t* out) {
  using Bits = typename E::Bits;
  const int threads = omp_get_max_threads();
  const Shares shares{begin, end, threads};
  const int64_t live = count_live(keys.mask ? keys.mask + begin : nullptr, end - begin);
  if (keep <= 0 || live == 0 || keep >= live) {
    const uint8_t value = keep > 0 ? 1 : 0;
#pragma omp parallel for schedule(static)
    for (int share = 0; share < threads; ++share) {
      write_live(keys, shares.share_begin(share), shares.share_begin(share + 1), value, out);
    }
    return;
  }
  constexpr int kBins = 1 << kWideDigitBits;
  std::vector<int64_t> histograms(static_cast<size_t>(threads) * kBins);
  std::vector<int64_t> merged(kBins);
  Bits prefix = 0;
  int64_t rank = keep;
  int fixed_bits = 0;  // high bits of the key decided so far
  while (fixed_bits < kKeyBits<Bits>) {
    const int digit_bits = std::min(kWideDigitBits, kKeyBits<Bits> - fixed_bits);
    const int shift = kKeyBits<Bits> - fixed_bits - digit_bits;
    const Bits digit_mask = static_cast<Bits>((Bits{1} << digit_bits) - 1);
    const Bits prefix_now = prefix;
    const int fixed_now = fixed_bits;
#pragma omp parallel for schedule(static)
    for (int share = 0; share < threads; ++share) {
      int64_t* histogram = histograms.data() + static_cast<size_t>(share) * kBins;
      std::fill(histogram, histogram + kBins, 0);
      for (int64_t i = shares.share_begin(share); i < shares.share_begin(share + 1); ++i) {
        const Bits key = keys.key(i);
        const bool candidate =
            keys.live(i) && (fixed_now == 0 || (key >> (shift + digit_bits)) == (prefix_now >> (shift + digit_bits)));
        histogram[(key >> shift) & digit_mask] += candidate;
      }
    }
    for (int b = 0; b < (1 << digit_bits); ++b) {
      int64_t total = 0;
      for (int share = 0; share < threads; ++share) total += histograms[static_cast<size_t>(share) * kBins + b];
      merged[static_cast<size_t>(b)] = total;
    }
    const BucketChoice choice = choose_bucket(merged.data(), 1 << digit_bits, rank);
    prefix = static_cast<Bits>(prefix | (static_cast<Bits>(choice.digit) << shift));
    rank = choice.rank_in_bucket;
    fixed_bits += digit_bits;
  }
  const Threshold<Bits> threshold{prefix, rank};
  std::vector<int64_t> ties(static_cast<size_t>(threads) + 1, 0);
#pragma omp parallel for schedule(static)
  for (int share = 0; share < threads; ++share) {
    int64_t found = 0;
    for (int64_t i = shares.share_begin(share); i < shares.share_begin(share + 1); ++i) {
      found += keys.live(i) && keys.key(i) == threshold.key;
    }
    ties[static_cast<size_t>(share) + 1] = found;
  }
  for (int share = 0; share < threads; ++share) ties[share + 1] += ties[share];
#pragma omp parallel for schedule(static)
  for (int share = 0; share < threads; ++share) {
    write_mask(keys, shares.share_begin(share), shares.share_begin(share + 1), threshold,
               ties[static_cast<size_t>(share)], out);
  }
}

template <class E>
void topk_mask_for(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out) {
  const Keys<E> keys{static_cast<const typename E::Bits*>(input.params), input.mask};
  const int64_t* offsets = input.offsets;
  std::vector<int64_t> large;
  for (int64_t s = 0; s < input.num_segments; ++s) {
    if (offsets[s + 1] - offsets[s] > kSmallSegment) large.push_back(s);
  }
#pragma omp parallel
  {
    std::vector<typename E::Bits> buffer;
#pragma omp for schedule(dynamic, 64)
    for (int64_t s = 0; s < input.num_segments; ++s) {
      if (offsets[s + 1] - offsets[s] > kSmallSegment) continue;
      select_small(keys, offsets[s], offsets[s + 1], keep[s], buffer, out);
    }
  }
  for (const int64_t s : large) select_large(keys, offsets[s], offsets[s + 1], keep[s], out);
}

// count_nonfinite (accumulator.h) tile by tile, over all cores.
template <class E>
int64_t count_nonfinite_for(const SegmentedBuffer& input) {
  const auto* params = static_cast<const typename E::Bits*>(input.params);
  int64_t found = 0;
#pragma omp parallel for schedule(static) reduction(+ : found)
  for (int64_t tile = 0; tile < tile_count(input.numel); ++tile) {
    const int64_t begin = tile * kTileSize;
    const int64_t n = std::min(kTileSize, input.numel - begin);
    found += count_nonfinite<E>(params + begin, input.mask ? input.mask + begin : nullptr, n);
  }
  return found;
}

}  // namespace

int64_t count_nonfinite_live_cpu(const SegmentedBuffer& input) {
  switch (input.dtype) {
    case ScalarType::kFloat32: return count_nonfinite_for<Float32Element>(input);
    case ScalarType::kFloat64: return count_nonfinite_for<Float64Element>(input);
    case ScalarType::kFloat16: return count_nonfinite_for<Float16Element>(input);
    case ScalarType::kBFloat16: return count_nonfinite_for<BFloat16Element>(input);
  }
  return 0;
}

void segmented_topk_mask_cpu(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out) {
  switch (input.dtype) {
    case ScalarType::kFloat32: return topk_mask_for<Float32Element>(input, keep, out);
    case ScalarType::kFloat64: return topk_mask_for<Float64Element>(input, keep, out);
    case ScalarType::kFloat16: return topk_mask_for<Float16Element>(input, keep, out);
    case ScalarType::kBFloat16: return topk_mask_for<BFloat16Element>(input, keep, out);
  }
}

}  // namespace sap_kernels
