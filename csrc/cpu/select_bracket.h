// Selection in one long segment by a bracket around its threshold, found from a sample.
//
// A strided sample of the live keys gives two keys lo <= hi between which the threshold lies
// with high probability (kBracketSigmas standard deviations of the sample rank on each side).
// One read of the segment then writes the mask of every entry outside [lo, hi] (above hi: 1,
// below lo: 0), counts those above, and gathers the few inside (key and position; about 1% of
// the segment; room for 4% of the params' bytes at most). The threshold is selected among
// them, and only their mask bytes are written again. When the bracket misses
// the threshold or holds too many entries (a sample is not the whole: many ties, an adversarial
// order), nothing is lost but that read: the caller selects by histograms instead. The mask is
// exact and the same either way; the sample decides only the speed.
#pragma once

#include "isa.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "bracket_block.h"
#include "element.h"
#include "octets.h"
#include "radix_select.h"
#include "segment_keys.h"
#include "tiles.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// A sample of up to kSampleSize keys, at most 1/16 of the segment, and at least
// kMinSampleSize live keys. At most 1/16: with 1/4, the two nth_element calls over the sample
// were half of a sap_step of one segment of 1e6 entries (2.8 ms; 1.2 ms at 1/16). The bracket
// then holds ~4 / sqrt(sample) of the entries, ~16000 at 1e6, within the candidates' room.
constexpr int64_t kSampleSize = int64_t{1} << 18;
constexpr int64_t kMinSampleStride = 16;
constexpr int64_t kMinSampleSize = 1024;
constexpr double kBracketSigmas = 4.0;
// Scratch space for the candidates: 4% of the params' bytes, or 256 KiB for shorter segments.
constexpr double kCandidateMemory = 0.04;
constexpr double kMinCandidateBytes = 256.0 * 1024.0;

template <class Bits>
struct Bracket {
  Bits lo;
  Bits hi;
};

// The live keys at the centres of n / stride equal strides of [begin, end).
template <class E>
std::vector<typename E::Bits> sample_live_keys(const Keys<E>& keys, int64_t begin, int64_t end) {
  using Bits = typename E::Bits;
  constexpr Bits kDead = static_cast<Bits>(~E::kAbsMask);  // no key has the sign bit
  const int64_t stride = std::max(kMinSampleStride, (end - begin) / kSampleSize);
  const int64_t size = (end - begin) / stride;
  std::vector<Bits> sample(static_cast<size_t>(size));
#pragma omp parallel for schedule(static) num_threads(threads_for(size))
  for (int64_t j = 0; j < size; ++j) {
    const int64_t i = begin + j * stride + stride / 2;
    sample[static_cast<size_t>(j)] = keys.live(i) ? keys.key(i) : kDead;
  }
  sample.erase(std::remove(sample.begin(), sample.end(), kDead), sample.end());
  return sample;
}

// The bracket [lo, hi] around the keep-th largest of `live` keys, from a sample of them.
template <class Bits>
Bracket<Bits> bracket_of_sample(std::vector<Bits>& sample, int64_t live, int64_t keep,
                                Bits max_key) {
  const auto size = static_cast<int64_t>(sample.size());
  const double kept = static_cast<double>(keep) / static_cast<double>(live);
  const double centre = kept * static_cast<double>(size);  // sample keys above the threshold
  const double margin =
      kBracketSigmas * std::sqrt(static_cast<double>(size) * kept * (1.0 - kept)) + 2.0;
  // Positions counted from the largest key (0-based); beyond the sample, the key range ends.
  const auto hi_rank = static_cast<int64_t>(std::floor(centre - margin));
  const auto lo_rank = static_cast<int64_t>(std::ceil(centre + margin));
  Bracket<Bits> bracket{0, max_key};
  auto first = sample.begin();
  if (lo_rank < size) {
    const auto at = sample.begin() + (size - 1 - lo_rank);
    std::nth_element(sample.begin(), at, sample.end());
    bracket.lo = *at;
    first = at;  // every key from here on is >= lo
  }
  if (hi_rank >= 0) {
    const auto at = sample.begin() + (size - 1 - hi_rank);
    std::nth_element(first, at, sample.end());
    bracket.hi = *at;
  }
  return bracket;
}

// What one share of the segment found in the bracket read.
struct ShareCandidates {
  int64_t capacity = 0;  // room for this many candidates (plus one slot of slack)
  int64_t first = 0;     // where its room starts in the scratch arrays
  int64_t above = 0;     // live entries above hi
  int64_t found = 0;     // live entries in [lo, hi]
  bool overflow = false;
};

// Where one share's bracket read stands: its scratch space and what it has counted so far.
template <class Bits>
struct BracketRead {
  const Bits* __restrict params;
  const uint8_t* __restrict mask;
  int64_t share_begin;  // candidate offsets count from here
  Bits lo;
  Bits hi;
  Bits* __restrict candidate_keys;
  uint32_t* __restrict candidate_offsets;
  int64_t capacity;
  int64_t above = 0;
  int64_t found = 0;

  // Stores candidate i (known to be one); false when there is no room left.
  bool gather(int64_t i, Bits key) {
    candidate_keys[found] = key;
    candidate_offsets[found] = static_cast<uint32_t>(i - share_begin);
    return ++found <= capacity;
  }
};

// Entries [from, to) one at a time: their mask bytes, the count above, the candidates gathered;
// false when they do not fit.
template <class E, bool kMasked>
bool read_bracket_entries(BracketRead<typename E::Bits>& read, int64_t from, int64_t to,
                          uint8_t* __restrict out) {
  using Bits = typename E::Bits;
  const Bits width = static_cast<Bits>(read.hi - read.lo);
  for (int64_t i = from; i < to; ++i) {
    const Bits key = static_cast<Bits>(read.params[i] & E::kAbsMask);
    const bool live = !kMasked || read.mask[i] != 0;
    const bool is_above = live && key > read.hi;
    out[i] = static_cast<uint8_t>(is_above);
    read.above += is_above;
    if (live && static_cast<Bits>(key - read.lo) <= width && !read.gather(i, key)) return false;
  }
  return true;
}

#if defined(__AVX2__)
// prefetch_ahead (octets.h) for the cache lines of a step's 32 entries: without it, this read
// ran ~1.5x the time of a plain sum of the buffer, as the power sums did.
template <class E>
__attribute__((always_inline)) inline void prefetch_block_ahead(const typename E::Bits* at) {
  constexpr size_t kPerLine = 64 / sizeof(*at);
  for (size_t i = 0; i < 32; i += kPerLine) prefetch_ahead<E>(at + i);
}

// The vector step of the bracket read for the entries of E.
template <class E>
using BracketBlockOf =
    std::conditional_t<sizeof(typename E::Bits) == 4, BracketBlock, BracketBlock16>;

// Float32, float16 or bfloat16 entries [from, to), 32 a step.
template <class E, bool kMasked>
int64_t read_bracket_vectors(BracketRead<typename E::Bits>& read, int64_t from, int64_t to,
                             uint8_t* __restrict out, bool& fits) {
  using Block = BracketBlockOf<E>;
  Block vector_block(read.lo, read.hi);
  int64_t block = from;
  for (; block + Block::kSize <= to; block += Block::kSize) {
    prefetch_block_ahead<E>(read.params + block);
    uint32_t inside = vector_block.template step<kMasked>(
        read.params + block, kMasked ? read.mask + block : nullptr, out + block);
    for (; inside != 0; inside &= inside - 1) {
      const int64_t i = block + __builtin_ctz(inside);
      if (!read.gather(i, static_cast<typename E::Bits>(read.params[i] & E::kAbsMask))) {
        fits = false;
        break;
      }
    }
    if (!fits) break;
  }
  read.above += vector_block.above();
  return block;
}
#endif

// Writes out[begin..end) for entries outside the bracket (above hi: 1, else 0), and gathers
// the ones inside.
template <class E, bool kMasked>
void read_bracket(const Keys<E>& keys, int64_t begin, int64_t end,
                  const Bracket<typename E::Bits>& bracket, typename E::Bits* candidate_keys,
                  uint32_t* candidate_offsets, ShareCandidates& share, uint8_t* __restrict out) {
  using Bits = typename E::Bits;
  BracketRead<Bits> read{keys.params,     keys.mask,         begin,         bracket.lo,
                         bracket.hi,      candidate_keys,    candidate_offsets, share.capacity};
  int64_t done = begin;
  bool fits = true;
#if defined(__AVX2__)
  if constexpr (!std::is_same_v<E, Float64Element>) {
    done = read_bracket_vectors<E, kMasked>(read, begin, end, out, fits);
  }
#endif
  fits = fits && read_bracket_entries<E, kMasked>(read, done, end, out);
  share.overflow = !fits;
  share.above = read.above;
  share.found = read.found;
}

// Rewrites the mask bytes of a share's candidates for the final threshold; ties_before = ties
// (keys equal to the threshold) in earlier shares.
template <class Bits>
void write_candidates(const Bits* keys, const uint32_t* offsets, int64_t n,
                      const Threshold<Bits>& threshold, int64_t ties_before, uint8_t* out) {
  int64_t ties = ties_before;
  for (int64_t c = 0; c < n; ++c) {
    const Bits key = keys[c];
    const bool tie = key == threshold.key;
    out[offsets[c]] = static_cast<uint8_t>(key > threshold.key || (tie && ties < threshold.ties_kept));
    ties += tie;
  }
}

// The threshold of the rank-th largest of n keys that all lie in the bracket (keys reordered).
template <class Bits>
Threshold<Bits> select_in_bracket(Bits* keys, int64_t n, int64_t rank, const Bracket<Bits>& bracket) {
  const Bits differing = static_cast<Bits>(bracket.lo ^ bracket.hi);
  if (differing == 0) return Threshold<Bits>{bracket.lo, rank};
  // Digits start at the highest bit where lo and hi differ; the bits above are common to all.
  const int top_bit = 63 - __builtin_clzll(static_cast<unsigned long long>(differing));
  const int shift = std::max(0, top_bit - (kDigitBits - 1));
  const int common_from = shift + kDigitBits;
  const Bits prefix = common_from >= static_cast<int>(8 * sizeof(Bits))
                          ? Bits{0}
                          : static_cast<Bits>(bracket.lo & ~((Bits{1} << common_from) - 1));
  return select_from_keys<Bits>(keys, n, rank, shift, prefix);
}

// Keeps the keep largest of the live entries of [begin, end) (0 < keep < live) by a bracket;
// false (and out[begin..end) unspecified) when the bracket cannot settle it.
template <class E>
bool select_by_bracket(const Keys<E>& keys, int64_t begin, int64_t end, int64_t live,
                       int64_t keep, uint8_t* out) {
  using Bits = typename E::Bits;
  const int64_t n = end - begin;
  if (n / kMinSampleStride < kMinSampleSize) return false;
  std::vector<Bits> sample = sample_live_keys(keys, begin, end);
  if (static_cast<int64_t>(sample.size()) < kMinSampleSize) return false;
  const Bracket<Bits> bracket = bracket_of_sample<Bits>(sample, live, keep, E::kAbsMask);
  sample = {};

  // Shares short enough for 32-bit offsets, each with room in proportion to its length.
  const int threads = threads_for(n, kSelectEntriesPerThread);
  const int64_t share_count = std::max<int64_t>(threads, (n >> 31) + 1);
  const Shares shares{begin, end, share_count};
  const double bytes = std::max(kMinCandidateBytes, kCandidateMemory * sizeof(Bits) * n);
  // Per candidate: its key, its offset, and its key again in the selection's own copy.
  const double per_entry = bytes / static_cast<double>(n) / (2 * sizeof(Bits) + sizeof(uint32_t));
  std::vector<ShareCandidates> found(static_cast<size_t>(share_count));
  int64_t room = 0;
  for (int64_t s = 0; s < share_count; ++s) {
    const int64_t length = shares.share_begin(s + 1) - shares.share_begin(s);
    found[s].capacity = static_cast<int64_t>(per_entry * static_cast<double>(length));
    found[s].first = room;
    room += found[s].capacity + 1;
  }
  std::unique_ptr<Bits[]> candidate_keys(new Bits[static_cast<size_t>(room)]);
  std::unique_ptr<uint32_t[]> candidate_offsets(new uint32_t[static_cast<size_t>(room)]);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t s = 0; s < share_count; ++s) {
    Bits* share_keys = candidate_keys.get() + found[s].first;
    uint32_t* share_offsets = candidate_offsets.get() + found[s].first;
    const int64_t share_begin = shares.share_begin(s), share_end = shares.share_begin(s + 1);
    if (keys.mask == nullptr) {
      read_bracket<E, false>(keys, share_begin, share_end, bracket, share_keys, share_offsets,
                             found[s], out);
    } else {
      read_bracket<E, true>(keys, share_begin, share_end, bracket, share_keys, share_offsets,
                            found[s], out);
    }
  }
  int64_t above = 0, inside = 0;
  for (const ShareCandidates& share : found) {
    if (share.overflow) return false;
    above += share.above;
    inside += share.found;
  }
  if (keep <= above || keep > above + inside) return false;  // the threshold is outside

  // A copy of the candidates' keys side by side, then the threshold among them.
  std::unique_ptr<Bits[]> selection(new Bits[static_cast<size_t>(inside)]);
  int64_t gathered = 0;
  for (const ShareCandidates& share : found) {
    std::memcpy(selection.get() + gathered, candidate_keys.get() + share.first,
                static_cast<size_t>(share.found) * sizeof(Bits));
    gathered += share.found;
  }
  const Threshold<Bits> threshold =
      select_in_bracket(selection.get(), inside, keep - above, bracket);
  selection.reset();

  // Ties at the threshold per share, scanned, then the candidates' bytes rewritten.
  std::vector<int64_t> ties(static_cast<size_t>(share_count) + 1, 0);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t s = 0; s < share_count; ++s) {
    const Bits* share_keys = candidate_keys.get() + found[s].first;
    int64_t count = 0;
    for (int64_t c = 0; c < found[s].found; ++c) count += share_keys[c] == threshold.key;
    ties[static_cast<size_t>(s) + 1] = count;
  }
  for (int64_t s = 0; s < share_count; ++s) ties[s + 1] += ties[s];
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t s = 0; s < share_count; ++s) {
    write_candidates(candidate_keys.get() + found[s].first,
                     candidate_offsets.get() + found[s].first, found[s].found, threshold,
                     ties[static_cast<size_t>(s)], out + shares.share_begin(s));
  }
  return true;
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
