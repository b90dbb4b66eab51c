// Load balancing over a flat buffer cut into segments: the buffer is split into fixed-size
// tiles, never one task per segment, so one segment of 1e9 elements and 1e7 segments of 10
// spread over the cores alike. A tile finds its first segment by binary search over the offsets
// and walks the segments it overlaps as "pieces". The tile size does not depend on the thread
// count, so results do not either.
#pragma once

#include "isa.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

constexpr int64_t kTileSize = int64_t{1} << 16;

inline int64_t tile_count(int64_t numel) { return (numel + kTileSize - 1) / kTileSize; }

// The threads worth waking for a parallel region over `entries` entries (or segments): one per
// `per_thread` of them, at most all. A thread that sleeps between calls (libgomp's threads do
// after a short spin, and at once with OMP_WAIT_POLICY=PASSIVE) takes tens of microseconds to
// wake on a VM: segmented_pqi of 1000 entries took ~120 us on two threads with PASSIVE, ~3 us
// on one. A team of one wakes nobody. Still-spinning threads wake in a few microseconds, and
// from ~1e5 entries on two of them were faster again, so the default is PyTorch's grain
// (32768 entries), for the power sums (~0.1-0.6 ns an entry); the selections, a few times that
// an entry, take half of it.
constexpr int64_t kEntriesPerThread = kTileSize / 2;
constexpr int64_t kSelectEntriesPerThread = kTileSize / 4;
inline int threads_for(int64_t entries, int64_t per_thread = kEntriesPerThread) {
  const int64_t wanted = std::max<int64_t>(1, entries / per_thread);
  return static_cast<int>(std::min<int64_t>(wanted, omp_get_max_threads()));
}

// How many consecutive tiles a thread takes at a time when tiles are handed out dynamically:
// runs of up to 16 (1 MiB of float32 and more), so that a core streams through a run before
// it jumps, but short enough that each thread gets at least 8 grabs, the balance that makes
// handing them out dynamically worth it. Tiles one at a time made the two cores of a Zen 4 VM
// alternate 256 KiB tiles, and the power sums ran ~7% slower when the memory was fast.
inline int64_t tiles_per_grab(int64_t tiles, int threads) {
  return std::clamp<int64_t>(tiles / (8 * int64_t{threads}), 1, 16);
}

// The segment that holds flat index pos: the first s with offsets[s + 1] > pos.
inline int64_t segment_of(const int64_t* offsets, int64_t num_segments, int64_t pos) {
  return std::upper_bound(offsets + 1, offsets + num_segments + 1, pos) - (offsets + 1);
}

// The part of one segment that lies inside one tile.
struct Piece {
  int64_t segment;
  int64_t begin;
  int64_t end;
  bool starts_before_tile;  // the segment began in an earlier tile
  bool ends_after_tile;     // the segment goes on into a later tile
};

// Segments [first, end).
struct SegmentRange {
  int64_t first;
  int64_t end;
};

// Visits the non-empty pieces of tile `tile` in flat order: a segment wholly inside the tile
// goes to visit_whole(segment, begin, end), from a loop that reads one offset a segment and
// builds no Piece (with segments of ~100 entries, bounds and flags for each cost ~5% of the
// time); the (at most two) pieces that cross the tile's edges go to visit_crossing(piece).
// Returns the segments the loop of whole ones went over (empty ones among them; first == end
// where there were none).
template <class VisitCrossing, class VisitWhole>
__attribute__((always_inline)) inline SegmentRange for_each_piece_whole_apart(
    const int64_t* offsets, int64_t num_segments, int64_t numel, int64_t tile,
    VisitCrossing&& visit_crossing, VisitWhole&& visit_whole) {
  const int64_t lo = tile * kTileSize;
  const int64_t hi = std::min(numel, lo + kTileSize);
  int64_t s = segment_of(offsets, num_segments, lo);
  if (s < num_segments && offsets[s] < lo) {
    const int64_t end = offsets[s + 1];
    visit_crossing(Piece{s, lo, std::min(end, hi), true, end > hi});
    ++s;
  }
  const int64_t first_whole = s;
  int64_t begin = s < num_segments ? offsets[s] : hi;
  for (; s < num_segments; ++s) {
    const int64_t end = offsets[s + 1];
    if (end > hi) break;
    if (begin < end) visit_whole(s, begin, end);
    begin = end;
  }
  const SegmentRange whole{first_whole, s};
  if (s < num_segments && begin < hi) visit_crossing(Piece{s, begin, hi, false, true});
  return whole;
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
