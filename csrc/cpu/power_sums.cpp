// Segmented power sums on the CPU: one read of the buffer, tiles over all cores.
//
// Each piece of a segment is summed by the octet kernel (octets.h) or chunk by chunk
// (chunked_sums.h). Two modes:
// - unscaled (float32 / float16 / bfloat16, q <= 6, fast-path or small exponents): every
//   |w|^q of such a float fits a double with room to spare (2^(128 q) * 2^40 < 2^1023 and
//   (2^-149)^p is normal), so the powers are summed in double as they are; a non-finite sum
//   reveals a NaN / inf entry.
// - scaled (float64, q > 6, or generic exponents in float32 arithmetic): an integer max over
//   the magnitude bits gives the chunk's largest |w| (and the NaN / inf check); the sums are
//   kept in units of 2^e, e the segment's running exponent, rescaled when a chunk brings a
//   larger one, as online softmax does.
// Precision per term: ~1e-13 relative for float64 parameters and the exponents 1, 2, 3, 4;
// on 16/32-bit parameters 0.5 and 1.5 use the float32 square root (octets.h) and generic
// exponents float32 tables (AVX-512: power_tables.h) or log2 / exp2 (powers_f32.h), ~1e-7.
// Sums are always accumulated in double.
// This file is compiled once per instruction set (see isa_dispatch.cpp).
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "accumulator.h"
#include "chunked_sums.h"
#include "element.h"
#include "generic_batch.h"
#include "isa_kernels.h"
#include "octets.h"
#include "octets_avx512.h"
#include "power_tables.h"
#include "powers.h"
#include "powers_f32.h"
#include "pqi_value.h"
#include "tiles.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {
namespace {

// Inlined: a call with the accumulator on the stack costs a short segment ~10% more.
__attribute__((always_inline)) inline void write_segment(const Accumulator& acc, int64_t segment,
                                                         const PqiRule& rule,
                                                         const PowerSumsOutput& out) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double sum_p = acc.nonfinite > 0 ? nan : acc.sum_p;
  const double sum_q = acc.nonfinite > 0 ? nan : acc.sum_q;
  if (out.count) out.count[segment] = acc.count;
  if (out.scale) out.scale[segment] = acc.has_scale ? power_of_two(acc.exponent) : 0.0;
  if (out.sum_p) out.sum_p[segment] = sum_p;
  if (out.sum_q) out.sum_q[segment] = sum_q;
  if (out.pqi) out.pqi[segment] = rule(sum_p, sum_q, acc.count);
}

// The PQI of a tile's whole segments, computed a vector of them at a time (pqi_value.h) once
// kSize are gathered or the tile is done: the divisions, roots or log2 / exp2 of one segment
// would otherwise sit on the path from one short segment to the next (pqi_value.h gives the
// same bits either way).
class PqiBatch {
 public:
  static constexpr int kSize = 64;

  PqiBatch(const PqiRule& rule, double* pqi) : rule_(rule), pqi_(pqi) {}

  // Inlined: as a call it took the accumulator through the stack, and a vzeroupper, once a
  // segment.
  __attribute__((always_inline)) void add(const Accumulator& acc, int64_t segment) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    segment_[size_] = segment;
    sum_p_[size_] = acc.nonfinite > 0 ? nan : acc.sum_p;
    sum_q_[size_] = acc.nonfinite > 0 ? nan : acc.sum_q;
    count_[size_] = static_cast<double>(acc.count);
    if (++size_ == kSize) flush();
  }

  // Out of line: once in kSize segments, and it keeps the inlined add small.
  __attribute__((noinline)) void flush() {
    for (int i = size_; i % kPqiLanes != 0; ++i) {  // padding lanes, never written out
      sum_p_[i] = sum_q_[i] = 1.0;
      count_[i] = 2.0;
    }
    PqiMask finite = ~PqiMask{};
    for (int i = 0; i < size_; i += kPqiLanes) {
      PqiVector sum_p, sum_q, count;
      __builtin_memcpy(&sum_p, sum_p_ + i, sizeof(sum_p));
      __builtin_memcpy(&sum_q, sum_q_ + i, sizeof(sum_q));
      __builtin_memcpy(&count, count_ + i, sizeof(count));
      // NaN compares false; two finite sums can only add up to inf
      finite &= sum_p + sum_q <= std::numeric_limits<double>::max();
      const PqiVector values = rule_(sum_p, sum_q, count);
      for (int lane = 0; lane < kPqiLanes && i + lane < size_; ++lane) {
        pqi_[segment_[i + lane]] = values[lane];
      }
    }
    for (int lane = 0; lane < kPqiLanes; ++lane) not_finite_ |= finite[lane] == 0;
    size_ = 0;
  }

  // Whether a segment flushed since the last call had sums that are not finite.
  bool take_not_finite() {
    const bool found = not_finite_;
    not_finite_ = false;
    return found;
  }

 private:
  const PqiRule& rule_;
  double* pqi_;
  int size_ = 0;
  bool not_finite_ = false;
  int64_t segment_[kSize];
  double sum_p_[kSize], sum_q_[kSize], count_[kSize];
};

// A piece of a segment that crosses a tile boundary, kept until the tiles are done.
struct BoundaryPiece {
  int64_t segment = -1;
  Accumulator acc;
};

// Sums a tile's whole segments again, counting their NaN / inf entries, and overwrites their
// outputs: taken only for a tile where such an entry made a whole segment's sums not finite.
template <class Pieces>
int64_t resum_whole_segments(const SegmentedBuffer& input, const Exponents& ex,
                             const PqiRule& rule, const PowerSumsOutput& out,
                             const Pieces& sum_piece, int64_t tile) {
  int64_t nonfinite = 0;
  for_each_piece_whole_apart(
      input.offsets, input.num_segments, input.numel, tile, [](const Piece&) {},
      [&](int64_t segment, int64_t begin, int64_t end) {
        const Accumulator acc = sum_piece(input, Piece{segment, begin, end, false, false}, ex);
        nonfinite += acc.nonfinite;
        write_segment(acc, segment, rule, out);
      });
  return nonfinite;
}

// A tile's whole segments summed one at a time by sum_piece.sums(), each handed to finish
// at once.
template <class Pieces>
struct OneByOne {
  OneByOne(const Pieces& pieces, const Exponents&) : pieces(pieces) {}

  template <class Finish>
  __attribute__((always_inline)) void add(const SegmentedBuffer& input, int64_t segment,
                                          int64_t begin, int64_t end, const Exponents& ex,
                                          Finish&& finish) {
    finish(segment, pieces.sums(input, Piece{segment, begin, end, false, false}, ex));
  }

  template <class Finish>
  void flush(Finish&&) {}

  const Pieces& pieces;
};

// Whole segments with both exponents generic in float32: a short one of the same length as the
// segment before it through a GenericBatch (runs of one length, as in rows; lengths that vary
// made its per-segment loops mispredict, slower than one by one), the others one by one.
template <class E>
struct BatchedGeneric {
  BatchedGeneric(const ChunkedPieces<E>& pieces, const Exponents& ex) : pieces(pieces), batch(ex) {}

  template <class Finish>
  __attribute__((always_inline)) void add(const SegmentedBuffer& input, int64_t segment,
                                          int64_t begin, int64_t end, const Exponents& ex,
                                          Finish&& finish) {
    const int64_t n = end - begin;
    const bool same_length = n == last_length;
    last_length = n;
    if (!same_length || !GenericBatch<E>::takes(n)) {
      return finish(segment, pieces.sums(input, Piece{segment, begin, end, false, false}, ex));
    }
    const auto* params = static_cast<const typename E::Bits*>(input.params) + begin;
    const uint8_t* mask = input.mask == nullptr ? nullptr : input.mask + begin;
    batch.add(params, mask, n, input.numel - begin, segment, finish);
  }

  template <class Finish>
  void flush(Finish&& finish) {
    batch.flush(finish);
  }

  const ChunkedPieces<E>& pieces;
  GenericBatch<E> batch;
  int64_t last_length = -1;
};

// Whole segments go through WholeSums (sum_piece.sums() one by one, or a batch), whose sums
// need not count NaN / inf entries: a segment with one has sums that are not finite, and only
// then is its tile summed again with the count (resum_whole_segments). That keeps a branch
// and the count out of the path of every short segment.
template <class E, class Pieces, class WholeSums = OneByOne<Pieces>>
int64_t power_sums_by_tiles(const SegmentedBuffer& input, const Exponents& ex,
                            const PowerSumsOutput& out, const Pieces& sum_piece) {
  const int64_t tiles = tile_count(input.numel);
  // A tile holds at most two crossing pieces: its first segment's and its last one's.
  std::vector<BoundaryPiece> head(tiles), tail(tiles);
  const PqiRule rule(ex.p, ex.q);
  PowerSumsOutput whole = out;  // whole segments get their PQI from a batch
  whole.pqi = nullptr;
  // Only the count and the PQI (segmented_pqi, sap_step): a store and the batch a segment.
  const bool counts_only = !out.scale && !out.sum_p && !out.sum_q;
  int64_t nonfinite = 0;
  const int threads = threads_for(input.numel);
  const int64_t grab = tiles_per_grab(tiles, threads);
#pragma omp parallel num_threads(threads) reduction(+ : nonfinite)
  {
    PqiBatch batch(rule, out.pqi);
    WholeSums whole_sums(sum_piece, ex);
    // Tiles handed out a few at a time (tiles_per_grab): a core slowed by other work (a shared
    // machine, a hybrid CPU's efficiency cores) takes fewer, instead of the others waiting on
    // its half. Each tile's outputs do not depend on the thread that reads it.
#pragma omp for schedule(dynamic, grab)
    for (int64_t tile = 0; tile < tiles; ++tile) {
      double sums_total = 0.0;
      auto crossing = [&](const Piece& pc) {
        const Accumulator acc = sum_piece(input, pc, ex);
        nonfinite += acc.nonfinite;
        (pc.starts_before_tile ? head : tail)[tile] = BoundaryPiece{pc.segment, acc};
      };
      auto finish_whole = [&](int64_t segment, const Accumulator& acc) {
        if (!counts_only) {
          write_segment(acc, segment, rule, whole);
        } else if (out.count) {
          out.count[segment] = acc.count;
        }
        if (out.pqi) {
          batch.add(acc, segment);  // the batch checks the sums (NaN where nonfinite > 0)
        } else {
          // One add a segment, no compare: the total is NaN or inf if a segment's sums are (or,
          // harmlessly, if finite sums overflow it: the tile is then summed again for nothing).
          sums_total += acc.nonfinite > 0 ? std::numeric_limits<double>::quiet_NaN()
                                          : acc.sum_p + acc.sum_q;
        }
      };
      auto whole_segment = [&](int64_t segment, int64_t begin, int64_t end) {
        whole_sums.add(input, segment, begin, end, ex, finish_whole);
      };
      const SegmentRange whole_range = for_each_piece_whole_apart(
          input.offsets, input.num_segments, input.numel, tile, crossing, whole_segment);
      whole_sums.flush(finish_whole);
      if (out.pqi) batch.flush();
      // NaN compares false
      const bool not_finite = out.pqi ? batch.take_not_finite()
                                      : !(sums_total <= std::numeric_limits<double>::max());
      if (not_finite) [[unlikely]] {
        nonfinite += resum_whole_segments(input, ex, rule, out, sum_piece, tile);
      }
      const WholeSegmentsHook& hook = out.after_whole_segments;
      if (hook.call != nullptr && whole_range.first < whole_range.end) {
        hook.call(hook.context, whole_range.first, whole_range.end);
      }
    }
  }
  // Merge the crossing pieces in flat order: pieces of one segment are consecutive.
  BoundaryPiece open;
  auto take = [&](const BoundaryPiece& next) {
    if (next.segment < 0) return;
    if (next.segment == open.segment) {
      open.acc.merge(next.acc, ex);
      return;
    }
    if (open.segment >= 0) write_segment(open.acc, open.segment, rule, out);
    open = next;
  };
  for (int64_t tile = 0; tile < tiles; ++tile) {
    take(head[tile]);
    take(tail[tile]);
  }
  if (open.segment >= 0) write_segment(open.acc, open.segment, rule, out);
  return nonfinite;
}

// Sums one whole piece eight entries a step, or sixteen (kSixteen: the AVX-512 copy, where
// that pays; unscaled mode, fast-path exponents kP < kQ). kMasked: whether the buffer has a
// mask, fixed for the call so that the loop over segments holds one kernel, not both.
template <class E, PowerKind kP, PowerKind kQ, bool kMasked, bool kSixteen = false>
struct OctetPieces {
  // The sums and count; NaN / inf entries make the sums not finite but are not counted.
  __attribute__((always_inline)) Accumulator sums(const SegmentedBuffer& input,
                                                  const Piece& piece, const Exponents&) const {
    const auto* params = static_cast<const typename E::Bits*>(input.params) + piece.begin;
    const uint8_t* mask = kMasked ? input.mask + piece.begin : nullptr;
    const int64_t n = piece.end - piece.begin;
    Accumulator acc;
    acc.count = kMasked ? count_live(mask, n) : n;
    const OctetSpan<E> span{params, mask, n, input.numel - piece.begin};
    PowerPair sums;
#if defined(SAP_KERNELS_SIXTEEN_LANE_SUMS)
    if constexpr (kSixteen) {
      sums = sum_powers_by_sixteens<E, kP, kQ, kMasked>(span);
    } else
#endif
    {
      sums = sum_powers_by_octets<E, kP, kQ, kMasked>(span);
    }
    acc.sum_p = sums.p;
    acc.sum_q = sums.q;
    acc.has_scale = sums.p > 0.0;
    return acc;
  }

  Accumulator operator()(const SegmentedBuffer& input, const Piece& piece,
                         const Exponents& ex) const {
    const auto* params = static_cast<const typename E::Bits*>(input.params) + piece.begin;
    const uint8_t* mask = kMasked ? input.mask + piece.begin : nullptr;
    return finish_unscaled<E>(params, mask, piece.end - piece.begin, sums(input, piece, ex));
  }
};

// The tile loop with the octet kernel of the exponent pair chosen at compile time, so that
// no per-segment dispatch or call remains.
template <class E, PowerKind kP>
int64_t octets_for_q(const SegmentedBuffer& input, const Exponents& ex,
                     const PowerSumsOutput& out) {
  using K = PowerKind;
  auto run = [&](auto kind_q) -> int64_t {
    constexpr K kQ = decltype(kind_q)::value;
    if constexpr (kP < kQ) {  // the order of PowerKind is the order of the exponents
#if defined(SAP_KERNELS_SIXTEEN_LANE_SUMS)
      if (sixteen_lanes_pay()) {
        return input.mask == nullptr
                   ? power_sums_by_tiles<E>(input, ex, out, OctetPieces<E, kP, kQ, false, true>{})
                   : power_sums_by_tiles<E>(input, ex, out, OctetPieces<E, kP, kQ, true, true>{});
      }
#endif
      return input.mask == nullptr
                 ? power_sums_by_tiles<E>(input, ex, out, OctetPieces<E, kP, kQ, false>{})
                 : power_sums_by_tiles<E>(input, ex, out, OctetPieces<E, kP, kQ, true>{});
    }
    return power_sums_by_tiles<E>(input, ex, out, ChunkedPieces<E>{});
  };
  switch (ex.kind_q) {
    case K::kOne: return run(std::integral_constant<K, K::kOne>{});
    case K::kOneAndHalf: return run(std::integral_constant<K, K::kOneAndHalf>{});
    case K::kTwo: return run(std::integral_constant<K, K::kTwo>{});
    case K::kThree: return run(std::integral_constant<K, K::kThree>{});
    case K::kFour: return run(std::integral_constant<K, K::kFour>{});
    default: return power_sums_by_tiles<E>(input, ex, out, ChunkedPieces<E>{});
  }
}

template <class E>
int64_t power_sums_for(const SegmentedBuffer& input, const Exponents& ex,
                       const PowerSumsOutput& out) {
  using K = PowerKind;
  if constexpr (!std::is_same_v<E, Float64Element>) {
    if (ex.by_octets) {
      switch (ex.kind_p) {
        case K::kHalf: return octets_for_q<E, K::kHalf>(input, ex, out);
        case K::kOne: return octets_for_q<E, K::kOne>(input, ex, out);
        case K::kOneAndHalf: return octets_for_q<E, K::kOneAndHalf>(input, ex, out);
        case K::kTwo: return octets_for_q<E, K::kTwo>(input, ex, out);
        case K::kThree: return octets_for_q<E, K::kThree>(input, ex, out);
        default: break;
      }
    }
  }
  if constexpr (!std::is_same_v<E, Float64Element>) {
    if (ex.generic_in_float32 && ex.kind_p == K::kGeneric && ex.kind_q == K::kGeneric) {
      return power_sums_by_tiles<E, ChunkedPieces<E>, BatchedGeneric<E>>(input, ex, out,
                                                                        ChunkedPieces<E>{});
    }
  }
  return power_sums_by_tiles<E>(input, ex, out, ChunkedPieces<E>{});
}

}  // namespace

int64_t power_sums(const SegmentedBuffer& input, double p, double q, const PowerSumsOutput& out) {
  const PowerKind kind_p = classify_exponent(p), kind_q = classify_exponent(q);
  const bool any_generic = kind_p == PowerKind::kGeneric || kind_q == PowerKind::kGeneric;
#if defined(SAP_KERNELS_POWER_TABLES)
  const bool float32_exponents = p >= kTablesMinExponent && q <= kTablesMaxExponent;
#else
  const bool float32_exponents = p >= kGenericFloat32MinP && q <= kGenericFloat32MaxQ;
#endif
  const bool generic_in_float32 =
      input.dtype != ScalarType::kFloat64 && any_generic && float32_exponents;
  const bool scaled = input.dtype == ScalarType::kFloat64 || q > 6.0 || generic_in_float32;
  const bool by_octets = !scaled && !any_generic;
  Exponents ex{p, q, kind_p, kind_q, scaled, generic_in_float32, by_octets};
#if defined(SAP_KERNELS_POWER_TABLES)
  std::optional<PowerTables> tables;
  if (generic_in_float32) ex.tables = &tables.emplace(p, q);
#endif
  const PqiRule rule(p, q);
  // Empty segments are never visited by a tile.
#pragma omp parallel for schedule(static) num_threads(threads_for(input.num_segments))
  for (int64_t s = 0; s < input.num_segments; ++s) {
    if (input.offsets[s] == input.offsets[s + 1]) write_segment(Accumulator{}, s, rule, out);
  }
  switch (input.dtype) {
    case ScalarType::kFloat32: return power_sums_for<Float32Element>(input, ex, out);
    case ScalarType::kFloat64: return power_sums_for<Float64Element>(input, ex, out);
    case ScalarType::kFloat16: return power_sums_for<Float16Element>(input, ex, out);
    case ScalarType::kBFloat16: return power_sums_for<BFloat16Element>(input, ex, out);
  }
  return 0;
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
