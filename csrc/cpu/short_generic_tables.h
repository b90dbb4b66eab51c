// A short segment (at most kShortTableSegment entries) with both exponents generic, summed by
// the tables (power_tables.h) from registers, in the AVX-512 copy.
//
// sum_short_generic_f32 (chunked_sums.h) stores the magnitudes to a buffer for their max, then
// reads them back for the terms; each of its loops runs as many times as the segment is long.
// On ragged layouts, where the lengths vary from one segment to the next, every such loop's
// exit mispredicts. Here the segment's vectors are counted first, and one switch picks a copy
// of the whole sum for that count with every loop unrolled: one hard-to-predict branch a
// segment, and the magnitudes stay in registers. The terms and the order of their additions
// are those of add_table_sums, so the sums are the same bit for bit.
#pragma once

#include "isa.h"

#include <cstdint>

#include "accumulator.h"
#include "element.h"
#include "octets_avx512.h"
#include "power_tables.h"
#include "powers_f32.h"
#include "vectors.h"

#if defined(SAP_KERNELS_POWER_TABLES) && defined(SAP_KERNELS_SIXTEEN_LANE_SUMS)
#define SAP_KERNELS_SHORT_GENERIC_TABLES 1

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// The longest segment summed from registers: eight vectors of sixteen.
constexpr int64_t kShortTableSegment = 128;
// How far ahead a short segment prefetches the entries that follow (into L2), as
// add_table_sums does: a chunk (kChunk). Without it the longer segments after a run of short
// ones waited on memory (ragged (0.7, 1.3) at 1e8: 3% of the time).
constexpr int64_t kShortTablePrefetch = 2048;

// The sums of a segment of n entries, 16 (kVectors - 1) < n <= 16 kVectors.
template <class E, int kVectors, bool kMasked>
Accumulator sum_short_by_tables(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                                const PowerTables& tables) {
  Accumulator acc;
  f32x16 magnitudes[kVectors];
  u32x16 largest = {};
  int64_t live = 0;
#pragma GCC unroll 8
  for (int v = 0; v < kVectors; ++v) {
    const int64_t left = n - 16 * v;
    __mmask16 lanes = first_lanes(left < 16 ? left : 16);
    if constexpr (kMasked) lanes = live_lanes(mask + 16 * v, lanes);
    live += __builtin_popcount(lanes);
    __builtin_prefetch(params + kShortTablePrefetch + 16 * v, 0, 2);
    // masked: reads nothing of the lanes left out, so never past the buffer's end
    magnitudes[v] = load_magnitudes16<E>(params + 16 * v, lanes);
    const u32x16 bits = (u32x16)(magnitudes[v]);
    largest = bits > largest ? bits : largest;
  }
  acc.count = live;
  TableScale scale;
  if (!scale_of_short_segment<E>(horizontal_max(largest), params, mask, n, acc, scale)) return acc;
  const TablePowers<true, true, false> powers(tables);  // tables read where needed
  Exp2Sum acc_p = {}, acc_q = {};
  // add_table_sums's order: four vectors at a time as ((0 + 1) + (2 + 3)), then one at a time
  constexpr int kFours = kVectors / 4;
#pragma GCC unroll 2
  for (int four = 0; four < kFours; ++four) {
    f32x16 p[4], q[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) powers.terms(magnitudes[4 * four + k], scale, p[k], q[k]);
    add_to_double(acc_p, (p[0] + p[1]) + (p[2] + p[3]));
    add_to_double(acc_q, (q[0] + q[1]) + (q[2] + q[3]));
  }
#pragma GCC unroll 3
  for (int v = 4 * kFours; v < kVectors; ++v) {
    f32x16 p, q;
    powers.terms(magnitudes[v], scale, p, q);
    add_to_double(acc_p, p);
    add_to_double(acc_q, q);
  }
  acc.sum_p = horizontal_sum(acc_p);
  acc.sum_q = horizontal_sum(acc_q);
  return acc;
}

template <class E, bool kMasked>
Accumulator sum_short_by_tables(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                                const PowerTables& tables) {
  switch ((n + 15) / 16) {
    case 1: return sum_short_by_tables<E, 1, kMasked>(params, mask, n, tables);
    case 2: return sum_short_by_tables<E, 2, kMasked>(params, mask, n, tables);
    case 3: return sum_short_by_tables<E, 3, kMasked>(params, mask, n, tables);
    case 4: return sum_short_by_tables<E, 4, kMasked>(params, mask, n, tables);
    case 5: return sum_short_by_tables<E, 5, kMasked>(params, mask, n, tables);
    case 6: return sum_short_by_tables<E, 6, kMasked>(params, mask, n, tables);
    case 7: return sum_short_by_tables<E, 7, kMasked>(params, mask, n, tables);
    case 8: return sum_short_by_tables<E, 8, kMasked>(params, mask, n, tables);
    default: break;
  }
  Accumulator acc;  // an empty segment
  return acc;
}

// Both exponents generic in float32: the sums of a segment of 0 < n <= kShortTableSegment
// entries of 16/32-bit type.
template <class E>
Accumulator sum_short_by_tables(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                                const PowerTables& tables) {
  if (mask == nullptr) return sum_short_by_tables<E, false>(params, mask, n, tables);
  return sum_short_by_tables<E, true>(params, mask, n, tables);
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA

#endif
