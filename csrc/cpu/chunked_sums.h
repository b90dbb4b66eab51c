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
#include "octets_avx512.h"
#include "power_tables.h"
#include "powers.h"
#include "powers_f32.h"
#include "sap_kernels/power_sums.h"
#include "short_generic_tables.h"
#include "tiles.h"
#include "vectors.h"

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

// The float32 buffer of a chunk's magnitudes: kChunk entries and the zero octet that pads
// them to whole vectors (store_magnitudes).
using ChunkBuffer = float[kChunk + 8];

// Stores the live magnitudes of params[0..n) (n <= kChunk) as float32, dead entries 0, to
// `magnitudes`, zero-padded to a whole number of kExp2Lanes vectors; returns the bits of the
// largest (NaN / inf give bits >= Float32Element::kInfBits). One read of the entries gives
// both the max (the scale) and what the powers are taken of, which then come from L1.
template <class E>
uint32_t store_magnitudes(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                          int64_t readable, float* magnitudes) {
  u32x8 largest = {};
  for_each_octet<E>(params, mask, n, readable, [&](f32x8 octet, int64_t i) {
    const u32x8 bits = (u32x8)(octet);
    largest = bits > largest ? bits : largest;
    __builtin_memcpy(magnitudes + i, &octet, sizeof(octet));
  });
  const f32x8 zeros = {};
  __builtin_memcpy(magnitudes + (n + 7) / 8 * 8, &zeros, sizeof(zeros));
  return horizontal_max(largest);
}

inline int64_t padded_to_exp2_lanes(int64_t n) {
  return (n + kExp2Lanes - 1) / kExp2Lanes * kExp2Lanes;
}

// A vector of values that store_magnitudes wrote an octet at a time: loaded as octets, since
// a wider load of two narrower stores cannot take their data from the store buffer and waits
// until they reach the cache (a stall of one short segment to the next).
inline Exp2Vector load_stored_octets(const float* values) {
#if defined(__AVX512F__)
  f32x8 low, high;
  __builtin_memcpy(&low, values, sizeof(low));
  __builtin_memcpy(&high, values + 8, sizeof(high));
  return __builtin_shufflevector(low, high, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
  return load_lanes(values);
#endif
}

#if defined(SAP_KERNELS_POWER_TABLES) && defined(SAP_KERNELS_SIXTEEN_LANE_SUMS)
// store_chunk_magnitudes / load_chunk_vector: store_magnitudes and its loads for a piece whose
// terms add_table_sums takes, long after the stores. In the AVX-512 copy sixteen entries a step
// (half the steps of the octets), each vector stored whole and read back with one load: ~5%
// off the generic sums of rows of 1000 and of one long segment. The last 1..15 entries are read
// and stored as octets: with a lane-masked load of them, whose masked lanes reach into the next
// segment, rows of 1000 took 5-12% longer on Zen 4 (half of this function's time on that
// load). (GenericBatch keeps the octets: its loads follow its stores closely, and a wide load
// of a last vector's octets then waits for them.)
template <class E, bool kMasked>
u32x16 store_whole_vectors(const typename E::Bits* params, const uint8_t* mask, int64_t whole,
                           float* magnitudes) {
  u32x16 largest = {};
  for (int64_t i = 0; i < whole; i += 16) {
    const f32x16 values =
        live_magnitudes16<E, kMasked>(params + i, kMasked ? mask + i : nullptr, 0xffff);
    const u32x16 bits = (u32x16)(values);
    largest = bits > largest ? bits : largest;
    __builtin_memcpy(magnitudes + i, &values, sizeof(values));
  }
  return largest;
}

template <class E>
uint32_t store_chunk_magnitudes(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                                int64_t readable, float* magnitudes) {
  const int64_t whole = n / 16 * 16;
  const u32x16 wide = mask == nullptr
                          ? store_whole_vectors<E, false>(params, mask, whole, magnitudes)
                          : store_whole_vectors<E, true>(params, mask, whole, magnitudes);
  // the last 1..15 entries (and the zero octet that ends their vector) as octets
  const uint8_t* rest_mask = mask == nullptr ? nullptr : mask + whole;
  const uint32_t last = store_magnitudes<E>(params + whole, rest_mask, n - whole,
                                            readable - whole, magnitudes + whole);
  return std::max(horizontal_max(wide), last);
}

inline Exp2Vector load_chunk_vector(const float* values) { return load_lanes(values); }
#else
template <class E>
uint32_t store_chunk_magnitudes(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                                int64_t readable, float* magnitudes) {
  return store_magnitudes<E>(params, mask, n, readable, magnitudes);
}

inline Exp2Vector load_chunk_vector(const float* values) { return load_stored_octets(values); }
#endif

// log2(x * high * low) in place for values[0..padded), padded a multiple of kExp2Lanes;
// x * high * low is in [0, 1]. The scale 2^-e comes as two factors, high * low
// (Scaling::for_exponent): both are within float's range (|e| <= 149), the product of the
// first stays below 2^75, and entries that end below 2^-126 are dropped anyway (powers_f32.h).
// Compute-bound: the loop also prefetches the params of the next chunk, `next`, so that its
// read (store_magnitudes) comes from cache instead of waiting on memory.
template <class E>
void scaled_log2_in_place(float* values, int64_t padded, float high, float low,
                          const typename E::Bits* next) {
  for (int64_t i = 0; i < padded; i += kExp2Lanes) {
    __builtin_prefetch(next + i);
    const Exp2Vector log2_scaled = log2_lanes(load_stored_octets(values + i) * high * low);
    __builtin_memcpy(values + i, &log2_scaled, sizeof(log2_scaled));
  }
}

#if defined(SAP_KERNELS_POWER_TABLES)
// Adds Σ (x 2^-e)^p (if kP) and Σ (x 2^-e)^q (if kQ) of magnitudes[0..padded), padded a
// multiple of 16, by the tables (power_tables.h), in add_exp2_sums's order (GenericBatch adds
// its stored terms the same way).
// Compute-bound: it prefetches `next` (the params of the next chunk) into L2 (prefetcht1;
// into L1 they ran out of fill buffers and stalled the loop), so that their read comes from
// cache instead of waiting on memory.
template <bool kP, bool kQ, class Bits>
void add_table_sums(const float* magnitudes, int64_t padded, const TableScale& scale,
                    const PowerTables& tables, const Bits* next, double& sum_p, double& sum_q) {
  const TablePowers<kP, kQ> powers(tables);
  Exp2Sum acc_p = {}, acc_q = {};
  int64_t i = 0;
  // Two vectors' terms added at once, so that only two of each are live.
  auto pair = [&](int64_t at, f32x16& pair_p, f32x16& pair_q) __attribute__((always_inline)) {
    f32x16 first_p, first_q, second_p, second_q;
    __builtin_prefetch(next + at, 0, 2);
    powers.terms(load_chunk_vector(magnitudes + at), scale, first_p, first_q);
    __builtin_prefetch(next + at + 16, 0, 2);
    powers.terms(load_chunk_vector(magnitudes + at + 16), scale, second_p, second_q);
    pair_p = first_p + second_p;
    pair_q = first_q + second_q;
  };
  for (; i + 64 <= padded; i += 64) {
    f32x16 low_p, low_q, high_p, high_q;
    pair(i, low_p, low_q);
    pair(i + 32, high_p, high_q);
    if constexpr (kP) add_to_double(acc_p, low_p + high_p);
    if constexpr (kQ) add_to_double(acc_q, low_q + high_q);
  }
  for (; i < padded; i += 16) {  // short segments: at most three more vectors
    f32x16 p, q;
    powers.terms(load_chunk_vector(magnitudes + i), scale, p, q);
    if constexpr (kP) add_to_double(acc_p, p);
    if constexpr (kQ) add_to_double(acc_q, q);
  }
  sum_p += horizontal_sum(acc_p);
  sum_q += horizontal_sum(acc_q);
}
#endif

// Adds the generic exponents' power sums of a chunk whose magnitudes store_magnitudes put in
// `magnitudes`, scaled by 2^-e (`scale`), in float32 arithmetic: by the tables with AVX-512
// (power_tables.h), else by log2 / exp2 (powers_f32.h).
template <class E>
void add_generic_chunk_f32(float* magnitudes, int64_t n, const typename E::Bits* next,
                           const TableScale& scale, const Exponents& ex, Accumulator& acc) {
  const int64_t padded = padded_to_exp2_lanes(n);
  const bool generic_p = ex.kind_p == PowerKind::kGeneric;
  const bool generic_q = ex.kind_q == PowerKind::kGeneric;
#if defined(SAP_KERNELS_POWER_TABLES)
  const PowerTables& tables = *ex.tables;
  if (generic_p && generic_q) {
    return add_table_sums<true, true>(magnitudes, padded, scale, tables, next, acc.sum_p,
                                      acc.sum_q);
  }
  if (generic_p) {
    return add_table_sums<true, false>(magnitudes, padded, scale, tables, next, acc.sum_p,
                                       acc.sum_q);
  }
  add_table_sums<false, true>(magnitudes, padded, scale, tables, next, acc.sum_p, acc.sum_q);
#else
  scaled_log2_in_place<E>(magnitudes, padded, scale.high, scale.low, next);
  add_generic_powers_f32(magnitudes, padded, static_cast<float>(ex.p), static_cast<float>(ex.q),
                         generic_p, generic_q, acc.sum_p, acc.sum_q);
#endif
}

// Adds the fast-path exponents' power sums of a chunk to acc.
template <class E, bool kScaled>
void add_fast_path_powers(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                          const Scaling& scaling, const Exponents& ex, Accumulator& acc) {
  if (ex.kind_p != PowerKind::kGeneric) {
    acc.sum_p += sum_power<E, kScaled>(ex.kind_p, params, mask, n, scaling);
  }
  if (ex.kind_q != PowerKind::kGeneric) {
    acc.sum_q += sum_power<E, kScaled>(ex.kind_q, params, mask, n, scaling);
  }
}

// Adds the chunk's power sums to acc, generic exponents in double arithmetic.
template <class E, bool kScaled>
void add_chunk_powers(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                      const Scaling& scaling, const Exponents& ex, Accumulator& acc) {
  add_fast_path_powers<E, kScaled>(params, mask, n, scaling, ex, acc);
  const bool generic_p = ex.kind_p == PowerKind::kGeneric;
  const bool generic_q = ex.kind_q == PowerKind::kGeneric;
  if (!generic_p && !generic_q) return;
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
    return horizontal_max(largest);
  }
}

// A chunk's power sums in units of 2^e, e the exponent of the largest |w| seen so far in the
// segment (acc.exponent, raised by this chunk's max where larger).
template <class E>
void add_scaled_chunk(const typename E::Bits* params, const uint8_t* mask, int64_t n,
                      int64_t readable, const Exponents& ex, Accumulator& acc) {
  using M = MaxElement<E>;
  alignas(64) ChunkBuffer magnitudes;
  const bool generic_f32 = !std::is_same_v<E, Float64Element> && ex.generic_in_float32;
  const auto max_bits = static_cast<typename M::Bits>(
      generic_f32 ? store_chunk_magnitudes<E>(params, mask, n, readable, magnitudes)
                  : max_magnitude_bits<E>(params, mask, n, readable));
  if (max_bits >= M::kInfBits) {
    acc.nonfinite += count_nonfinite<E>(params, mask, n);
    return;
  }
  if (max_bits == 0) return;  // all zero or dead: adds nothing to the sums
  const int chunk_exponent = binary_exponent(M::to_double(max_bits));  // max = f 2^e
  // 2^1024 overflows: for the largest doubles take 2^1023, so entries scale to below 2.
  acc.rescale_to(std::min(chunk_exponent, 1023), ex);
  const Scaling scaling = Scaling::for_exponent(acc.exponent);
  if (!generic_f32) return add_chunk_powers<E, true>(params, mask, n, scaling, ex, acc);
  add_fast_path_powers<E, true>(params, mask, n, scaling, ex, acc);
  const TableScale scale = TableScale::for_exponent(
      acc.exponent, static_cast<float>(scaling.high), static_cast<float>(scaling.low));
  add_generic_chunk_f32<E>(magnitudes, n, params + kChunk, scale, ex, acc);
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
  alignas(64) ChunkBuffer magnitudes;
  const uint32_t max_bits = store_chunk_magnitudes<E>(params, mask, n, readable, magnitudes);
  TableScale scale;
  if (!scale_of_short_segment<E>(max_bits, params, mask, n, acc, scale)) return acc;
  add_generic_chunk_f32<E>(magnitudes, n, params + kChunk, scale, ex, acc);
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
        add_chunk_powers<E, false>(params + begin, mask, n, Scaling{}, ex, acc);
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
      if (ex.generic_in_float32 && ex.kind_p == PowerKind::kGeneric &&
          ex.kind_q == PowerKind::kGeneric && piece.end - piece.begin <= kChunk) {
        const auto* params = static_cast<const typename E::Bits*>(input.params) + piece.begin;
        const uint8_t* mask = input.mask == nullptr ? nullptr : input.mask + piece.begin;
        const int64_t n = piece.end - piece.begin;
#if defined(SAP_KERNELS_SHORT_GENERIC_TABLES)
        if (n <= kShortTableSegment) return sum_short_by_tables<E>(params, mask, n, *ex.tables);
#endif
        return sum_short_generic_f32<E>(params, mask, n, input.numel - piece.begin, ex);
      }
    }
    return (*this)(input, piece, ex);
  }
};

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
