// Selection of the segments longer than block_max, by every tile they cover (as the Triton
// backend's select_grid.py): each tile adds its histogram of the round's digit into the
// segment's slot in memory (integer atomics: the counts do not depend on their order), one
// thread per slot chooses the digit; the first round's histograms come from the tile kernels'
// read (first_histogram.cuh). Once the keys that match the prefix found so far fit the
// segment's share of the candidate buffer, the next round's read also appends them there and
// the rounds after it read only those. Then, when the threshold's ties are split (not all
// kept), the ties of each tile are counted and scanned in tile order (when every tie is kept,
// nothing is read), and a last pass writes the mask.
#pragma once

#include "select_long.cuh"

namespace sap_kernels::cuda {

// The piece `which` of tile t (0: its first segment's entries, 1: its last's, if another one)
// when it belongs to a grid-selected segment: its slot, or -1; [start, end): its entries.
__device__ __forceinline__ int64_t grid_piece(const SelectArgs& a, int64_t t, int which,
                                              int64_t& start, int64_t& end) {
  const int64_t first = a.tile_first[t];
  const int64_t s = which == 0 ? first : a.tile_last[t];
  if (which == 1 && s == first) return -1;
  const int64_t seg_start = a.offsets[s], seg_end = a.offsets[s + 1];
  if (seg_end - seg_start <= a.block_max) return -1;
  const int64_t slot = seg_start / a.block_max;
  if (a.slot_segment[slot] != s) return -1;
  const int64_t tile_start = t * kTile;
  start = seg_start > tile_start ? seg_start : tile_start;
  const int64_t tile_end = tile_start + kTile < a.numel ? tile_start + kTile : a.numel;
  end = seg_end < tile_end ? seg_end : tile_end;
  return slot;
}

// The range of candidate positions of the slot's segment that tile t holds (empty: lo >= hi).
__device__ __forceinline__ void tile_candidates(const SelectArgs& a, int64_t slot, int64_t& lo,
                                                int64_t& hi) {
  constexpr int64_t kPositions = kTile / kCandidateDivisor;
  const int64_t region_start = candidates_start(a.offsets[a.slot_segment[slot]]);
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kPositions;
  lo = first > region_start ? first : region_start;
  const int64_t region_end = region_start + a.slot_count[slot];
  hi = first + kPositions < region_end ? first + kPositions : region_end;
}

// The keys a block staged on chip (count of them), appended to the slot's candidates.
template <class Bits>
__device__ void append_candidates(const SelectArgs& a, int64_t slot, const Bits* staged,
                                  const uint32_t& count, int64_t& base) {
  __syncthreads();
  if (threadIdx.x == 0 && count > 0) {
    base = candidates_start(a.offsets[a.slot_segment[slot]]) +
           static_cast<int64_t>(atomicAdd(reinterpret_cast<unsigned long long*>(
                                              &a.slot_count[slot]),
                                          static_cast<unsigned long long>(count)));
  }
  __syncthreads();
  // They fit by construction (the last round's chosen bin counted them); the region's end
  // bounds the stores all the same.
  auto* keys = static_cast<Bits*>(a.candidates);
  const int64_t region_end = candidates_end(a.offsets[a.slot_segment[slot] + 1]);
  for (uint32_t i = threadIdx.x; i < count; i += kThreads) {
    if (base + i < region_end) keys[base + i] = staged[i];
  }
}

// Round r's histogram of each grid-selected piece of tile t: from the candidates once the slot
// has them, else from the buffer, appending the keys that match the prefix when the slot
// compacts in this round (their order among the candidates does not matter: only counted).
template <class Traits>
__global__ __launch_bounds__(kThreads) void grid_histogram_kernel(SelectArgs a, int r) {
  using Bits = typename Traits::Bits;
  __shared__ uint32_t histogram[kBins];
  __shared__ Bits staged[kTile];
  __shared__ uint32_t staged_count;
  __shared__ int64_t base;
  const auto* data = static_cast<const Bits*>(a.params);
  for (int which = 0; which < 2; ++which) {
    int64_t start = 0, end = 0;
    const int64_t slot = grid_piece(a, blockIdx.x, which, start, end);
    if (slot < 0) continue;
    for (int b = threadIdx.x; b < kBins; b += kThreads) histogram[b] = 0;
    if (threadIdx.x == 0) staged_count = 0;
    __syncthreads();
    const int32_t phase = a.slot_phase[slot];
    const uint64_t decided = a.slot_prefix[slot];
    if (phase == kCandidates) {
      int64_t lo = 0, hi = 0;
      tile_candidates(a, slot, lo, hi);
      add_round_histogram<Traits>(GatheredKeys<Bits>{static_cast<const Bits*>(a.candidates)}, lo,
                                  hi, decided, r, histogram, false, nullptr, 0, staged_count);
      add_block_bins(histogram, a.histograms + slot * kBins);
      continue;
    }
    add_round_histogram<Traits>(ParamsKeys<Traits>{data, a.mask}, start, end, decided, r,
                                histogram, phase == kCompact, staged, kTile, staged_count);
    add_block_bins(histogram, a.histograms + slot * kBins);
    if (phase == kCompact) append_candidates(a, slot, staged, staged_count, base);
    __syncthreads();
  }
}

// One thread per slot: the digit of round r, then the histogram zeroed for the next round; after
// the last one, slot_ranked says whether the threshold's ties need ranks in index order.
__global__ void grid_choose_kernel(SelectArgs a, int key_bits, int r);

template <class Traits>
__global__ __launch_bounds__(kThreads) void grid_ties_kernel(SelectArgs a) {
  using Reduce = cub::BlockReduce<int64_t, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const auto* data = static_cast<const typename Traits::Bits*>(a.params);
  for (int which = 0; which < 2; ++which) {
    int64_t start = 0, end = 0;
    const int64_t slot = grid_piece(a, blockIdx.x, which, start, end);
    int64_t ties = 0;
    if (slot >= 0) {
      const uint64_t threshold = a.slot_prefix[slot];
      for (int64_t index = start + threadIdx.x; index < end; index += kThreads) {
        const bool live = a.mask == nullptr || a.mask[index] != 0;
        ties += live && Traits::key(data[index]) == threshold ? 1 : 0;
      }
    }
    ties = Reduce(reduce).Sum(ties);
    if (threadIdx.x == 0) a.ties[2 * blockIdx.x + which] = slot >= 0 ? ties : 0;
    __syncthreads();
  }
}

template <class Traits>
__global__ __launch_bounds__(kThreads) void grid_write_kernel(SelectArgs a) {
  __shared__ typename cub::BlockScan<int64_t, kThreads>::TempStorage scan;
  for (int which = 0; which < 2; ++which) {
    int64_t start = 0, end = 0;
    const int64_t slot = grid_piece(a, blockIdx.x, which, start, end);
    if (slot < 0) continue;
    // ties of the segment in the tiles before this one, in index order
    const int64_t before = a.ties_before[2 * blockIdx.x + which] -
                           a.ties_before[a.slot_first_piece[slot]];
    const int64_t k = a.keep(a.slot_segment[slot]);
    const ParamsKeys<Traits> params{static_cast<const typename Traits::Bits*>(a.params), a.mask};
    write_in_order(a, params, start, end, a.slot_prefix[slot], before, a.slot_remaining[slot],
                   k >= a.slot_total[slot], k == 0, scan);
  }
}


}  // namespace sap_kernels::cuda
