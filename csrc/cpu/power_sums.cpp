// Segmented power sums on the CPU: one read of the buffer, tiles over all cores.
//
// Each piece of a segment is processed in chunks that stay in L1. Two modes:
// - unscaled (float32 / float16 / bfloat16, q <= 6, fast-path or small exponents): every
//   |w|^q of such a float fits a double with room to spare (2^(128 q) * 2^40 < 2^1023 and
//   (2^-149)^p is normal), so the powers are summed in double as they are; a non-finite sum
//   reveals a NaN / inf entry.
// - scaled (float64, q > 6, or generic exponents in float32 arithmetic): an integer max over
//   the magnitude bits gives the chunk's largest |w| (and the NaN / inf check); the sums are
//   kept in units of 2^e, e the segment's running exponent, rescaled when a chunk brings a
//   larger one, as online softmax does.
// Precision: fast-path exponents and float64 parameters ~1e-13 relative per term; generic
// exponents (not 0.5, 1, 1.5, 2, 3, 4) on 16/32-bit parameters ~1e-7 (powers_f32.h).
// Sums are always accumulated in double.
// This file is compiled once per instruction set (see power_sums_dispatch.cpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "element.h"
#include "power_sums_isa.h"
#include "powers.h"
#include "powers_f32.h"
#include "octets.h"
#include "tiles.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {
namespace {

constexpr int64_t kChunk = 2048;

struct Exponents {
  double p;
  double q;
  PowerKind kind_p;
  PowerKind kind_q;
  bool scaled;
  bool generic_in_float32;  // generic exponents in float32 arithmetic (powers_f32.h)
  bool by_octets;           // unscaled fast-path exponents on 16/32-bit entries (octets.h)
};

// Power sums of part of one segment, in units of 2^exponent.
struct Accumulator {
  int exponent = 0;
  bool has_scale = false;  // false until a non-zero live entry is seen (scaled mode)
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
typename E::Bits max_live_abs_bits(const typename E::Bits* params, const uint8_t* mask,
                                   int64_t n) {
  using Bits = typename E::Bits;
  Bits max_bits = 0;
#pragma omp simd reduction(max : max_bits)
  for (int64_t i = 0; i < n; ++i) {
    const Bits bits = live_abs_bits<E>(params, mask, i);
    max_bits = bits > max_bits ? bits : max_bits;
  }
  return max_bits;
}

// The multiplier that brings a chunk's entries below 1 in scaled mode: 2^-e, in two factors
// since 2^-e overflows a double for a float64 segment of subnormals (e < -1022).
struct Scaling {
  double high = 1.0;
  double low = 1.0;
  static Scaling for_exponent(int exponent) {
    const int half = -exponent / 2;
    return Scaling{std::ldexp(1.0, half), std::ldexp(1.0, -exponent - half)};
  }
};

template <class E, bool kScaled>
double scaled_magnitude(const typename E::Bits* params, const uint8_t* mask, int64_t i,
                        const Scaling& scaling) {
  const double magnitude = E::to_double(live_abs_bits<E>(params, mask, i));
  return kScaled ? magnitude * scaling.high * scaling.low : magnitude;
}

// Σ x^p over live entries, x = |w| (scaled by `scaling` in scaled mode), fast-path kinds.
template <class E, bool kScaled, PowerKind kKind>
double sum_power(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                 const Scaling& scaling) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    sum += power<kKind>(scaled_magnitude<E, kScaled>(params, mask, i, scaling));
  }
  return sum;
}

template <class E, bool kScaled>
double sum_power(PowerKind kind, const typename E::Bits* params, const uint8_t* mask, int64_t n,
                 const Scaling& scaling) {
  switch (kind) {
    case PowerKind::kHalf:
      return sum_power<E, kScaled, PowerKind::kHalf>(params, mask, n, scaling);
    case PowerKind::kOne:
      return sum_power<E, kScaled, PowerKind::kOne>(params, mask, n, scaling);
    case PowerKind::kOneAndHalf:
      return sum_power<E, kScaled, PowerKind::kOneAndHalf>(params, mask, n, scaling);
    case PowerKind::kTwo:
      return sum_power<E, kScaled, PowerKind::kTwo>(params, mask, n, scaling);
    case PowerKind::kThree:
      return sum_power<E, kScaled, PowerKind::kThree>(params, mask, n, scaling);
    case PowerKind::kFour:
      return sum_power<E, kScaled, PowerKind::kFour>(params, mask, n, scaling);
    case PowerKind::kGeneric:
      break;
  }
  return 0.0;
}

// The generic exponents of a chunk in float32 arithmetic; x = |w| / scale is in [0, 1].
template <class E>
void add_generic_chunk_f32(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                           const Scaling& scaling, const Exponents& ex, Accumulator& acc) {
  alignas(64) float magnitudes[kChunk];
  const int64_t padded = (n + 31) / 32 * 32;
  for (int64_t i = 0; i < n; ++i) {
    magnitudes[i] = static_cast<float>(scaled_magnitude<E, true>(params, mask, i, scaling));
  }
  for (int64_t i = n; i < padded; ++i) magnitudes[i] = 0.0f;
  add_generic_powers_f32(magnitudes, padded, static_cast<float>(ex.p), static_cast<float>(ex.q),
                         ex.kind_p == PowerKind::kGeneric, ex.kind_q == PowerKind::kGeneric,
                         acc.sum_p, acc.sum_q);
}

// Adds the chunk's power sums to acc.
template <class E, bool kScaled>
void add_chunk_powers(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                      const Scaling& scaling, const Exponents& ex, Accumulator& acc) {
  const bool generic_p = ex.kind_p == PowerKind::kGeneric;
  const bool generic_q = ex.kind_q == PowerKind::kGeneric;
  if (!generic_p) acc.sum_p += sum_power<E, kScaled>(ex.kind_p, params, mask, n, scaling);
  if (!generic_q) acc.sum_q += sum_power<E, kScaled>(ex.kind_q, params, mask, n, scaling);
  if (!generic_p && !generic_q) return;
  if (ex.generic_in_float32) {
    add_generic_chunk_f32<E>(params, mask, n, scaling, ex, acc);
    return;
  }
  alignas(64) double magnitudes[kChunk];
  const int64_t padded = (n + 15) / 16 * 16;
  for (int64_t i = 0; i < n; ++i) {
    magnitudes[i] = scaled_magnitude<E, kScaled>(params, mask, i, scaling);
  }
  for (int64_t i = n; i < padded; ++i) magnitudes[i] = 0.0;
  add_generic_powers(magnitudes, padded, ex.p, ex.q, generic_p, generic_q, acc.sum_p, acc.sum_q);
}

template <class E>
void add_scaled_chunk(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                      const Exponents& ex, Accumulator& acc) {
  const auto max_bits = max_live_abs_bits<E>(params, mask, n);
  if (max_bits >= E::kInfBits) {
    acc.nonfinite += count_nonfinite<E>(params, mask, n);
    return;
  }
  if (max_bits == 0) return;  // all zero or dead: adds nothing to the sums
  int chunk_exponent = 0;
  std::frexp(E::to_double(max_bits), &chunk_exponent);  // max = f * 2^e, f in [0.5, 1)
  // 2^1024 overflows: for the largest doubles take 2^1023, so entries scale to below 2.
  acc.rescale_to(std::min(chunk_exponent, 1023), ex);
  add_chunk_powers<E, true>(params, mask, n, Scaling::for_exponent(acc.exponent), ex, acc);
}

// Unscaled sums: finite entries cannot make them overflow, so a non-finite sum means a NaN /
// inf entry; the scale is 2^0 once a non-zero entry was seen.
template <class E>
Accumulator finish_unscaled(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                            Accumulator acc) {
  if (!std::isfinite(acc.sum_p) || !std::isfinite(acc.sum_q)) {
    acc.nonfinite = count_nonfinite<E>(params, mask, n);
  }
  acc.has_scale = acc.sum_p > 0.0;
  return acc;
}

template <class E, PowerKind kP>
void sum_octets_for_q(PowerKind kind_q, const OctetSpan<E>& span, Accumulator& acc) {
  using K = PowerKind;
  double& sum_p = acc.sum_p;
  double& sum_q = acc.sum_q;
  switch (kind_q) {
    case K::kHalf: return sum_powers_by_octets<E, kP, K::kHalf>(span, sum_p, sum_q);
    case K::kOne: return sum_powers_by_octets<E, kP, K::kOne>(span, sum_p, sum_q);
    case K::kOneAndHalf: return sum_powers_by_octets<E, kP, K::kOneAndHalf>(span, sum_p, sum_q);
    case K::kTwo: return sum_powers_by_octets<E, kP, K::kTwo>(span, sum_p, sum_q);
    case K::kThree: return sum_powers_by_octets<E, kP, K::kThree>(span, sum_p, sum_q);
    case K::kFour: return sum_powers_by_octets<E, kP, K::kFour>(span, sum_p, sum_q);
    case K::kGeneric: return;
  }
}

// The unscaled power sums of a whole piece with fast-path exponents, eight entries a step.
template <class E>
void sum_octets(const Exponents& ex, const OctetSpan<E>& span, Accumulator& acc) {
  using K = PowerKind;
  switch (ex.kind_p) {
    case K::kHalf: return sum_octets_for_q<E, K::kHalf>(ex.kind_q, span, acc);
    case K::kOne: return sum_octets_for_q<E, K::kOne>(ex.kind_q, span, acc);
    case K::kOneAndHalf: return sum_octets_for_q<E, K::kOneAndHalf>(ex.kind_q, span, acc);
    case K::kTwo: return sum_octets_for_q<E, K::kTwo>(ex.kind_q, span, acc);
    case K::kThree: return sum_octets_for_q<E, K::kThree>(ex.kind_q, span, acc);
    case K::kFour: return sum_octets_for_q<E, K::kFour>(ex.kind_q, span, acc);
    case K::kGeneric: return;
  }
}

template <class E>
Accumulator accumulate_piece(const SegmentedBuffer& input, const Piece& piece,
                             const Exponents& ex) {
  const auto* params = static_cast<const typename E::Bits*>(input.params);
  Accumulator acc;
  if constexpr (!std::is_same_v<E, Float64Element>) {
    if (ex.by_octets) {
      const uint8_t* mask = input.mask == nullptr ? nullptr : input.mask + piece.begin;
      const int64_t n = piece.end - piece.begin;
      acc.count = count_live(mask, n);
      const OctetSpan<E> span{params + piece.begin, mask, n, input.numel - piece.begin};
      sum_octets<E>(ex, span, acc);
      return finish_unscaled<E>(params + piece.begin, mask, n, acc);
    }
  }
  for (int64_t begin = piece.begin; begin < piece.end; begin += kChunk) {
    const int64_t n = std::min(kChunk, piece.end - begin);
    const uint8_t* mask = input.mask == nullptr ? nullptr : input.mask + begin;
    acc.count += count_live(mask, n);
    if (ex.scaled) {
      add_scaled_chunk<E>(params + begin, mask, n, ex, acc);
    } else {
      add_chunk_powers<E, false>(params + begin, mask, n, Scaling{}, ex, acc);
    }
  }
  if (ex.scaled) return acc;
  const uint8_t* mask = input.mask == nullptr ? nullptr : input.mask + piece.begin;
  return finish_unscaled<E>(params + piece.begin, mask, piece.end - piece.begin, acc);
}

// 2^exponent for exponents of a normal double's range or a little below (subnormal scales come
// only from float64 segments of subnormals, rare enough for ldexp).
double power_of_two(int exponent) {
  if (exponent < -1022 || exponent > 1023) return std::ldexp(1.0, exponent);
  return bit_cast<double>(static_cast<uint64_t>(exponent + 1023) << 52);
}

void write_segment(const Accumulator& acc, int64_t segment, const PowerSumsOutput& out) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out.count[segment] = acc.count;
  out.scale[segment] = acc.has_scale ? power_of_two(acc.exponent) : 0.0;
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

int64_t power_sums(const SegmentedBuffer& input, double p, double q, const PowerSumsOutput& out) {
  const PowerKind kind_p = classify_exponent(p), kind_q = classify_exponent(q);
  const bool any_generic = kind_p == PowerKind::kGeneric || kind_q == PowerKind::kGeneric;
  const bool generic_in_float32 = input.dtype != ScalarType::kFloat64 && any_generic &&
                                  p >= kGenericFloat32MinP && q <= kGenericFloat32MaxQ;
  const bool scaled = input.dtype == ScalarType::kFloat64 || q > 6.0 || generic_in_float32;
  const bool by_octets = !scaled && !any_generic;
  const Exponents ex{p, q, kind_p, kind_q, scaled, generic_in_float32, by_octets};
  // Empty segments are never visited by a tile.
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < input.num_segments; ++s) write_segment(Accumulator{}, s, out);
  switch (input.dtype) {
    case ScalarType::kFloat32: return power_sums_by_tiles<Float32Element>(input, ex, out);
    case ScalarType::kFloat64: return power_sums_by_tiles<Float64Element>(input, ex, out);
    case ScalarType::kFloat16: return power_sums_by_tiles<Float16Element>(input, ex, out);
    case ScalarType::kBFloat16: return power_sums_by_tiles<BFloat16Element>(input, ex, out);
  }
  return 0;
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
