// Exact per-segment magnitude masks on the CPU by radix select (radix_select.h): segments of
// up to kSmallSegment entries one thread each, in cache (select_small.h); longer ones by all
// threads together (select_large.h). Each segment's live NaN / inf are counted as it is read.
// This file is compiled once per instruction set (see isa_dispatch.cpp).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "accumulator.h"
#include "element.h"
#include "isa_kernels.h"
#include "segment_keys.h"
#include "select_large.h"
#include "select_small.h"
#include "tiles.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {
namespace {

// The live NaN / inf entries of a segment, counted by the thread about to select it: the
// read brings the segment into cache for the selection, so it costs little more than a vector
// max (a separate pass over the whole buffer took ~17% of a call on rows of 1000).
template <class E>
int64_t segment_nonfinite(const Keys<E>& keys, int64_t begin, int64_t end) {
  const uint8_t* mask = keys.mask == nullptr ? nullptr : keys.mask + begin;
  if (max_live_abs_bits<E>(keys.params + begin, mask, end - begin) < E::kInfBits) return 0;
  return count_nonfinite<E>(keys.params + begin, mask, end - begin);
}

struct LiveCount {
  int64_t live;
  int64_t nonfinite;
};

// The live entries of a long segment [begin, end), and the NaN / inf among them, by all threads.
template <class E>
LiveCount count_live_parallel(const Keys<E>& keys, int64_t begin, int64_t end) {
  int64_t live = 0, nonfinite = 0;
  const int threads = threads_for(end - begin, kSelectEntriesPerThread);
#pragma omp parallel for schedule(static) num_threads(threads) reduction(+ : live, nonfinite)
  for (int64_t tile = begin; tile < end; tile += kTileSize) {
    const int64_t tile_end = std::min(tile + kTileSize, end);
    live += keys.mask == nullptr ? tile_end - tile : count_live(keys.mask + tile, tile_end - tile);
    nonfinite += segment_nonfinite(keys, tile, tile_end);
  }
  return {live, nonfinite};
}

template <class E>
int64_t topk_mask_for(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out) {
  const Keys<E> keys{static_cast<const typename E::Bits*>(input.params), input.mask};
  const int64_t* offsets = input.offsets;
  std::atomic<int64_t> nonfinite{0};  // added to only where some are found
  select_each_segment<typename E::Bits>(
      offsets, input.num_segments,
      [&](int64_t s, std::vector<typename E::Bits>& scratch) {
        const int64_t found = segment_nonfinite(keys, offsets[s], offsets[s + 1]);
        if (found != 0) nonfinite += found;
        select_small(keys, offsets[s], offsets[s + 1], keep[s], scratch, out);
      },
      [&](int64_t s) {
        const LiveCount count = count_live_parallel(keys, offsets[s], offsets[s + 1]);
        nonfinite += count.nonfinite;
        select_large(keys, offsets[s], offsets[s + 1], count.live, keep[s], out);
      });
  return nonfinite.load();
}

// segment_nonfinite tile by tile, over all cores.
template <class E>
int64_t count_nonfinite_for(const SegmentedBuffer& input) {
  const Keys<E> keys{static_cast<const typename E::Bits*>(input.params), input.mask};
  int64_t found = 0;
  const int threads = threads_for(input.numel);
#pragma omp parallel for schedule(static) num_threads(threads) reduction(+ : found)
  for (int64_t tile = 0; tile < tile_count(input.numel); ++tile) {
    const int64_t begin = tile * kTileSize;
    found += segment_nonfinite(keys, begin, std::min(begin + kTileSize, input.numel));
  }
  return found;
}

}  // namespace

int64_t count_nonfinite_live(const SegmentedBuffer& input) {
  switch (input.dtype) {
    case ScalarType::kFloat32: return count_nonfinite_for<Float32Element>(input);
    case ScalarType::kFloat64: return count_nonfinite_for<Float64Element>(input);
    case ScalarType::kFloat16: return count_nonfinite_for<Float16Element>(input);
    case ScalarType::kBFloat16: return count_nonfinite_for<BFloat16Element>(input);
  }
  return 0;
}

int64_t topk_mask(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out) {
  switch (input.dtype) {
    case ScalarType::kFloat32: return topk_mask_for<Float32Element>(input, keep, out);
    case ScalarType::kFloat64: return topk_mask_for<Float64Element>(input, keep, out);
    case ScalarType::kFloat16: return topk_mask_for<Float16Element>(input, keep, out);
    case ScalarType::kBFloat16: return topk_mask_for<BFloat16Element>(input, keep, out);
  }
  return 0;
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
