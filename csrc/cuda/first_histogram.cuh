// The first radix round of the segments selected grid-wide (select_grid.cuh), taken by the tile
// kernels that read every tile anyway: sap_step's power sums (sums.cuh, STEP) and
// segmented_topk_mask's tile selection (topk_mask.cu). The grid-wide rounds then start at the
// second, and the selection reads the buffer one time less. The bins are integer sums, so their
// order of addition does not matter.
#pragma once

#include "tiles.cuh"

namespace sap_kernels::cuda {

// Bins of a radix round (8 key bits); the first takes the top 8.
constexpr int kBins = 256;
// A count of the segments' histograms in memory: one segment may hold 2^32 entries and more
// (the blocks' shared bins, of one piece each, are uint32).
using BinCount = unsigned long long;

// A block's shared histogram of a piece of one segment, added into the segment's histogram in
// memory: the bins the piece filled (all threads of the block; synchronised before and after).
__device__ __forceinline__ void add_block_bins(const uint32_t* bins, BinCount* segment_bins) {
  __syncthreads();
  for (int b = threadIdx.x; b < kBins; b += kThreads) {
    if (bins[b] != 0) atomicAdd(&segment_bins[b], static_cast<BinCount>(bins[b]));
  }
  __syncthreads();
}

// Adds, for the tile's first and last segments when longer than block_max, the histogram of
// the top 8 key bits of their live entries in the tile to their slot's (offsets[s] / block_max)
// in `histograms` ([slots, kBins]). All threads of the block call it; `bins` is the block's
// shared scratch of kBins counts.
template <class Traits>
__device__ void add_first_histograms(const int64_t* offsets, int64_t block_max,
                                     BinCount* histograms,
                                     const typename Traits::Bits bits[kItems],
                                     const bool live[kItems], const TilePieces& pieces,
                                     uint32_t* bins) {
  constexpr int kShift = Traits::kKeyBits - 8;
  for (int which = 0; which < 2; ++which) {
    const int64_t s = which == 0 ? pieces.first : pieces.last;
    if (which == 1 && s == pieces.first) return;
    const int64_t seg_start = offsets[s];
    if (offsets[s + 1] - seg_start <= block_max) continue;  // the same for every thread
    for (int b = threadIdx.x; b < kBins; b += kThreads) bins[b] = 0;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      if (live[i] && pieces.sid[i] == s) {
        atomicAdd(&bins[static_cast<int>(Traits::key(bits[i]) >> kShift)], 1u);
      }
    }
    add_block_bins(bins, histograms + (seg_start / block_max) * kBins);
  }
}

}  // namespace sap_kernels::cuda
