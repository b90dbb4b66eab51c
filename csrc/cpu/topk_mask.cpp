// Exact per-segment magnitude masks on the CPU by radix select (radix_select.h): segments of
// up to kSmallSegment entries one thread each, in cache (select_small.h); longer ones by all
// threads together (select_large.h).
// This file is compiled once per instruction set (see isa_dispatch.cpp).
#include <omp.h>

#include <algorithm>
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

// The live entries of [begin, end), by all threads.
inline int64_t count_live_parallel(const uint8_t* mask, int64_t begin, int64_t end) {
  if (mask == nullptr) return end - begin;
  int64_t live = 0;
#pragma omp parallel for schedule(static) reduction(+ : live)
  for (int64_t tile = begin; tile < end; tile += kTileSize) {
    live += count_live(mask + tile, std::min(kTileSize, end - tile));
  }
  return live;
}

template <class E>
void topk_mask_for(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out) {
  const Keys<E> keys{static_cast<const typename E::Bits*>(input.params), input.mask};
  const int64_t* offsets = input.offsets;
  select_each_segment<typename E::Bits>(
      offsets, input.num_segments,
      [&](int64_t s, std::vector<typename E::Bits>& scratch) {
        select_small(keys, offsets[s], offsets[s + 1], keep[s], scratch, out);
      },
      [&](int64_t s) {
        const int64_t live = count_live_parallel(input.mask, offsets[s], offsets[s + 1]);
        select_large(keys, offsets[s], offsets[s + 1], live, keep[s], out);
      });
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

int64_t count_nonfinite_live(const SegmentedBuffer& input) {
  switch (input.dtype) {
    case ScalarType::kFloat32: return count_nonfinite_for<Float32Element>(input);
    case ScalarType::kFloat64: return count_nonfinite_for<Float64Element>(input);
    case ScalarType::kFloat16: return count_nonfinite_for<Float16Element>(input);
    case ScalarType::kBFloat16: return count_nonfinite_for<BFloat16Element>(input);
  }
  return 0;
}

void topk_mask(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out) {
  switch (input.dtype) {
    case ScalarType::kFloat32: return topk_mask_for<Float32Element>(input, keep, out);
    case ScalarType::kFloat64: return topk_mask_for<Float64Element>(input, keep, out);
    case ScalarType::kFloat16: return topk_mask_for<Float16Element>(input, keep, out);
    case ScalarType::kBFloat16: return topk_mask_for<BFloat16Element>(input, keep, out);
  }
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
