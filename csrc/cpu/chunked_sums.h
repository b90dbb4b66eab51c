// The chunked path of the power sums: a piece is read in chunks of kChunk entries that stay
// in L1. Float64 entries, exponents beyond the fast paths, and the scaled mode go this way.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "accumulator.h"
#include "element.h"
#include "isa.h"
#include "octets.h"
#include "powers.h"
#include "powers_f32.h"
#include "sap_kernels/power_sums.h"
#include "tiles.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

constexpr int64_t kChunk = 2048;

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
// Compute-bound: the loop also prefetches the next chunk, so that its max
// (add_scaled_chunk) reads from cache instead of waiting on memory.
// The scale 2^-e comes as two factors, high * low (Scaling::for_exponent): both are within
// float's range (|e| <= 149), the product of the first stays below 2^75, and entries that end
// below 2^-126 are dropped anyway (powers_f32.h).
template <class E>
void add_generic_chunk_f32(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                           int64_t readable, float high, float low, const Exponents& ex,
                           Accumulator& acc) {
  alignas(64) float log2_magnitudes[kChunk];
  const int64_t padded = (n + kExp2Lanes - 1) / kExp2Lanes * kExp2Lanes;
  if constexpr (kExp2Lanes == 8) {
    // A partial last octet is zero-padded: the log2 of a dropped entry.
    for_each_octet<E>(params, mask, n, readable, [&](f32x8 magnitudes, int64_t i) {
      __builtin_prefetch(params + i + kChunk);
      const f32x8 log2_scaled = log2_x8(magnitudes * high * low);
      __builtin_memcpy(log2_magnitudes + i, &log2_scaled, sizeof(log2_scaled));
    });
  } else {
    // Wider vectors: the scaled magnitudes first (octets, as the dtype and mask are read),
    // zero-padded to whole vectors, then their log2 in place a whole vector at a time.
    for_each_octet<E>(params, mask, n, readable, [&](f32x8 magnitudes, int64_t i) {
      // Into L2 (prefetcht1): with the faster arithmetic, prefetches into L1 ran out of
      // fill buffers and stalled this loop.
      __builtin_prefetch(params + i + kChunk, 0, 2);
      const f32x8 scaled = magnitudes * high * low;
      __builtin_memcpy(log2_magnitudes + i, &scaled, sizeof(scaled));
    });
    for (int64_t i = (n + 7) / 8 * 8; i < padded; ++i) log2_magnitudes[i] = 0.0f;
    for (int64_t i = 0; i < padded; i += kExp2Lanes) {
      const Exp2Vector log2_scaled = log2_lanes(load_lanes(log2_magnitudes + i));
      __builtin_memcpy(log2_magnitudes + i, &log2_scaled, sizeof(log2_scaled));
    }
  }
  add_generic_powers_f32(log2_magnitudes, padded, static_cast<float>(ex.p),
                         static_cast<float>(ex.q), ex.kind_p == PowerKind::kGeneric,
                         ex.kind_q == PowerKind::kGeneric, acc.sum_p, acc.sum_q);
}

// Adds the chunk's power sums to acc.
template <class E, bool kScaled>
void add_chunk_powers(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                      int64_t readable, const Scaling& scaling, const Exponents& ex,
                      Accumulator& acc) {
  const bool generic_p = ex.kind_p == PowerKind::kGeneric;
  const bool generic_q = ex.kind_q == PowerKind::kGeneric;
  if (!generic_p) acc.sum_p += sum_power<E, kScaled>(ex.kind_p, params, mask, n, scaling);
  if (!generic_q) acc.sum_q += sum_power<E, kScaled>(ex.kind_q, params, mask, n, scaling);
  if (!generic_p && !generic_q) return;
  if constexpr (!std::is_same_v<E, Float64Element>) {  // float64 never takes this path
    if (ex.generic_in_float32) {
      add_generic_chunk_f32<E>(params, mask, n, readable, static_cast<float>(scaling.high),
                               static_cast<float>(scaling.low), ex, acc);
      return;
    }
  }
  alignas(64) double magnitudes[kChunk];
  const int64_t padded = (n + 15) / 16 * 16;
  for (int64_t i = 0; i < n; ++i) {
    magnitudes[i] = scaled_magnitude<E, kScaled>(params, mask, i, scaling);
  }
  for (int64_t i = n; i < padded; ++i) magnitudes[i] = 0.0;
  add_generic_powers(magnitudes, padded, ex.p, ex.q, generic_p, generic_q, acc.sum_p, acc.sum_q);
}

// The element type whose bits max_magnitude_bits returns: float32 for 16/32-bit entries
// (every float16 and bfloat16 value is exact in float32), float64 for float64.
template <class E>
using MaxElement =
    std::conditional_t<std::is_same_v<E, Float64Element>, Float64Element, Float32Element>;

// The bits of the largest live magnitude, as a MaxElement<E>; NaN / inf give bits >= its
// kInfBits. 16/32-bit entries go eight lanes a step with a lane-masked last octet, so a short
// segment costs no scalar loop.
template <class E>
uint64_t max_magnitude_bits(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                            int64_t readable) {
  if constexpr (std::is_same_v<E, Float64Element>) {
    return max_live_abs_bits<E>(params, mask, n);
  } else {
    u32x8 largest = {};
    for_each_octet<E>(params, mask, n, readable, [&](f32x8 magnitudes, int64_t) {
      const u32x8 bits = (u32x8)(magnitudes);
      largest = bits > largest ? bits : largest;
    });
    uint32_t result = 0;
    for (int lane = 0; lane < 8; ++lane) result = largest[lane] > result ? largest[lane] : result;
    return result;
  }
}

template <class E>
void add_scaled_chunk(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                      int64_t readable, const Exponents& ex, Accumulator& acc) {
  using M = MaxElement<E>;
  const auto max_bits =
      static_cast<typename M::Bits>(max_magnitude_bits<E>(params, mask, n, readable));
  if (max_bits >= M::kInfBits) {
    acc.nonfinite += count_nonfinite<E>(params, mask, n);
    return;
  }
  if (max_bits == 0) return;  // all zero or dead: adds nothing to the sums
  const int chunk_exponent = binary_exponent(M::to_double(max_bits));  // max = f 2^e
  // 2^1024 overflows: for the largest doubles take 2^1023, so entries scale to below 2.
  acc.rescale_to(std::min(chunk_exponent, 1023), ex);
  add_chunk_powers<E, true>(params, mask, n, readable, Scaling::for_exponent(acc.exponent), ex,
                            acc);
}

// 2^k as a float, for -126 <= k <= 127.
inline float float_power_of_two(int k) {
  return bit_cast<float>(static_cast<uint32_t>(k + 127) << 23);
}

// A whole piece of at most kChunk entries, both exponents generic in float32 (the segments of
// ragged and row layouts): add_scaled_chunk's arithmetic, bit for bit, with the exponent and
// the scale's factors taken from the float32 bits of the max and no calls in between, which
// cost a short segment more than its entries do.
template <class E>
Accumulator sum_short_generic_f32(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                                  int64_t readable, const Exponents& ex) {
  Accumulator acc;
  acc.count = count_live(mask, n);
  const auto max_bits = static_cast<uint32_t>(max_magnitude_bits<E>(params, mask, n, readable));
  if (max_bits >= Float32Element::kInfBits) {
    acc.nonfinite = count_nonfinite<E>(params, mask, n);
    return acc;
  }
  if (max_bits == 0) return acc;
  // max = f 2^e with f in [0.5, 1): from the exponent field, or (subnormal max) as before
  const int e = max_bits >= 0x00800000u ? static_cast<int>(max_bits >> 23) - 126
                                        : binary_exponent(Float32Element::to_double(max_bits));
  acc.exponent = e;
  acc.has_scale = true;
  const int half = -e / 2;  // as Scaling::for_exponent splits 2^-e
  add_generic_chunk_f32<E>(params, mask, n, readable, float_power_of_two(half),
                           float_power_of_two(-e - half), ex, acc);
  return acc;
}

// Sums one piece chunk by chunk.
template <class E>
struct ChunkedPieces {
  Accumulator operator()(const SegmentedBuffer& input, const Piece& piece,
                         const Exponents& ex) const {
    const auto* params = static_cast<const typename E::Bits*>(input.params);
    Accumulator acc;
    for (int64_t begin = piece.begin; begin < piece.end; begin += kChunk) {
      const int64_t n = std::min(kChunk, piece.end - begin);
      const uint8_t* mask = input.mask == nullptr ? nullptr : input.mask + begin;
      acc.count += count_live(mask, n);
      const int64_t readable = input.numel - begin;
      if (ex.scaled) {
        add_scaled_chunk<E>(params + begin, mask, n, readable, ex, acc);
      } else {
        add_chunk_powers<E, false>(params + begin, mask, n, readable, Scaling{}, ex, acc);
      }
    }
    if (ex.scaled) return acc;
    const uint8_t* mask = input.mask == nullptr ? nullptr : input.mask + piece.begin;
    return finish_unscaled<E>(params + piece.begin, mask, piece.end - piece.begin, acc);
  }

  // The same for a whole piece, NaN / inf entries counted (power_sums.cpp asks both kinds of
  // piece for this); short ones with both exponents generic in float32 take the direct path.
  Accumulator sums(const SegmentedBuffer& input, const Piece& piece, const Exponents& ex) const {
    if constexpr (!std::is_same_v<E, Float64Element>) {
      const int64_t n = piece.end - piece.begin;
      if (ex.generic_in_float32 && ex.kind_p == PowerKind::kGeneric &&
          ex.kind_q == PowerKind::kGeneric && n <= kChunk) {
        const auto* params = static_cast<const typename E::Bits*>(input.params) + piece.begin;
        const uint8_t* mask = input.mask == nullptr ? nullptr : input.mask + piece.begin;
        return sum_short_generic_f32<E>(params, mask, n, input.numel - piece.begin, ex);
      }
    }
    return (*this)(input, piece, ex);
  }
};

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
