// Selection of the segments that lie whole inside one tile, on chip (as the Triton backend's
// select_tile.py): each entry gets a sort key (its piece of the tile, dead or live, |w|
// descending, its index); after a block radix sort, the live entries of each segment come first,
// largest |w| first and equal |w| in index order, and an entry is kept when its rank in its
// segment is below the segment's k. Entries of segments that cross the tile take no part.
#pragma once

#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>

#include "tiles.cuh"

namespace sap_kernels::cuda {

// Sort group of an entry that takes no part: above 2 * piece + 1 for every piece of a tile.
constexpr uint32_t kNotWhole = 2 * kTile;
constexpr int kGroupBits = 13;  // kNotWhole < 2^13
constexpr int kIndexBits = 11;  // kTile = 2^11
static_assert(kTile == 1 << kIndexBits, "the sort keys hold an index of kIndexBits bits");

// The keep count of segment s: plus[s], less minus[s] when given (sap_step: count - prune).
struct KeepCounts {
  const int64_t* plus;
  const int64_t* minus;
  __device__ int64_t operator()(int64_t s) const { return plus[s] - (minus ? minus[s] : 0); }
};

struct SelectStorage {
  union {
    typename IntScan::TempStorage scan;
    typename cub::BlockRadixSort<uint64_t, kThreads, kItems>::TempStorage sort_keys;
    typename cub::BlockRadixSort<uint64_t, kThreads, kItems, uint32_t>::TempStorage sort_pairs;
    typename cub::BlockRadixSort<uint32_t, kThreads, kItems, uint32_t>::TempStorage sort_groups;
  };
  int64_t sid[kTile];
};

// Whether the segment s lies whole in [tile_start, tile_end).
__device__ __forceinline__ bool whole_in(const int64_t* offsets, int64_t s, int64_t tile_start,
                                         int64_t tile_end) {
  return offsets[s] >= tile_start && offsets[s + 1] <= tile_end;
}

// Sorts (group, index) entries of the tile by (group, |w| descending, index); returns each
// sorted position's group and index. 16/32-bit keys fit one 64-bit sort key; float64 keys take
// two stable sorts, by |w| descending then by group.
template <class Traits>
__device__ __forceinline__ void sort_tile(const uint64_t key[kItems], const uint32_t group[kItems],
                                          SelectStorage& storage, uint32_t sorted_group[kItems],
                                          uint32_t sorted_index[kItems]) {
  const uint32_t j0 = threadIdx.x * kItems;
  if constexpr (!Traits::kFloat64) {
    uint64_t packed[kItems];
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const uint64_t descending = 0xffffffffull - key[i];
      packed[i] = (static_cast<uint64_t>(group[i]) << (32 + kIndexBits)) |
                  (descending << kIndexBits) | (j0 + i);
    }
    cub::BlockRadixSort<uint64_t, kThreads, kItems>(storage.sort_keys)
        .Sort(packed, 0, 32 + kIndexBits + kGroupBits);
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      sorted_group[i] = static_cast<uint32_t>(packed[i] >> (32 + kIndexBits));
      sorted_index[i] = static_cast<uint32_t>(packed[i] & (kTile - 1));
    }
  } else {
    uint64_t descending[kItems];
    uint32_t value[kItems];
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      descending[i] = 0x7fffffffffffffffull - key[i];
      value[i] = (group[i] << kIndexBits) | (j0 + i);
    }
    // stable: equal |w| keep index order, then equal groups keep the order by |w|
    cub::BlockRadixSort<uint64_t, kThreads, kItems, uint32_t>(storage.sort_pairs)
        .Sort(descending, value, 0, 63);
    __syncthreads();
    uint32_t by_group[kItems];
#pragma unroll
    for (int i = 0; i < kItems; ++i) by_group[i] = value[i] >> kIndexBits;
    cub::BlockRadixSort<uint32_t, kThreads, kItems, uint32_t>(storage.sort_groups)
        .Sort(by_group, value, 0, kGroupBits);
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      sorted_group[i] = value[i] >> kIndexBits;
      sorted_index[i] = value[i] & (kTile - 1);
    }
  }
}

// Writes out[] for the entries of the segments whole in the tile (all threads take part).
template <class Traits>
__device__ void select_in_tile(const typename Traits::Bits bits[kItems], const bool live[kItems],
                               const TilePieces& pieces, int64_t tile_start, int64_t n_valid,
                               const int64_t* offsets, const KeepCounts& keep, uint8_t* out,
                               SelectStorage& storage) {
  const int64_t tile_end = tile_start + n_valid;
  const int64_t first = pieces.first, last = pieces.last;
  const bool first_whole = whole_in(offsets, first, tile_start, tile_end);
  const bool last_whole = whole_in(offsets, last, tile_start, tile_end);
  const int j0 = threadIdx.x * kItems;
  int starts = 0;
#pragma unroll
  for (int i = 0; i < kItems; ++i) starts += pieces.start[i] ? 1 : 0;
  int before = 0;
  IntScan(storage.scan).ExclusiveSum(starts, before);
  uint64_t key[kItems];
  uint32_t group[kItems];
  int piece = before - 1;
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    piece += pieces.start[i] ? 1 : 0;
    const int64_t s = pieces.sid[i];
    const bool whole = j0 + i < n_valid && ((s > first && s < last) ||
                                            (s == first && first_whole) ||
                                            (s == last && last_whole));
    group[i] = whole ? 2u * piece + (live[i] ? 0u : 1u) : kNotWhole;
    key[i] = live[i] ? Traits::key(bits[i]) : 0;
    storage.sid[j0 + i] = s;
  }
  __syncthreads();  // the scan storage is the sort's too
  uint32_t sorted_group[kItems], sorted_index[kItems];
  sort_tile<Traits>(key, group, storage, sorted_group, sorted_index);
  const int64_t head = first_whole ? 0 : offsets[first + 1] - tile_start;
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    if (sorted_group[i] == kNotWhole) continue;
    const int64_t s = storage.sid[sorted_index[i]];
    const int64_t rank = (j0 + i) - (offsets[s] - tile_start - head);
    const bool kept = (sorted_group[i] & 1u) == 0 && rank < keep(s);
    out[tile_start + sorted_index[i]] = kept ? 1 : 0;
  }
}

}  // namespace sap_kernels::cuda
