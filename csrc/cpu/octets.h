// Power sums of 16/32-bit entries eight at a time, for the unscaled mode with fast-path
// exponents. Every float16 and bfloat16 value is exact in float32, so each octet is loaded as
// float32 magnitudes (dead entries 0), widened to double, and raised to the powers there.
// A piece's last partial octet has its extra lanes zeroed, so short segments cost a few vector
// steps and no scalar epilogue: what keeps a million small segments near the bandwidth.
#pragma once

#include "isa.h"

#include <cstdint>
#include <cstring>

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
  const u32x8 half = __builtin_convertvector(raw, u32x8) & 0x7fffu;
  // Shifted into float32's fields the value is 2^-112 of the true one (bias 15 vs 127), also
  // for subnormal halves; inf / NaN (exponent 31) keep float32's all-ones exponent instead.
  const f32x8 rebased = (f32x8)(half << 13) * 0x1p112f;
  const u32x8 special = (half << 13) | 0x7f800000u;
  return half >= 0x7c00u ? special : (u32x8)(rebased);
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

template <PowerKind kKind>
inline f64x4 power4(f64x4 x, f64x4 root) {
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

// Σ a^p and Σ a^q over the live entries of params[0..n), a = |w|, for fast-path kinds.
// Two octets a step, each into its own accumulators: one chain of adds would wait on the add
// latency (3-4 cycles an octet), slower than the memory. `readable` entries (and mask bytes)
// from params on are in the buffer: where the last partial step fits, it is loaded whole and
// its lanes at or beyond n are zeroed, so that a segment costs one loop and one
// hard-to-predict branch (its exit); otherwise the tail is copied, zero-padded.
template <class E, PowerKind kP, PowerKind kQ>
void sum_powers_by_octets(const OctetSpan<E>& span, double& sum_p, double& sum_q) {
  using Bits = typename E::Bits;
  const auto [params, mask, n, readable] = span;
  const u32x8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
  f64x4 acc_p[2] = {}, acc_q[2] = {};
  auto step = [&](const Bits* at, const uint8_t* live, int64_t remaining, int slot) {
    u32x8 bits = (u32x8)(load_magnitudes8<E>(at, live));
    const int64_t kept = remaining < 0 ? 0 : (remaining < 8 ? remaining : 8);
    bits &= (u32x8)(lane < static_cast<uint32_t>(kept));
    const f32x8 a = (f32x8)(bits);
    f64x4 low, high, root_low = {}, root_high = {};
    widen(a, low, high);
    if constexpr (needs_root<kP>() || needs_root<kQ>()) sqrt_widened(a, root_low, root_high);
    acc_p[slot] += power4<kP>(low, root_low) + power4<kP>(high, root_high);
    acc_q[slot] += power4<kQ>(low, root_low) + power4<kQ>(high, root_high);
  };
  const int64_t covered = (n + 15) / 16 * 16 <= readable ? n : n / 16 * 16;
  int64_t i = 0;
  for (; i < covered; i += 16) {
    step(params + i, mask ? mask + i : nullptr, n - i, 0);
    step(params + i + 8, mask ? mask + i + 8 : nullptr, n - i - 8, 1);
  }
  if (i < n) {  // the last partial step at the end of the buffer, copied zero-padded
    Bits tail[16] = {};
    uint8_t tail_mask[16] = {};
    std::memcpy(tail, params + i, static_cast<size_t>(n - i) * sizeof(Bits));
    if (mask) std::memcpy(tail_mask, mask + i, static_cast<size_t>(n - i));
    step(tail, mask ? tail_mask : nullptr, n - i, 0);
    step(tail + 8, mask ? tail_mask + 8 : nullptr, n - i - 8, 1);
  }
  const f64x4 total_p = acc_p[0] + acc_p[1], total_q = acc_q[0] + acc_q[1];
  sum_p += (total_p[0] + total_p[1]) + (total_p[2] + total_p[3]);
  sum_q += (total_q[0] + total_q[1]) + (total_q[2] + total_q[3]);
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
