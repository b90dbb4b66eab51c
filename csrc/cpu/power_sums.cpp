// Segmented power sums on the CPU: one read of the buffer, tiles over all cores.
//
// Each piece of a segment is processed in chunks small enough for L1: an integer max over the
// magnitude bits (also the NaN / inf check), then |w| * 2^-e into a double buffer, then the
// power sums. e is the segment's running exponent: when a chunk brings a larger magnitude the
// sums so far are rescaled, as online softmax does, so no finite input overflows.
#include "sap_kernels/power_sums.h"

#include <cmath>
#include <limits>
#include <vector>

#include "element.h"
#include "powers.h"
#include "tiles.h"

namespace sap_kernels::cpu {
namespace {

constexpr int64_t kChunk = 512;

struct Exponents {
  double p;
  double q;
  PowerKind kind_p;
  PowerKind kind_q;
};

// Power sums of part of one segment, in units of 2^exponent.
struct Accumulator {
  int exponent = 0;
  bool has_scale = false;  // false until a non-zero live entry is seen
  double sum_p = 0.0;
  double sum_q = 0.0;
  int64_t count = 0;
  int64_t nonfinite = 0;

  // Moves the sums to units of 2^new_exponent (new_exponent >= exponent).
  void rescale_to(int new_exponent, const Exponents& ex) {
    if (has_scale && new_exponent > exponent) {
      const double shift = static_cast<double>(exponent - new_exponent);
      sum_p *= std::exp2(ex.p * shift);
      sum_q *= std::exp2(ex.q * shift);
    }
    if (!has_scale || new_exponent > exponent) exponent = new_exponent;
    has_scale = true;
  }

  // Appends `later`, the accumulator of the entries that follow these in the segment.
  void merge(const Accumulator& later, const Exponents& ex) {
    count += later.count;
    nonfinite += later.nonfinite;
    if (!later.has_scale) return;
    Accumulator aligned = later;
    const int common = has_scale ? std::max(exponent, later.exponent) : later.exponent;
    rescale_to(common, ex);
    aligned.rescale_to(common, ex);
    sum_p += aligned.sum_p;
    sum_q += aligned.sum_q;
  }
};

template <class E>
int64_t count_nonfinite(const typename E::Bits* params, const uint8_t* mask, int64_t n) {
  int64_t found = 0;
  for (int64_t i = 0; i < n; ++i) found += live_abs_bits<E>(params, mask, i) >= E::kInfBits;
  return found;
}

int64_t count_live(const uint8_t* mask, int64_t n) {
  if (mask == nullptr) return n;
  int64_t live = 0;
#pragma omp simd reduction(+ : live)
  for (int64_t i = 0; i < n; ++i) live += mask[i] != 0;
  return live;
}

template <class E>
void accumulate_chunk(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                      const Exponents& ex, Accumulator& acc) {
  using Bits = typename E::Bits;
  acc.count += count_live(mask, n);
  Bits max_bits = 0;
#pragma omp simd reduction(max : max_bits)
  for (int64_t i = 0; i < n; ++i) {
    const Bits bits = live_abs_bits<E>(params, mask, i);
    max_bits = bits > max_bits ? bits : max_bits;
  }
  if (max_bits >= E::kInfBits) {
    acc.nonfinite += count_nonfinite<E>(params, mask, n);
    return;
  }
  if (max_bits == 0) return;  // all zero or dead: adds nothing to the sums
  int chunk_exponent = 0;
  std::frexp(E::to_double(max_bits), &chunk_exponent);  // max = f * 2^e, f in [0.5, 1)
  acc.rescale_to(chunk_exponent, ex);
  // 2^-e in two factors: a float64 segment of subnormals needs 2^1074, beyond double's range.
  const double factor_hi = std::ldexp(1.0, -acc.exponent / 2);
  const double factor_lo = std::ldexp(1.0, -acc.exponent - (-acc.exponent / 2));
  alignas(64) double scaled[kChunk];
  alignas(64) double log2_scaled[kChunk];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    scaled[i] = E::to_double(live_abs_bits<E>(params, mask, i)) * factor_hi * factor_lo;
  }
  if (ex.kind_p == PowerKind::kGeneric || ex.kind_q == PowerKind::kGeneric) {
    fill_log2(scaled, n, log2_scaled);
  }
  acc.sum_p += sum_power(ex.kind_p, ex.p, scaled, log2_scaled, n);
  acc.sum_q += sum_power(ex.kind_q, ex.q, scaled, log2_scaled, n);
}

template <class E>
Accumulator accumulate_piece(const SegmentedBuffer& input, const Piece& piece,
                             const Exponents& ex) {
  const auto* params = static_cast<const typename E::Bits*>(input.params);
  Accumulator acc;
  for (int64_t begin = piece.begin; begin < piece.end; begin += kChunk) {
    const int64_t n = std::min(kChunk, piece.end - begin);
    const uint8_t* mask = input.mask == nullptr ? nullptr : input.mask + begin;
    accumulate_chunk<E>(params + begin, mask, n, ex, acc);
  }
  return acc;
}

void write_segment(const Accumulator& acc, int64_t segment, const PowerSumsOutput& out) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out.count[segment] = acc.count;
  out.scale[segment] = acc.has_scale ? std::ldexp(1.0, acc.exponent) : 0.0;
  out.sum_p[segment] = acc.nonfinite > 0 ? nan : acc.sum_p;
  out.sum_q[segment] = acc.nonfinite > 0 ? nan : acc.sum_q;
}

// A piece of a segment that crosses a tile boundary, kept until the tiles are done.
struct BoundaryPiece {
  int64_t segment = -1;
  Accumulator acc;
};

template <class E>
int64_t power_sums_by_tiles(const SegmentedBuffer& input, const Exponents& ex,
                            const PowerSumsOutput& out) {
  const int64_t tiles = tile_count(input.numel);
  // A tile holds at most two crossing pieces: its first segment's and its last one's.
  std::vector<BoundaryPiece> head(tiles), tail(tiles);
  int64_t nonfinite = 0;
#pragma omp parallel for schedule(static) reduction(+ : nonfinite)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    for_each_piece(input.offsets, input.num_segments, input.numel, tile, [&](const Piece& pc) {
      const Accumulator acc = accumulate_piece<E>(input, pc, ex);
      nonfinite += acc.nonfinite;
      if (pc.whole()) {
        write_segment(acc, pc.segment, out);
      } else {
        (pc.starts_before_tile ? head : tail)[tile] = BoundaryPiece{pc.segment, acc};
      }
    });
  }
  // Merge the crossing pieces in flat order: pieces of one segment are consecutive.
  BoundaryPiece open;
  auto take = [&](const BoundaryPiece& next) {
    if (next.segment < 0) return;
    if (next.segment == open.segment) {
      open.acc.merge(next.acc, ex);
      return;
    }
    if (open.segment >= 0) write_segment(open.acc, open.segment, out);
    open = next;
  };
  for (int64_t tile = 0; tile < tiles; ++tile) {
    take(head[tile]);
    take(tail[tile]);
  }
  if (open.segment >= 0) write_segment(open.acc, open.segment, out);
  return nonfinite;
}

}  // namespace
}  // namespace sap_kernels::cpu

namespace sap_kernels {

int64_t segmented_power_sums_cpu(const SegmentedBuffer& input, double p, double q,
                                 const PowerSumsOutput& out) {
  using namespace cpu;
  const Exponents ex{p, q, classify_exponent(p), classify_exponent(q)};
  // Empty segments are never visited by a tile.
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < input.num_segments; ++s) {
    write_segment(Accumulator{}, s, out);
  }
  switch (input.dtype) {
    case ScalarType::kFloat32:
      return power_sums_by_tiles<Float32Element>(input, ex, out);
    case ScalarType::kFloat64:
      return power_sums_by_tiles<Float64Element>(input, ex, out);
    case ScalarType::kFloat16:
      return power_sums_by_tiles<Float16Element>(input, ex, out);
    case ScalarType::kBFloat16:
      return power_sums_by_tiles<BFloat16Element>(input, ex, out);
  }
  return 0;
}

}  // namespace sap_kernels
