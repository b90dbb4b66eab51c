// Selection of the segments that cross tiles (as the Triton backend's topk_mask.py):
// - up to block_max entries: by one block, the one of the tile it starts in: radix rounds of
//   8 bits over the bits of |w| (a shared histogram of the digit among the entries that match
//   the prefix found so far), then one pass that keeps the entries above the threshold and the
//   first ties in index order; a segment whose keys fit kOnChipBytes is read once, into shared
//   memory, and its rounds and mask read them there; a longer one's keys that still match the
//   prefix are staged there once they fit, and the later rounds read only those;
// - longer: by every tile it covers (select_grid.cuh), which needs the slot state below.
// At most one segment longer than block_max starts in any block_max entries, so its slot is
// offsets[s] / block_max.
#pragma once

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "first_histogram.cuh"
#include "select_tile.cuh"

namespace sap_kernels::cuda {

struct SelectArgs {
  const void* params;
  const uint8_t* mask;
  const int64_t* offsets;
  int64_t numel;
  int64_t num_tiles;
  const int64_t* tile_first;
  const int64_t* tile_last;
  KeepCounts keep;
  uint8_t* out;
  int64_t block_max;
  int64_t num_slots;
  // per slot of a grid-selected segment
  int64_t* slot_segment;   // -1: none
  uint64_t* slot_prefix;   // the key bits decided so far
  int64_t* slot_remaining; // keys still to keep at the prefix
  int64_t* slot_total;     // live entries
  int64_t* slot_first_piece;
  int64_t* slot_ranked;    // after the rounds: the segment if its ties are split, else -1
  BinCount* histograms;    // [num_slots, kBins]
  int32_t* slot_phase;     // SlotPhase of the next round
  int64_t* slot_count;     // candidates appended
  void* candidates;        // keys (Traits::Bits), one per kCandidateDivisor entries
  int64_t* ties;           // [2 num_tiles]: ties of each tile's first and last piece
  int64_t* ties_before;    // their exclusive scan
  void* scan_temp;         // cub::DeviceScan's temporary storage
  size_t scan_temp_bytes;
};

// A segment's phase in a round of a selection that reads it more than once (grid-wide, or by one
// block past the on-chip room): its keys read from the buffer; read, and the ones that match
// the prefix appended to its candidates; read from the candidates.
enum SlotPhase : int32_t { kRead = 0, kCompact = 1, kCandidates = 2 };

// The candidates of segment s take the positions p of the buffer whose entries p * divisor lie
// in s: [ceil(offsets[s] / divisor), offsets[s + 1] / divisor). Tile t holds those of its
// segments among the positions t * kTile / kCandidateDivisor onwards.
constexpr int64_t kCandidateDivisor = 32;
static_assert(kTile % kCandidateDivisor == 0, "a tile holds whole candidate positions");
__host__ __device__ constexpr int64_t candidates_start(int64_t seg_start) {
  return (seg_start + kCandidateDivisor - 1) / kCandidateDivisor;
}
__host__ __device__ constexpr int64_t candidates_end(int64_t seg_end) {
  return seg_end / kCandidateDivisor;
}

// The phase of the next round, after one whose chosen bin holds `matching` keys: compacting
// once they fit `capacity` (where a round after the next remains to read them), then reading
// the candidates.
__host__ __device__ constexpr int32_t next_phase(int32_t phase, int64_t matching,
                                                 int64_t capacity, bool may_compact) {
  if (phase == kCompact) return kCandidates;
  if (phase == kRead && may_compact && matching <= capacity) return kCompact;
  return phase;
}

// Round r decides the key bits [shift, shift + width), 8 a round from the top.
__host__ __device__ constexpr int round_shift(int key_bits, int r) {
  return key_bits - 8 * r - 8 > 0 ? key_bits - 8 * r - 8 : 0;
}
__host__ __device__ constexpr int round_width(int key_bits, int r) {
  return key_bits - 8 * r - round_shift(key_bits, r);
}
__host__ __device__ constexpr int radix_rounds(int key_bits) { return (key_bits + 7) / 8; }

__device__ __forceinline__ bool matches(uint64_t key, uint64_t prefix, int shift, int width) {
  const int above = shift + width;
  return above >= 64 || (key >> above) == (prefix >> above);
}

// The digit whose bin holds the remaining-th largest key; remaining becomes the rank within it.
// (As the Triton backend's choose_digit: digit 0, remaining as it was, when remaining is 0 or
// beyond every key: keep none or all, which the caller knows from k and the total.)
template <class Count>
__device__ __forceinline__ uint64_t choose_digit(const Count* histogram, int64_t& remaining) {
  if (remaining <= 0) return 0;
  int64_t above = 0;
  for (int b = kBins - 1; b >= 0; --b) {
    const auto in_bin = static_cast<int64_t>(histogram[b]);
    if (above + in_bin >= remaining) {
      remaining -= above;
      return static_cast<uint64_t>(b);
    }
    above += in_bin;
  }
  return 0;
}

__device__ __forceinline__ bool kept_entry(bool live, uint64_t key, uint64_t threshold,
                                           int64_t tie_rank, int64_t quota, bool keep_all,
                                           bool keep_none) {
  if (!live || keep_none) return false;
  return keep_all || key > threshold || (key == threshold && tie_rank < quota);
}

// The live keys of a segment where they lie: in the params (and mask) ...
template <class Traits>
struct ParamsKeys {
  const typename Traits::Bits* data;
  const uint8_t* mask;
  __device__ bool at(int64_t index, uint64_t& key) const {
    if (mask != nullptr && mask[index] == 0) return false;
    key = Traits::key(data[index]);
    return true;
  }
};

// ... or gathered, all live: a segment's candidates, in shared or global memory ...
template <class Bits>
struct GatheredKeys {
  const Bits* keys;
  __device__ bool at(int64_t index, uint64_t& key) const {
    key = keys[index];
    return true;
  }
};

// ... or copied on chip, a dead entry as all ones (no key has the sign bit).
template <class Bits>
__device__ __forceinline__ Bits dead_key() {
  return static_cast<Bits>(~Bits{0});
}

template <class Traits>
struct SharedKeys {
  using Bits = typename Traits::Bits;
  const Bits* keys;
  int64_t start;
  __device__ bool at(int64_t index, uint64_t& key) const {
    const Bits bits = keys[index - start];
    key = bits;
    return bits != dead_key<Bits>();
  }
};

// A segment crossing tiles with at most this many bytes of keys is read once, into shared
// memory, for its radix rounds and its mask (8192 float32 entries).
constexpr int kOnChipBytes = 32 * 1024;
template <class Traits>
__host__ __device__ constexpr int64_t on_chip_entries() {
  return kOnChipBytes / sizeof(typename Traits::Bits);
}

// Keeps entries [start, end) of one segment in index order (all threads of the block): ties get
// ranks from ties_before on; returns the ties seen.
template <class Source>
__device__ int64_t write_in_order(const SelectArgs& a, const Source& source, int64_t start,
                                  int64_t end, uint64_t threshold, int64_t ties_before,
                                  int64_t quota, bool keep_all, bool keep_none,
                                  typename cub::BlockScan<int64_t, kThreads>::TempStorage& scan) {
  for (int64_t chunk = start; chunk < end; chunk += kTile) {
    const int64_t base = chunk + static_cast<int64_t>(threadIdx.x) * kItems;
    bool live[kItems];
    uint64_t key[kItems];
    int64_t ties = 0;
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      key[i] = 0;
      live[i] = base + i < end && source.at(base + i, key[i]);
      ties += live[i] && key[i] == threshold ? 1 : 0;
    }
    int64_t rank = 0, chunk_ties = 0;
    cub::BlockScan<int64_t, kThreads>(scan).ExclusiveSum(ties, rank, chunk_ties);
    rank += ties_before;
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const int64_t index = base + i;
      if (index >= end) continue;
      const bool tie = live[i] && key[i] == threshold;
      a.out[index] = kept_entry(live[i], key[i], threshold, rank, quota, keep_all, keep_none);
      rank += tie ? 1 : 0;
    }
    ties_before += chunk_ties;
    __syncthreads();
  }
  return ties_before;
}

// Stages the key of every thread of the warp that matches, at consecutive places of staged
// (room for capacity; the callers' counts fit it by construction, the bound keeps the stores
// inside all the same): one shared atomic a warp. All threads of the warp call it.
template <class Bits>
__device__ __forceinline__ void stage_key(bool match, Bits key, Bits* staged,
                                          uint32_t& staged_count, uint32_t capacity) {
  const unsigned ballot = __ballot_sync(0xffffffffu, match);
  const unsigned lane = threadIdx.x % 32;
  uint32_t warp_base = 0;
  if (lane == 0 && ballot != 0) warp_base = atomicAdd(&staged_count, __popc(ballot));
  warp_base = __shfl_sync(0xffffffffu, warp_base, 0);
  const uint32_t place = warp_base + __popc(ballot & ((1u << lane) - 1));
  if (match && place < capacity) staged[place] = key;
}

struct BlockSelection {
  uint32_t histogram[kBins];
  uint64_t prefix;
  int64_t remaining;
  int64_t total;
  int32_t phase;    // SlotPhase of the round
  uint32_t staged;  // keys compacted on chip
  typename cub::BlockScan<int64_t, kThreads>::TempStorage scan;
};

// Adds to the block's `histogram` round r's digits of the keys of source[begin, end) that match
// the prefix decided; with `compact`, stages those keys in `staged` too (room for capacity,
// staged_count of them so far). All threads of the block call it, each taking the same steps.
template <class Traits, class Source>
__device__ void add_round_histogram(const Source& source, int64_t begin, int64_t end,
                                    uint64_t decided, int r, uint32_t* histogram, bool compact,
                                    typename Traits::Bits* staged, uint32_t capacity,
                                    uint32_t& staged_count) {
  const int shift = round_shift(Traits::kKeyBits, r), width = round_width(Traits::kKeyBits, r);
  for (int64_t chunk = begin; chunk < end; chunk += kThreads) {
    const int64_t index = chunk + threadIdx.x;
    uint64_t key = 0;
    const bool match = index < end && source.at(index, key) && matches(key, decided, shift, width);
    if (match) atomicAdd(&histogram[(key >> shift) & ((1u << width) - 1)], 1u);
    if (compact) {
      stage_key(match, static_cast<typename Traits::Bits>(key), staged, staged_count, capacity);
    }
  }
}

// Selects the segment [seg_start, seg_end) keeping k (all threads of the block): radix rounds
// over the keys of source, then the mask. With room for `capacity` keys on chip (`staged`),
// once the keys that match the prefix fit there, the next round stages them and the rounds
// after it read only those (as the segments selected grid-wide do, select_grid.cuh).
template <class Traits, class Source>
__device__ void select_in_block(const SelectArgs& a, const Source& source, int64_t seg_start,
                                int64_t seg_end, int64_t k, BlockSelection& shared,
                                typename Traits::Bits* staged = nullptr, int64_t capacity = 0) {
  constexpr int kRounds = radix_rounds(Traits::kKeyBits);
  if (threadIdx.x == 0) {
    shared.prefix = 0;
    shared.remaining = k;
    shared.phase = kRead;
    shared.staged = 0;
  }
  for (int r = 0; r < kRounds; ++r) {
    const int shift = round_shift(Traits::kKeyBits, r);
    for (int b = threadIdx.x; b < kBins; b += kThreads) shared.histogram[b] = 0;
    __syncthreads();
    const uint64_t decided = shared.prefix;
    const int32_t phase = shared.phase;
    if (phase == kCandidates) {
      const uint32_t count = min(shared.staged, static_cast<uint32_t>(capacity));
      add_round_histogram<Traits>(GatheredKeys<typename Traits::Bits>{staged}, 0, count, decided,
                                  r, shared.histogram, false, nullptr, 0, shared.staged);
    } else {
      add_round_histogram<Traits>(source, seg_start, seg_end, decided, r, shared.histogram,
                                  phase == kCompact, staged, static_cast<uint32_t>(capacity),
                                  shared.staged);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      if (r == 0) {
        int64_t sum = 0;
        for (int b = 0; b < kBins; ++b) sum += shared.histogram[b];
        shared.total = sum;
      }
      int64_t left = shared.remaining;
      const uint64_t digit = choose_digit(shared.histogram, left);
      shared.prefix = decided | (digit << shift);
      shared.remaining = left;
      shared.phase = next_phase(phase, shared.histogram[digit], capacity,
                                staged != nullptr && r + 2 < kRounds);
    }
    __syncthreads();
  }
  write_in_order(a, source, seg_start, seg_end, shared.prefix, 0, shared.remaining,
                 k >= shared.total, k == 0, shared.scan);
}

// The segment that starts in tile t and crosses its end: selected here by the block when it has
// at most block_max entries (its keys copied on chip first when they fit), else its slot of the
// grid-wide selection is set up.
template <class Traits>
__global__ __launch_bounds__(kThreads) void block_select_kernel(SelectArgs a) {
  using Bits = typename Traits::Bits;
  constexpr int64_t kOnChip = on_chip_entries<Traits>();
  __shared__ BlockSelection shared;
  __shared__ Bits on_chip[kOnChip];
  const int64_t t = blockIdx.x;
  const int64_t tile_start = t * kTile;
  const int64_t s = a.tile_last[t];
  const int64_t seg_start = a.offsets[s], seg_end = a.offsets[s + 1];
  if (seg_start < tile_start || seg_end <= tile_start + kTile) return;
  const int64_t k = a.keep(s);
  if (seg_end - seg_start > a.block_max) {
    if (threadIdx.x == 0) {
      const int64_t slot = seg_start / a.block_max;
      a.slot_segment[slot] = s;
      a.slot_remaining[slot] = k;
      a.slot_first_piece[slot] = 2 * t + (s == a.tile_first[t] ? 0 : 1);
    }
    return;
  }
  const ParamsKeys<Traits> params{static_cast<const Bits*>(a.params), a.mask};
  if (seg_end - seg_start > kOnChip) {  // the on-chip room takes the keys that still match
    return select_in_block<Traits>(a, params, seg_start, seg_end, k, shared, on_chip, kOnChip);
  }
  for (int64_t index = seg_start + threadIdx.x; index < seg_end; index += kThreads) {
    uint64_t key = 0;
    const bool live = params.at(index, key);
    on_chip[index - seg_start] = live ? static_cast<Bits>(key) : dead_key<Bits>();
  }
  __syncthreads();
  select_in_block<Traits>(a, SharedKeys<Traits>{on_chip, seg_start}, seg_start, seg_end, k,
                          shared);
}

}  // namespace sap_kernels::cuda
