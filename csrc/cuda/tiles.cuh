// Tiles of the flat buffer and the segments they cut (the load balance of every kernel), as in
// the Triton backend (sap_kernels/triton/tiles.py): a binary search gives the segment of each
// tile's first and last entry; inside a tile, a histogram of the segment starts and its prefix
// sum give every entry's segment. Segments strictly between the first and the last are whole in
// the tile; the tile leaves a record for its first and its last, which may cross into others.
#pragma once

#include <cub/block/block_scan.cuh>

#include "common.cuh"

namespace sap_kernels::cuda {

// The largest s in [0, num_segments) with offsets[s] <= position (position < offsets[S]).
__device__ __forceinline__ int64_t segment_of(const int64_t* offsets, int64_t num_segments,
                                              int64_t position) {
  int64_t lo = 0, hi = num_segments;  // offsets[lo] <= position < offsets[hi]
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (offsets[mid] <= position) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// first[t], last[t]: the segments of tile t's first and last entries; one thread per tile.
__global__ void tile_plan_kernel(const int64_t* offsets, int64_t num_segments, int64_t numel,
                                 int64_t num_tiles, int64_t* first, int64_t* last);

// The tile's pieces, for the entries a thread holds.
struct TilePieces {
  int64_t first;  // segment of the tile's first entry
  int64_t last;   // segment of its last entry
  int64_t sid[kItems];
  bool start[kItems];  // a piece starts here (the tile or a segment does)
  bool end[kItems];    // a piece ends here (the next entry starts a segment, or is the last)
  bool repeated;       // two segments start at one entry: some segment is empty
};

using IntScan = cub::BlockScan<int, kThreads>;

struct PieceStorage {
  int starts[kTile + 1];
  typename IntScan::TempStorage scan;
};

// Fills pieces for the tile at tile_start holding n_valid entries (all threads take part).
__device__ __forceinline__ void find_pieces(const int64_t* offsets, int64_t tile_start,
                                            int64_t n_valid, PieceStorage& storage,
                                            TilePieces& pieces) {
  for (int j = threadIdx.x; j <= kTile; j += kThreads) storage.starts[j] = 0;
  __syncthreads();
  // every segment after the first starts inside the tile, after its first entry
  for (int64_t s = pieces.first + 1 + threadIdx.x; s <= pieces.last; s += kThreads) {
    atomicAdd(&storage.starts[offsets[s] - tile_start], 1);
  }
  __syncthreads();
  const int j0 = threadIdx.x * kItems;
  int counts[kItems];
  int local = 0;
  bool repeated = false;
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    counts[i] = storage.starts[j0 + i];
    local += counts[i];
    repeated |= counts[i] > 1;
  }
  int before = 0;
  IntScan(storage.scan).ExclusiveSum(local, before);
  int running = before;
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    running += counts[i];
    const int j = j0 + i;
    pieces.sid[i] = pieces.first + running;
    pieces.start[i] = counts[i] > 0 || j == 0;
    pieces.end[i] = j < n_valid && (j == n_valid - 1 || storage.starts[j + 1] > 0);
  }
  pieces.repeated = __syncthreads_or(repeated) != 0;
}

// The start of every tile kernel (all threads take part): tile t's entries, which are live, its
// pieces; returns the number of entries in the tile.
template <class Traits>
__device__ __forceinline__ int64_t begin_tile(const void* params, const uint8_t* mask,
                                              const int64_t* offsets, int64_t numel,
                                              const int64_t* tile_first, const int64_t* tile_last,
                                              int64_t t, PieceStorage& storage,
                                              typename Traits::Bits bits[kItems],
                                              bool live[kItems], TilePieces& pieces) {
  const int64_t tile_start = t * kTile;
  const int64_t n_valid = numel - tile_start < kTile ? numel - tile_start : kTile;
  load_tile<Traits>(params, mask, numel, tile_start, bits, live);
  pieces.first = tile_first[t];
  pieces.last = tile_last[t];
  find_pieces(offsets, tile_start, n_valid, storage, pieces);
  return n_valid;
}

// The segments [lo, hi] whose outputs tile t writes or leaves records for: those after the
// previous tile's last segment, up to its own last one (the last tile: to the end).
__device__ __forceinline__ void owned_segments(const int64_t* tile_last, int64_t t,
                                               int64_t num_tiles, int64_t num_segments,
                                               int64_t& lo, int64_t& hi) {
  lo = t > 0 ? tile_last[t - 1] + 1 : 0;
  hi = t == num_tiles - 1 ? num_segments - 1 : tile_last[t];
}

// A partial sum of a segmented scan: `flag` marks that a piece starts within it; combining
// a with a later b restarts at b when b's flag is set.
template <class Values>
struct Segmented {
  int flag;
  Values values;
};

template <class Values>
struct SegmentedOp {
  __device__ Segmented<Values> operator()(const Segmented<Values>& a,
                                          const Segmented<Values>& b) const {
    return {a.flag | b.flag, b.flag ? b.values : Values::combine(a.values, b.values)};
  }
};

// Inclusive segmented scan over the block's kTile items (blocked arrangement).
template <class Values, class Storage>
__device__ __forceinline__ void segmented_scan(Segmented<Values> items[kItems],
                                               Storage& storage) {
  const SegmentedOp<Values> op;
#pragma unroll
  for (int i = 1; i < kItems; ++i) items[i] = op(items[i - 1], items[i]);
  Segmented<Values> prefix;
  const Segmented<Values> identity{0, Values{}};
  cub::BlockScan<Segmented<Values>, kThreads>(storage).ExclusiveScan(items[kItems - 1], prefix,
                                                                     identity, op);
#pragma unroll
  for (int i = 0; i < kItems; ++i) items[i] = op(prefix, items[i]);
}

}  // namespace sap_kernels::cuda
