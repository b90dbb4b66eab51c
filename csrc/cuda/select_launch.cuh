// Launching the selection of every segment once the keep counts are known: the segments that
// cross tiles (select_long.cuh, select_grid.cuh), after the tile kernel has written the whole
// ones. Shared by segmented_topk_mask_cuda and sap_step_cuda.
#pragma once

#include <cub/device/device_scan.cuh>

#include "sap_kernels/power_sums.h"

#include "select_grid.cuh"

namespace sap_kernels::cuda {

// Segments crossing tiles with at most this many entries are selected by one block each.
constexpr int64_t kBlockSelectMax = int64_t{1} << 16;

// The workspace the grid-wide selection of a buffer of numel entries takes (after the tiles').
inline int64_t num_select_slots(int64_t numel, int64_t block_max) {
  return numel / block_max + 1;
}

// The temporary storage of the scan of the tiles' tie counts (cub::DeviceScan).
inline size_t scan_temp_bytes(int64_t count) {
  size_t bytes = 0;
  cub::DeviceScan::ExclusiveSum(nullptr, bytes, static_cast<const int64_t*>(nullptr),
                                static_cast<int64_t*>(nullptr), count);
  return bytes;
}

// Bytes of a candidate key of dtype: none where the rounds are too few for a round to read the
// candidates (the 16-bit types' two).
inline int candidate_key_bytes(ScalarType dtype) {
  int bytes = 0;
  for_dtype(dtype, [&](auto traits) {
    using Traits = decltype(traits);
    bytes = radix_rounds(Traits::kKeyBits) > 2 ? static_cast<int>(sizeof(typename Traits::Bits))
                                               : 0;
    return true;
  });
  return bytes;
}

// The candidate buffer: one key per kCandidateDivisor entries, 3% of the params' bytes.
inline int64_t candidate_bytes(int64_t numel, ScalarType dtype) {
  return (numel / kCandidateDivisor + 1) * candidate_key_bytes(dtype);
}

inline size_t select_workspace_bytes(int64_t numel, int64_t num_tiles, int64_t block_max,
                                     ScalarType dtype) {
  const int64_t slots = num_select_slots(numel, block_max);
  return 7 * Workspace::bytes_for<int64_t>(slots) + Workspace::bytes_for<int32_t>(slots) +
         Workspace::bytes_for<BinCount>(slots * kBins) +
         Workspace::bytes_for<char>(candidate_bytes(numel, dtype)) +
         2 * Workspace::bytes_for<int64_t>(2 * num_tiles) +
         Workspace::bytes_for<char>(static_cast<int64_t>(scan_temp_bytes(2 * num_tiles)));
}

// Fills the slots' part of args from the workspace and zeroes what needs it; false when the
// workspace is too small.
inline bool take_select_workspace(Workspace& workspace, SelectArgs& a, ScalarType dtype,
                                  cudaStream_t stream) {
  a.num_slots = num_select_slots(a.numel, a.block_max);
  a.slot_segment = workspace.take<int64_t>(a.num_slots);
  a.slot_prefix = workspace.take<uint64_t>(a.num_slots);
  a.slot_remaining = workspace.take<int64_t>(a.num_slots);
  a.slot_total = workspace.take<int64_t>(a.num_slots);
  a.slot_first_piece = workspace.take<int64_t>(a.num_slots);
  a.slot_ranked = workspace.take<int64_t>(a.num_slots);
  a.slot_count = workspace.take<int64_t>(a.num_slots);
  a.slot_phase = workspace.take<int32_t>(a.num_slots);
  a.histograms = workspace.take<BinCount>(a.num_slots * kBins);
  a.candidates = workspace.take<char>(candidate_bytes(a.numel, dtype));
  a.ties = workspace.take<int64_t>(2 * a.num_tiles);
  a.ties_before = workspace.take<int64_t>(2 * a.num_tiles);
  a.scan_temp_bytes = scan_temp_bytes(2 * a.num_tiles);
  a.scan_temp = workspace.take<char>(static_cast<int64_t>(a.scan_temp_bytes));
  if (a.scan_temp == nullptr) return false;
  const size_t slot_bytes = static_cast<size_t>(a.num_slots) * sizeof(int64_t);
  cudaMemsetAsync(a.slot_segment, 0xff, slot_bytes, stream);  // -1: no segment
  cudaMemsetAsync(a.slot_ranked, 0xff, slot_bytes, stream);
  cudaMemsetAsync(a.slot_prefix, 0, slot_bytes, stream);
  cudaMemsetAsync(a.slot_count, 0, slot_bytes, stream);
  cudaMemsetAsync(a.slot_phase, 0, static_cast<size_t>(a.num_slots) * sizeof(int32_t), stream);
  cudaMemsetAsync(a.histograms, 0, static_cast<size_t>(a.num_slots) * kBins * sizeof(BinCount),
                  stream);
  return true;
}

template <class Traits>
void launch_long_selection(const SelectArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.num_tiles));
  block_select_kernel<Traits><<<grid, kThreads, 0, stream>>>(a);
  if (a.numel <= a.block_max) return;  // no segment is longer than block_max
  const unsigned slot_blocks = static_cast<unsigned>(ceil_div(a.num_slots, kThreads));
  for (int r = 0; r < radix_rounds(Traits::kKeyBits); ++r) {
    // the tile kernel took the first round's histograms (add_first_histograms)
    if (r > 0) grid_histogram_kernel<Traits><<<grid, kThreads, 0, stream>>>(a, r);
    grid_choose_kernel<<<slot_blocks, kThreads, 0, stream>>>(a, Traits::kKeyBits, r);
  }
  // Tie counts only for the segments whose ties are split: to the ties kernel the others' pieces
  // are not grid-selected, so it reads nothing of them and counts 0.
  SelectArgs ranked = a;
  ranked.slot_segment = a.slot_ranked;
  grid_ties_kernel<Traits><<<grid, kThreads, 0, stream>>>(ranked);
  size_t scan_bytes = a.scan_temp_bytes;
  cub::DeviceScan::ExclusiveSum(a.scan_temp, scan_bytes, a.ties, a.ties_before, 2 * a.num_tiles,
                                stream);
  grid_write_kernel<Traits><<<grid, kThreads, 0, stream>>>(a);
}

}  // namespace sap_kernels::cuda

namespace sap_kernels {

// Fills a's tile plan and selection slots from the workspace (topk_mask.cu); false when it is
// too small. The caller sets a.keep and a.out.
bool prepare_selection(const SegmentedBuffer& input, cuda::SelectArgs& a,
                       cuda::Workspace& workspace, cudaStream_t stream);

}  // namespace sap_kernels
