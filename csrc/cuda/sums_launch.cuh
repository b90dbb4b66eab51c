// Launching the power-sum kernels (sums.cuh) for a buffer: the tile plan, the scale pass in
// scaled mode, the sums pass and the combine levels. Shared by segmented_power_sums_cuda,
// segmented_pqi and sap_step_cuda (STEP).
#pragma once

#include "sap_kernels/power_sums.h"
#include "sap_kernels/scalar_type.h"
#include "sums.cuh"

namespace sap_kernels::cuda {

// First and last segment of every tile (tiles.cu).
__global__ void tile_plan_kernel(const int64_t* offsets, int64_t num_segments, int64_t numel,
                                 int64_t num_tiles, int64_t* first, int64_t* last);

// Outputs of every segment of a buffer with no entries (all empty).
template <class Values>
__global__ void empty_buffer_kernel(SumsArgs a) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s < a.num_segments) finalize_values<Float32Traits>(a, s, Values{});
}

// log2 of the smallest subnormal and of the bound of the largest magnitude per 16/32-bit dtype.
inline bool scaled_mode(ScalarType dtype, double q) {
  switch (dtype) {
    case ScalarType::kFloat32:
      return !fits_unscaled(-149, 128, q);
    case ScalarType::kBFloat16:
      return !fits_unscaled(-133, 128, q);
    case ScalarType::kFloat16:
      return !fits_unscaled(-24, 16, q);
    default:
      return true;
  }
}

struct SumsLayout {
  int64_t num_tiles;
  int64_t level_records;  // records of the first level (two a tile)
  int64_t next_records;   // records of every later level, at most
};

inline SumsLayout sums_layout(int64_t numel) {
  const int64_t tiles = ceil_div(numel, kTile);
  return {tiles, 2 * tiles, 2 * ceil_div(2 * tiles, kTile)};
}

inline size_t records_bytes(int64_t count) {
  return 3 * Workspace::bytes_for<int64_t>(count) + Workspace::bytes_for<double>(count);
}

inline size_t sums_workspace_bytes(int64_t numel, int64_t num_segments) {
  const SumsLayout layout = sums_layout(numel);
  return 2 * Workspace::bytes_for<int64_t>(layout.num_tiles) +
         Workspace::bytes_for<int32_t>(num_segments) + records_bytes(layout.level_records) +
         2 * records_bytes(layout.next_records);
}

inline Records take_records(Workspace& workspace, int64_t count) {
  Records r;
  r.key = workspace.take<int64_t>(count);
  r.a = workspace.take<uint64_t>(count);
  r.b = workspace.take<double>(count);
  r.count = workspace.take<int64_t>(count);
  return r;
}

// The combine levels, ping-ponging between two buffers after the first level.
template <class Traits, class Values>
void combine_levels(const SumsArgs& a, Records records, int64_t count, Records spare_a,
                    Records spare_b, cudaStream_t stream) {
  Records next = spare_a, other = spare_b;
  while (true) {
    const int64_t chunks = ceil_div(count, kTile);
    if (chunks == 1) {
      combine_kernel<Traits, Values, true><<<1, kThreads, 0, stream>>>(a, records, count, next);
      return;
    }
    combine_kernel<Traits, Values, false>
        <<<static_cast<unsigned>(chunks), kThreads, 0, stream>>>(a, records, count, next);
    records = next;
    count = 2 * chunks;
    const Records used = next;
    next = other;
    other = used;
  }
}

// Fills a's tile plan and runs both passes; a's outputs and exponents are set by the caller.
// Returns false when the workspace is too small.
template <class Traits, bool STEP>
bool launch_sums(SumsArgs a, ScalarType dtype, Workspace& workspace, cudaStream_t stream) {
  if (a.numel == 0) {
    const unsigned blocks = static_cast<unsigned>(ceil_div(a.num_segments, kThreads));
    if (blocks > 0) empty_buffer_kernel<SumValues><<<blocks, kThreads, 0, stream>>>(a);
    return true;
  }
  const SumsLayout layout = sums_layout(a.numel);
  int64_t* first = workspace.take<int64_t>(layout.num_tiles);
  int64_t* last = workspace.take<int64_t>(layout.num_tiles);
  int32_t* scale_exp = workspace.take<int32_t>(a.num_segments > 0 ? a.num_segments : 1);
  const Records level = take_records(workspace, layout.level_records);
  const Records spare_a = take_records(workspace, layout.next_records);
  const Records spare_b = take_records(workspace, layout.next_records);
  if (spare_b.count == nullptr) return false;
  a.num_tiles = layout.num_tiles;
  a.tile_first = first;
  a.tile_last = last;
  const unsigned plan_blocks = static_cast<unsigned>(ceil_div(layout.num_tiles, kThreads));
  tile_plan_kernel<<<plan_blocks, kThreads, 0, stream>>>(a.offsets, a.num_segments, a.numel,
                                                         layout.num_tiles, first, last);
  const dim3 grid(static_cast<unsigned>(layout.num_tiles));
  a.scale_exp = nullptr;
  if (scaled_mode(dtype, a.q.value)) {
    a.scale_exp_out = scale_exp;
    tile_kernel<Traits, MaxValues, false><<<grid, kThreads, 0, stream>>>(a, level);
    combine_levels<Traits, MaxValues>(a, level, layout.level_records, spare_a, spare_b, stream);
    a.scale_exp = scale_exp;
  }
  tile_kernel<Traits, SumValues, STEP><<<grid, kThreads, 0, stream>>>(a, level);
  combine_levels<Traits, SumValues>(a, level, layout.level_records, spare_a, spare_b, stream);
  return true;
}

}  // namespace sap_kernels::cuda

namespace sap_kernels {

// The arguments every power-sum launch shares (power_sums.cu); the caller sets the outputs.
cuda::SumsArgs sums_arguments(const SegmentedBuffer& input, double p, double q,
                              int32_t* nonfinite);

}  // namespace sap_kernels
