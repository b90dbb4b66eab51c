// The power-sum kernels (as the Triton backend's power_sums.py): a tile kernel reads the buffer
// once, writes the outputs of every segment whole in the tile and leaves one record for each of
// its first and last segments that crosses it; the combine kernel reduces the records, a chunk
// per block, level by level. In scaled mode a first pass of the same shape takes each segment's
// largest magnitude (its scale). sap_step's tile kernel (STEP) also selects the mask of the
// whole segments while their entries are in registers, and takes the first radix round of the
// long ones (first_histogram.cuh).
#pragma once

#include <type_traits>

#include "first_histogram.cuh"
#include "select_tile.cuh"
#include "terms.cuh"

namespace sap_kernels::cuda {

struct SumValues {
  double p, q;
  int64_t count;
  __device__ static SumValues combine(const SumValues& a, const SumValues& b) {
    return {__dadd_rn(a.p, b.p), __dadd_rn(a.q, b.q), a.count + b.count};
  }
};

struct MaxValues {
  uint64_t key;
  int64_t count;
  __device__ static MaxValues combine(const MaxValues& a, const MaxValues& b) {
    return {a.key > b.key ? a.key : b.key, a.count + b.count};
  }
};

// Records: segment id and partial values; a count of -1 marks a segment the tile finished.
struct Records {
  int64_t* key;
  uint64_t* a;  // SumValues::p bits, or MaxValues::key
  double* b;    // SumValues::q
  int64_t* count;
};

struct SumsArgs {
  const void* params;
  const uint8_t* mask;
  const int64_t* offsets;
  int64_t numel, num_segments, num_tiles;
  const int64_t* tile_first;
  const int64_t* tile_last;
  const int32_t* scale_exp;  // scaled mode: each segment's scale exponent; else nullptr
  Exponent p, q;
  double inv_p, inv_q;
  double* scale;  // max pass, or the unscaled mode's 1 / 0
  int32_t* scale_exp_out;  // max pass
  double* sum_p;
  double* sum_q;
  int64_t* count;
  double* pqi;       // may be nullptr
  int64_t* prune;    // sap_step
  CountRule rule;    // sap_step
  uint8_t* out;      // sap_step: the mask
  BinCount* first_histograms;  // sap_step: the first radix round's (first_histogram.cuh)
  int64_t block_max;           // sap_step: longer segments are selected grid-wide
  int32_t* nonfinite;
};

__device__ __forceinline__ void finalize(const SumsArgs& a, int64_t s, const SumValues& v) {
  const bool finite = fabs(v.p) < INFINITY && fabs(v.q) < INFINITY;
  const double sum_p = finite ? v.p : NAN, sum_q = finite ? v.q : NAN;
  if (!finite) *a.nonfinite = 1;
  a.sum_p[s] = sum_p;
  a.sum_q[s] = sum_q;
  a.count[s] = v.count;
  if (a.scale_exp == nullptr) a.scale[s] = finite ? (sum_p > 0.0 ? 1.0 : 0.0) : NAN;
  const double pqi = pqi_value(sum_p, sum_q, v.count, a.inv_p, a.inv_q);
  if (a.pqi != nullptr) a.pqi[s] = pqi;
  if (a.prune != nullptr) a.prune[s] = prune_count(pqi, v.count, a.rule);
}

template <bool kFloat64Keys>
__device__ __forceinline__ void finalize(const SumsArgs& a, int64_t s, const MaxValues& v) {
  const int field = kFloat64Keys ? static_cast<int>(v.key >> 52) : static_cast<int>(v.key >> 23);
  const int max_field = kFloat64Keys ? 2047 : 255;
  const int exponent = (field > 1 ? field : 1) - (kFloat64Keys ? 1023 : 127);
  const bool nonfinite = field == max_field, zero = v.key == 0;
  a.scale[s] = zero ? 0.0 : nonfinite ? NAN : power_of_two(exponent);
  a.scale_exp_out[s] = zero || nonfinite ? 0 : exponent;
  a.count[s] = v.count;
}

template <class Traits>
__device__ __forceinline__ SumValues entry_terms(const SumsArgs& a, typename Traits::Bits bits,
                                                 bool live, int64_t s) {
  if (!live) return {0.0, 0.0, 0};
  if (a.scale_exp != nullptr) {  // x = a / scale, exactly, in two factors within range
    const int exponent = a.scale_exp[s], half = exponent >> 1;
    const double x = __dmul_rn(__dmul_rn(Traits::wide(bits), power_of_two(-half)),
                               power_of_two(half - exponent));
    return {scaled_term(x, a.p), scaled_term(x, a.q), 1};
  }
  const float magnitude = Traits::magnitude(bits);
  return {unscaled_term(magnitude, a.p), unscaled_term(magnitude, a.q), 1};
}

template <class Traits>
__device__ __forceinline__ MaxValues entry_max(typename Traits::Bits bits, bool live) {
  return {live ? Traits::scale_key(bits) : 0, live ? 1 : 0};
}

__device__ __forceinline__ void store_record(const Records& r, int64_t slot, int64_t key,
                                             const SumValues& v, bool finished) {
  r.key[slot] = key;
  r.a[slot] = static_cast<uint64_t>(__double_as_longlong(v.p));
  r.b[slot] = v.q;
  r.count[slot] = finished ? -1 : v.count;
}

__device__ __forceinline__ void store_record(const Records& r, int64_t slot, int64_t key,
                                             const MaxValues& v, bool finished) {
  r.key[slot] = key;
  r.a[slot] = v.key;
  r.count[slot] = finished ? -1 : v.count;
}

__device__ __forceinline__ void load_record(const Records& r, int64_t i, SumValues& v) {
  v = {__longlong_as_double(static_cast<long long>(r.a[i])), r.b[i], r.count[i]};
}

__device__ __forceinline__ void load_record(const Records& r, int64_t i, MaxValues& v) {
  v = {r.a[i], r.count[i]};
}

template <class Traits, class Values>
__device__ __forceinline__ void finalize_values(const SumsArgs& a, int64_t s, const Values& v) {
  if constexpr (std::is_same_v<Values, MaxValues>) {
    finalize<Traits::kFloat64>(a, s, v);
  } else {
    finalize(a, s, v);
  }
}

template <class Values>
union TileStorage {
  PieceStorage pieces;
  typename cub::BlockScan<Segmented<Values>, kThreads>::TempStorage scan;
  SelectStorage select;
};

// One tile: Values = SumValues (the sums) or MaxValues (the scales). STEP: sap_step's mask too.
template <class Traits, class Values, bool STEP>
__global__ __launch_bounds__(kThreads) void tile_kernel(SumsArgs a, Records records) {
  __shared__ TileStorage<Values> storage;
  const int64_t t = blockIdx.x;
  const int64_t tile_start = t * kTile;
  typename Traits::Bits bits[kItems];
  bool live[kItems];
  TilePieces pieces;
  const int64_t n_valid = begin_tile<Traits>(a.params, a.mask, a.offsets, a.numel, a.tile_first,
                                             a.tile_last, t, storage.pieces, bits, live, pieces);
  Segmented<Values> items[kItems];
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    if constexpr (std::is_same_v<Values, MaxValues>) {
      items[i] = {pieces.start[i] ? 1 : 0, entry_max<Traits>(bits[i], live[i])};
    } else {
      items[i] = {pieces.start[i] ? 1 : 0, entry_terms<Traits>(a, bits[i], live[i], pieces.sid[i])};
    }
  }
  segmented_scan(items, storage.scan);
  const int64_t tile_end = tile_start + n_valid;
  const bool first_whole = whole_in(a.offsets, pieces.first, tile_start, tile_end);
  const bool last_whole = whole_in(a.offsets, pieces.last, tile_start, tile_end);
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    if (!pieces.end[i]) continue;
    const int64_t s = pieces.sid[i];
    const bool is_first = s == pieces.first, is_last = s == pieces.last;
    const bool whole = (!is_first && !is_last) || (is_first && first_whole) ||
                       (is_last && last_whole);
    if (whole) finalize_values<Traits>(a, s, items[i].values);
    if (is_first) store_record(records, 2 * t, s, items[i].values, whole);
    if (is_last) store_record(records, 2 * t + 1, s, is_first ? Values{} : items[i].values,
                              whole);
  }
  int64_t lo = 0, hi = 0;
  owned_segments(a.tile_last, t, a.num_tiles, a.num_segments, lo, hi);
  if (pieces.repeated || lo < pieces.first || hi > pieces.last) {
    for (int64_t s = lo + threadIdx.x; s <= hi; s += kThreads) {
      if (a.offsets[s] == a.offsets[s + 1]) finalize_values<Traits>(a, s, Values{});
    }
  }
  if constexpr (STEP) {
    __syncthreads();  // the counts of the whole segments are written: select them here
    select_in_tile<Traits>(bits, live, pieces, tile_start, n_valid, a.offsets,
                           KeepCounts{a.count, a.prune}, a.out, storage.select);
    __shared__ uint32_t first_bins[kBins];
    add_first_histograms<Traits>(a.offsets, a.block_max, a.first_histograms, bits, live, pieces,
                                 first_bins);
  }
}

// A chunk of kTile records (sorted by segment): the segments strictly between its first and
// last are complete and written out; the first and the last are carried to the next level as a
// record each. TOP: one chunk is left, every segment is complete.
template <class Traits, class Values, bool TOP>
__global__ __launch_bounds__(kThreads) void combine_kernel(SumsArgs a, Records in,
                                                           int64_t num_records, Records next) {
  __shared__ typename cub::BlockScan<Segmented<Values>, kThreads>::TempStorage scan;
  const int64_t c = blockIdx.x;
  const int64_t r0 = c * kTile;
  const int64_t r_end = r0 + kTile < num_records ? r0 + kTile : num_records;
  const int64_t k_first = in.key[r0], k_last = in.key[r_end - 1];
  Segmented<Values> items[kItems];
  int64_t key[kItems];
  bool end[kItems];
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int64_t index = r0 + threadIdx.x * kItems + i;
    const bool valid = index < r_end;
    key[i] = valid ? in.key[index] : -1;
    Values v{};
    if (valid) load_record(in, index, v);
    const bool start = valid && (index == r0 || in.key[index - 1] != key[i]);
    end[i] = valid && (index == r_end - 1 || in.key[index + 1] != key[i]);
    items[i] = {start ? 1 : 0, v};
  }
  segmented_scan(items, scan);
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    if (!end[i]) continue;
    const Values& total = items[i].values;
    const bool carried = !TOP && (key[i] == k_first || key[i] == k_last);
    if (!carried && total.count >= 0) finalize_values<Traits>(a, key[i], total);
    if (TOP) continue;
    const bool finished = total.count < 0;
    if (key[i] == k_first) store_record(next, 2 * c, key[i], total, finished);
    if (key[i] == k_last) {
      store_record(next, 2 * c + 1, key[i], k_first == k_last ? Values{} : total, finished);
    }
  }
}

}  // namespace sap_kernels::cuda
