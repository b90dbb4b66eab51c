// Power sums of 16/32-bit entries eight at a time, for the unscaled mode with fast-path
// exponents. Every float16 and bfloat16 value is exact in float32, so each octet is loaded as
// float32 magnitudes (dead entries 0), widened to double, and raised to the powers there.
// A piece's last partial octet has its extra lanes zeroed, so short segments cost a few vector
// steps and no scalar epilogue: what keeps a million small segments near the bandwidth.
#pragma once

#include "isa.h"

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "element.h"
#include "powers.h"
#include "vectors.h"

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

template <class E>
u32x8 load_float32_bits8(const typename E::Bits* params);

template <>
inline u32x8 load_float32_bits8<Float32Element>(const uint32_t* params) {
  u32x8 bits;
  std::memcpy(&bits, params, sizeof(bits));
  return bits & 0x7fffffffu;
}

template <>
inline u32x8 load_float32_bits8<BFloat16Element>(const uint16_t* params) {
  u16x8 raw;
  std::memcpy(&raw, params, sizeof(raw));
  return (__builtin_convertvector(raw, u32x8) & 0x7fffu) << 16;
}

template <>
inline u32x8 load_float32_bits8<Float16Element>(const uint16_t* params) {
  u16x8 raw;
  std::memcpy(&raw, params, sizeof(raw));
#if defined(__F16C__)
  // vcvtph2ps (the AVX2 copies): exact for every half, subnormals included; inf stays inf and
  // NaN NaN. One instruction in place of the widening and rebasing below, with which the AVX2
  // copy's float16 sums took ~1.85x float32's time an entry (Zen 4, in cache; now 0.64-0.69
  // of that time, the same bits).
  return (u32x8)(_mm256_cvtph_ps((__m128i)(raw & 0x7fffu)));
#else
  const u32x8 half = __builtin_convertvector(raw, u32x8) & 0x7fffu;
  // Shifted into float32's fields the value is 2^-112 of the true one (bias 15 vs 127), also
  // for subnormal halves; inf / NaN (exponent 31) keep float32's all-ones exponent instead.
  const f32x8 rebased = (f32x8)(half << 13) * 0x1p112f;
  const u32x8 special = (half << 13) | 0x7f800000u;
  return half >= 0x7c00u ? special : (u32x8)(rebased);
#endif
}

// Eight live magnitudes as float32 (0 where the mask marks an entry dead).
template <class E>
inline f32x8 load_magnitudes8(const typename E::Bits* params, const uint8_t* mask) {
  u32x8 bits = load_float32_bits8<E>(params);
  if (mask != nullptr) {
    u8x8 live;
    std::memcpy(&live, mask, sizeof(live));
    bits &= (u32x8)(__builtin_convertvector(live, u32x8) != 0u);
  }
  return (f32x8)(bits);
}

// sqrt(a) for float32 a, widened to double: the float32 root, correctly rounded (within 2^-24
// relative). Refining it to double precision (a Newton step) doubles the cost of p = 0.5, which
// would leave it compute-bound well above the memory bandwidth.
inline void sqrt_widened(f32x8 a, f64x4& low, f64x4& high) {
#if defined(__AVX__)
  const f32x8 root = (f32x8)(_mm256_sqrt_ps((__m256)(a)));
#else
  f32x8 root;
  for (int lane = 0; lane < 8; ++lane) root[lane] = __builtin_sqrtf(a[lane]);
#endif
  widen(root, low, high);
}

template <PowerKind kKind>
constexpr bool needs_root() {
  return kKind == PowerKind::kHalf || kKind == PowerKind::kOneAndHalf;
}

// x^kKind lane by lane for double vectors V, given root = sqrt(x) where needs_root<kKind>().
template <PowerKind kKind, class V>
inline V power_lanes(V x, V root) {
  if constexpr (kKind == PowerKind::kHalf) return root;
  if constexpr (kKind == PowerKind::kOne) return x;
  if constexpr (kKind == PowerKind::kOneAndHalf) return x * root;
  if constexpr (kKind == PowerKind::kTwo) return x * x;
  if constexpr (kKind == PowerKind::kThree) return x * x * x;
  if constexpr (kKind == PowerKind::kFour) return (x * x) * (x * x);
  return x;
}

template <class E>
struct OctetSpan {
  const typename E::Bits* params;
  const uint8_t* mask;  // nullptr: all live
  int64_t n;
  int64_t readable;
};

struct PowerPair {
  double p;
  double q;
};

// Two octets' worth of power sums, each octet into its own accumulators: one chain of adds
// would wait on the add latency (3-4 cycles an octet), slower than the memory.
template <PowerKind kP, PowerKind kQ>
struct OctetSums {
  f64x4 p[2] = {};
  f64x4 q[2] = {};

  __attribute__((always_inline)) void add(f32x8 magnitudes, int slot) {
    f64x4 low, high, root_low = {}, root_high = {};
    widen(magnitudes, low, high);
    if constexpr (needs_root<kP>() || needs_root<kQ>()) {
      sqrt_widened(magnitudes, root_low, root_high);
    }
    p[slot] += power_lanes<kP>(low, root_low) + power_lanes<kP>(high, root_high);
    q[slot] += power_lanes<kQ>(low, root_low) + power_lanes<kQ>(high, root_high);
  }

  PowerPair total() const {
    const f64x4 total_p = p[0] + p[1], total_q = q[0] + q[1];
    return {(total_p[0] + total_p[1]) + (total_p[2] + total_p[3]),
            (total_q[0] + total_q[1]) + (total_q[2] + total_q[3])};
  }
};

// Software prefetches of the params ahead of a segment's loop: 16 KiB ahead into L2
// (prefetcht1), far enough to cover the memory latency with two cores streaming, and a quarter
// of that into L1. Prefetching 4 KiB ahead into L1 alone left one core ~30% below what the
// memory gives to a plain sum; into L2 alone, short segments waited on L2 instead.
template <class E>
constexpr int64_t kPrefetchDistance = 16384 / sizeof(typename E::Bits);

template <class E>
__attribute__((always_inline)) inline void prefetch_ahead(const typename E::Bits* at) {
  __builtin_prefetch(at + kPrefetchDistance<E>, 0, 2);
  __builtin_prefetch(at + kPrefetchDistance<E> / 4);
}

// The magnitudes of the octet at `at`, lanes at or beyond `kept` zeroed (kept may be <= 0).
template <class E, bool kMasked>
inline f32x8 octet_lanes(const typename E::Bits* at, const uint8_t* live, int64_t kept) {
  const u32x8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
  const u32x8 bits = (u32x8)(load_magnitudes8<E>(at, kMasked ? live : nullptr));
  const uint32_t count = kept <= 0 ? 0u : static_cast<uint32_t>(kept < 8 ? kept : 8);
  return (f32x8)(bits & (u32x8)(lane < count));
}

// The last `rest` entries of a span (rest <= kLanes) and their mask bytes, zero-padded to
// kLanes: a step that may not read past the end of the buffer reads this copy. A loop, not
// memcpy, which is a library call for a variable size.
template <class E, int kLanes>
struct PaddedTail {
  typename E::Bits params[kLanes] = {};
  uint8_t mask[kLanes] = {};

  PaddedTail(const typename E::Bits* from, const uint8_t* live, int64_t rest) {
    for (int64_t j = 0; j < rest; ++j) {
      params[j] = from[j];
      mask[j] = live == nullptr ? 1 : live[j];
    }
  }
};

// Calls visit(magnitudes, i) for each octet of params[0..n) (dead entries 0), i its first
// entry: whole octets as they are, the last partial one with its lanes beyond n zeroed. That one
// is read in place where `readable` entries from params allow it, else from a zero-padded copy;
// so a short span costs no scalar loop.
template <class E, class Visit>
__attribute__((always_inline)) inline void for_each_octet(const typename E::Bits* params,
                                                          const uint8_t* mask, int64_t n,
                                                          int64_t readable, Visit&& visit) {
  const int64_t whole = n / 8 * 8;
  for (int64_t i = 0; i < whole; i += 8) {
    visit(load_magnitudes8<E>(params + i, mask == nullptr ? nullptr : mask + i), i);
  }
  if (whole == n) return;
  const uint8_t* live = mask == nullptr ? nullptr : mask + whole;
  if (whole + 8 <= readable) {
    visit(octet_lanes<E, true>(params + whole, live, n - whole), whole);
    return;
  }
  const PaddedTail<E, 8> tail(params + whole, live, n - whole);
  visit(load_magnitudes8<E>(tail.params, live == nullptr ? nullptr : tail.mask), whole);
}

// The float32 magnitudes of 16 bfloat16 entries, the live ones of the first `kept` (others
// 0): `even` from the entries 0, 2, .., 14 (each one's bits shifted up 16), `odd` from 1, 3,
// .., 15 (the bits in place, the low half cleared). Bit operations within 32-bit lanes, where
// widening eight entries (vpmovzxwd) crosses lanes.
template <bool kMasked>
__attribute__((always_inline)) inline void bfloat16_pairs(const uint16_t* at, const uint8_t* live,
                                                          int64_t kept, f32x8& even, f32x8& odd) {
  u16x16 raw;
  std::memcpy(&raw, at, sizeof(raw));
  if constexpr (kMasked) {
    u8x16 bytes;
    std::memcpy(&bytes, live, sizeof(bytes));
    raw &= (u16x16)(__builtin_convertvector(bytes, u16x16) != 0);
  }
  if (kept < 16) {
    const u16x16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const auto count = static_cast<uint16_t>(kept <= 0 ? 0 : kept);
    raw &= (u16x16)(lane < count);
  }
  const auto pairs = (u32x8)(raw);
  even = (f32x8)((pairs << 16) & 0x7fffffffu);
  odd = (f32x8)(pairs & 0x7fff0000u);
}

// Adds the live entries among the first `kept` of the sixteen at `at` (`live`: their mask
// bytes) to the two slots of `sums`: two octets, or for bfloat16 its even and its odd entries
// (bfloat16_pairs), the same terms in another float64 order. The AVX2 copy on Zen 4, one
// core, in cache: bfloat16 took 0.69-0.75 of the octets' time for (1, 2), 0.57-0.65 with a
// mask (whose widening shuffled as well).
template <class E, bool kMasked, PowerKind kP, PowerKind kQ>
__attribute__((always_inline)) inline void add_sixteen(OctetSums<kP, kQ>& sums,
                                                       const typename E::Bits* at,
                                                       const uint8_t* live, int64_t kept) {
  if constexpr (std::is_same_v<E, BFloat16Element>) {
    f32x8 even, odd;
    bfloat16_pairs<kMasked>(at, live, kept, even, odd);
    sums.add(even, 0);
    sums.add(odd, 1);
  } else {
    sums.add(octet_lanes<E, kMasked>(at, live, kept), 0);
    sums.add(octet_lanes<E, kMasked>(at + 8, kMasked ? live + 8 : nullptr, kept - 8), 1);
  }
}

// Σ a^p and Σ a^q over the live entries of params[0..n), a = |w|, for fast-path kinds;
// kMasked says whether span.mask is used (it is then non-null).
// Whole steps of 16 entries run unmasked; the last 1..16 entries take one lane-masked step
// (0 only for an empty span), so a segment costs one loop and one hard-to-predict branch (its
// exit), and no step of zeros (whose square roots cost as much as any others). That step loads 16
// entries (and mask bytes) where `readable` says the buffer holds them; otherwise, at the very
// end of the buffer, it reads a zero-padded copy.
// Inlined into the tile loop, and the sums returned in registers: through memory, the caller's
// 16-byte load of two 8-byte stores stalls store forwarding once a segment.
template <class E, PowerKind kP, PowerKind kQ, bool kMasked>
__attribute__((always_inline)) inline PowerPair sum_powers_by_octets(const OctetSpan<E>& span) {
  const auto [params, mask, n, readable] = span;
  OctetSums<kP, kQ> sums;
  int64_t i = 0;
  // Not unrolled: GCC's 2x unroll adds a parity branch that a short segment mispredicts.
#pragma GCC unroll 1
  for (; i + 16 < n; i += 16) {
    prefetch_ahead<E>(params + i);
    add_sixteen<E, kMasked>(sums, params + i, kMasked ? mask + i : nullptr, 16);
  }
  const int64_t rest = n - i;
  prefetch_ahead<E>(params + i);  // also for the last step: the one line of a short segment
  if (i + 16 <= readable) {
    add_sixteen<E, kMasked>(sums, params + i, kMasked ? mask + i : nullptr, rest);
  } else if (rest > 0) {
    const PaddedTail<E, 16> tail(params + i, kMasked ? mask + i : nullptr, rest);
    add_sixteen<E, kMasked>(sums, tail.params, tail.mask, rest);
  }
  return sums.total();
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
