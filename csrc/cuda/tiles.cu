// The kernels of the tile plan and of the grid-wide selection's digit choice (non-templates,
// compiled once and shared by every op).
#include "select_grid.cuh"
#include "tiles.cuh"

namespace sap_kernels::cuda {

__global__ void tile_plan_kernel(const int64_t* offsets, int64_t num_segments, int64_t numel,
                                 int64_t num_tiles, int64_t* first, int64_t* last) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= num_tiles) return;
  const int64_t start = t * kTile;
  const int64_t end = start + kTile < numel ? start + kTile : numel;
  first[t] = segment_of(offsets, num_segments, start);
  last[t] = segment_of(offsets, num_segments, end - 1);
}

__global__ void grid_choose_kernel(SelectArgs a, int key_bits, int r) {
  const int64_t slot = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (slot >= a.num_slots || a.slot_segment[slot] < 0) return;
  BinCount* histogram = a.histograms + slot * kBins;
  if (r == 0) {
    int64_t total = 0;
    for (int b = 0; b < kBins; ++b) total += histogram[b];
    a.slot_total[slot] = total;
  }
  int64_t remaining = a.slot_remaining[slot];
  const uint64_t digit = choose_digit(histogram, remaining);
  a.slot_prefix[slot] |= digit << round_shift(key_bits, r);
  a.slot_remaining[slot] = remaining;
  // the chosen bin holds the keys that match the prefix now (after the last round, the ties)
  const auto matching = static_cast<int64_t>(histogram[digit]);
  const int64_t s = a.slot_segment[slot];
  const int64_t capacity = candidates_end(a.offsets[s + 1]) - candidates_start(a.offsets[s]);
  a.slot_phase[slot] =
      next_phase(a.slot_phase[slot], matching, capacity, r + 2 < radix_rounds(key_bits));
  if (r == radix_rounds(key_bits) - 1) {
    // (when remaining is 0 or beyond every key, no entry or every one is kept: no ranks)
    const bool every_tie_kept =
        matching == remaining || remaining <= 0 || remaining >= a.slot_total[slot];
    a.slot_ranked[slot] = every_tie_kept ? -1 : s;
  }
  for (int b = 0; b < kBins; ++b) histogram[b] = 0;  // for the next round
}

}  // namespace sap_kernels::cuda
