// The fused SAP step on the CPU. The power sums read the buffer tile by tile (power_sums.cpp);
// as soon as a tile's whole segments have their PQI and count, the same thread computes their
// prune counts and selects their masks (select_small.h) while their entries are still in
// cache: a segment that fits a tile is read from memory once. Segments that cross a tile
// boundary, or are longer than kSmallSegment, are selected after the sums, by one thread each
// or, when long, by all threads (select_large.h).
// This file is compiled once per instruction set (see isa_dispatch.cpp).
#include <cstdint>
#include <vector>

#include "element.h"
#include "isa_kernels.h"
#include "sap_kernels/sap_step.h"
#include "segment_keys.h"
#include "select_large.h"
#include "select_small.h"
#include "tiles.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {
namespace {

template <class E>
struct StepContext {
  Keys<E> keys;
  const int64_t* offsets;
  const SapParameters& sap;
  SapCountFactors factors;
  const double* pqi;
  const int64_t* count;
  int64_t* prune;
  uint8_t* out;
};

// Selected while the power sums still have it in cache: short, not empty (a tile may not
// visit it), and inside one tile.
inline bool selected_in_tile(const int64_t* offsets, int64_t s) {
  const int64_t begin = offsets[s], end = offsets[s + 1];
  return begin < end && end - begin <= kSmallSegment && begin / kTileSize == (end - 1) / kTileSize;
}

template <class E>
void select_one(const StepContext<E>& step, int64_t s, std::vector<typename E::Bits>& scratch) {
  step.prune[s] = sap_prune_count(step.pqi[s], step.count[s], step.sap, step.factors);
  const int64_t begin = step.offsets[s], end = step.offsets[s + 1];
  if (begin == end) return;
  select_small(step.keys, begin, end, step.count[s] - step.prune[s], scratch, step.out);
}

template <class E>
void select_whole_segments(void* context, int64_t first, int64_t last) {
  const auto& step = *static_cast<const StepContext<E>*>(context);
  thread_local std::vector<typename E::Bits> scratch;
  for (int64_t s = first; s < last; ++s) {
    if (s + 1 < last) prefetch_sample(step.keys, step.offsets[s + 1], step.offsets[s + 2]);
    if (selected_in_tile(step.offsets, s)) select_one(step, s, scratch);
  }
}

template <class E>
int64_t sap_step_for(const SegmentedBuffer& input, const SapParameters& sap, double* pqi,
                     int64_t* count, int64_t* prune, uint8_t* out) {
  StepContext<E> step{{static_cast<const typename E::Bits*>(input.params), input.mask},
                      input.offsets, sap, sap_count_factors(sap), pqi, count, prune, out};
  PowerSumsOutput sums{nullptr, nullptr, nullptr, count, pqi};
  sums.after_whole_segments = {&select_whole_segments<E>, &step};
  const int64_t nonfinite = power_sums(input, sap.p, sap.q, sums);

  // The rest: short segments across tile boundaries, then the long ones.
  select_each_segment<typename E::Bits>(
      input.offsets, input.num_segments,
      [&](int64_t s, std::vector<typename E::Bits>& scratch) {
        if (!selected_in_tile(input.offsets, s)) select_one(step, s, scratch);
      },
      [&](int64_t s) {
        prune[s] = sap_prune_count(pqi[s], count[s], sap, step.factors);
        select_large(step.keys, input.offsets[s], input.offsets[s + 1], count[s],
                     count[s] - prune[s], out);
      });
  return nonfinite;
}

}  // namespace

int64_t sap_step(const SegmentedBuffer& input, const SapParameters& sap, double* pqi,
                 int64_t* count, int64_t* prune, uint8_t* out) {
  switch (input.dtype) {
    case ScalarType::kFloat32: return sap_step_for<Float32Element>(input, sap, pqi, count, prune, out);
    case ScalarType::kFloat64: return sap_step_for<Float64Element>(input, sap, pqi, count, prune, out);
    case ScalarType::kFloat16: return sap_step_for<Float16Element>(input, sap, pqi, count, prune, out);
    case ScalarType::kBFloat16:
      return sap_step_for<BFloat16Element>(input, sap, pqi, count, prune, out);
  }
  return 0;
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
