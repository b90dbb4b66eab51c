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
template <class E>
void add_generic_chunk_f32(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                           int64_t readable, const Scaling& scaling, const Exponents& ex,
                           Accumulator& acc) {
  alignas(64) float log2_magnitudes[kChunk];
  // Both factors are within float's range (|e| <= 149); the product of the first stays below
  // 2^75, and entries that end below 2^-126 are dropped anyway (powers_f32.h).
  const float high = static_cast<float>(scaling.high), low = static_cast<float>(scaling.low);
  // A partial last octet is zero-padded: the log2 of a dropped entry.
  for_each_octet<E>(params, mask, n, readable, [&](f32x8 magnitudes, int64_t i) {
    __builtin_prefetch(params + i + kChunk);
    const f32x8 log2_scaled = log2_x8(magnitudes * high * low);
    __builtin_memcpy(log2_magnitudes + i, &log2_scaled, sizeof(log2_scaled));
  });
  add_generic_powers_f32(log2_magnitudes, (n + 7) / 8 * 8, static_cast<float>(ex.p),
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
      add_generic_chunk_f32<E>(params, mask, n, readable, scaling, ex, acc);
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

  // The same, NaN / inf entries counted (power_sums.cpp asks both kinds of piece for this).
  Accumulator sums(const SegmentedBuffer& input, const Piece& piece, const Exponents& ex) const {
    return (*this)(input, piece, ex);
  }
};

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
