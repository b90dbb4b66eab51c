// Segmented power sums: for each segment s of a flat buffer cut by CSR offsets,
//   scale[s] * sum_p[s]^(1/p) = ||a||_p   and   scale[s] * sum_q[s]^(1/q) = ||a||_q
// where a = |w| over the live entries of the segment, i.e. the true power sum is
// scale^p * sum_p. scale is a power of two (0 when the segment has no non-zero live entry),
// so no finite input overflows or underflows.
#pragma once

#include <cstdint>

#include "sap_kernels/scalar_type.h"

namespace sap_kernels {

// A flat parameter buffer cut into segments. Every pointer is host memory.
struct SegmentedBuffer {
  const void* params;       // numel elements of dtype
  ScalarType dtype;
  const uint8_t* mask;      // numel bytes, non-zero = live; nullptr = all live
  int64_t numel;
  const int64_t* offsets;   // num_segments + 1 entries, 0 = offsets[0] <= ... <= offsets[S] = numel
  int64_t num_segments;
};

// Called on the thread that read a tile, once the outputs of the segments that lie wholly
// inside it, [first, last), are written: their entries are still in cache.
struct WholeSegmentsHook {
  void (*call)(void* context, int64_t first, int64_t last) = nullptr;
  void* context = nullptr;
};

// Per-segment outputs, each [S]; a nullptr output is not written.
struct PowerSumsOutput {
  double* scale;
  double* sum_p;
  double* sum_q;
  int64_t* count;  // live entries
  double* pqi;     // the PQ Index, from the sums (see pqi.h)
  WholeSegmentsHook after_whole_segments = {};
};

// Fills the outputs for every segment. Returns the number of non-finite (NaN or inf) live
// entries; the segments that hold one get NaN sums (and PQI). Requires 0 < p < q.
int64_t segmented_power_sums_cpu(const SegmentedBuffer& input, double p, double q,
                                 const PowerSumsOutput& out);

}  // namespace sap_kernels
