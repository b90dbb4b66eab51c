// Power sums of 16/32-bit entries sixteen at a time, for the AVX-512 copy: the same sums as
// octets.h (float32 magnitudes, dead entries 0, widened to double and raised to the powers
// there), in 512-bit vectors. On an AMD EPYC (Zen 5) core, in cache, the octets' widening and
// adds in 256-bit halves were the bound: 0.22 ns an entry for (0.5, 1) on one long segment and
// 0.11 for (1, 2); sixteen lanes take 0.12 and 0.08.
//
// So they are taken on AMD CPUs (sixteen_lanes_pay). On an Intel Xeon (512-bit arithmetic on
// two ports, a 512-bit square root half the rate per instruction) a 16-lane form of this kernel
// was slower on every layout than the octets, which that CPU keeps.
//
// The last 1..16 entries of a span are one step whose load is masked to them (and to the live
// entries): a masked AVX-512 load reads nothing of the lanes it leaves out, so it may run past
// the end of the buffer without a padded copy, and the step needs no branch on where it is.
#pragma once

#include "isa.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define SAP_KERNELS_SIXTEEN_LANE_SUMS 1

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "element.h"
#include "octets.h"
#include "vectors.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

inline bool sixteen_lanes_pay() {
  static const bool amd = __builtin_cpu_is("amd");
  return amd;
}

// The first `count` of 16 lanes (count in 0..16).
inline __mmask16 first_lanes(int64_t count) {
  return static_cast<__mmask16>(_bzhi_u32(0xffffu, static_cast<uint32_t>(count)));
}

// The lanes of `lanes` whose mask byte is non-zero.
inline __mmask16 live_lanes(const uint8_t* mask, __mmask16 lanes) {
  const __m128i live = _mm_maskz_loadu_epi8(lanes, mask);
  return _mm_mask_test_epi8_mask(lanes, live, live);
}

// |w| of the `lanes` of 16 entries as float32, other lanes 0 (read nothing there).
template <class E>
f32x16 load_magnitudes16(const typename E::Bits* params, __mmask16 lanes);

template <>
inline f32x16 load_magnitudes16<Float32Element>(const uint32_t* params, __mmask16 lanes) {
  const __m512i bits = _mm512_maskz_loadu_epi32(lanes, params);
  return (f32x16)(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)));
}

// The 16-bit loads widen by vector extensions, and vcvtph2ps is the masked form with every
// lane kept: GCC 12 warns of an uninitialised value inside the headers of the unmasked
// intrinsics (as for the widening, vectors.h).
inline u32x16 load_bits16(const uint16_t* params, __mmask16 lanes) {
  using u16x16 = uint16_t __attribute__((vector_size(32)));
  return __builtin_convertvector((u16x16)(_mm256_maskz_loadu_epi16(lanes, params)), u32x16);
}

template <>
inline f32x16 load_magnitudes16<BFloat16Element>(const uint16_t* params, __mmask16 lanes) {
  return (f32x16)((load_bits16(params, lanes) & 0x7fffu) << 16);
}

template <>
inline f32x16 load_magnitudes16<Float16Element>(const uint16_t* params, __mmask16 lanes) {
  // vcvtph2ps is exact for every half, subnormals included; inf stays inf and NaN NaN.
  const __m256i raw = _mm256_maskz_loadu_epi16(lanes, params);
  const __m256i magnitude = _mm256_and_si256(raw, _mm256_set1_epi16(0x7fff));
  return (f32x16)(_mm512_maskz_cvtph_ps(0xffff, magnitude));
}

// The magnitudes of the `lanes` of the 16 entries at `at` that the mask keeps.
template <class E, bool kMasked>
__attribute__((always_inline)) inline f32x16 live_magnitudes16(const typename E::Bits* at,
                                                               const uint8_t* mask,
                                                               __mmask16 lanes) {
  return load_magnitudes16<E>(at, kMasked ? live_lanes(mask, lanes) : lanes);
}

// The power sums of 16 lanes at a time, in two accumulators of eight doubles per exponent.
template <PowerKind kP, PowerKind kQ>
struct SixteenSums {
  f64x8 p[2] = {};
  f64x8 q[2] = {};

  __attribute__((always_inline)) void add(f32x16 magnitudes) {
    f64x8 low, high, root_low = {}, root_high = {};
    widen(magnitudes, low, high);
    if constexpr (needs_root<kP>() || needs_root<kQ>()) {
      widen((f32x16)(_mm512_maskz_sqrt_ps(0xffff, (__m512)(magnitudes))), root_low,
            root_high);  // the masked form, as for the 16-bit loads above
    }
    p[0] += power_lanes<kP>(low, root_low);
    p[1] += power_lanes<kP>(high, root_high);
    q[0] += power_lanes<kQ>(low, root_low);
    q[1] += power_lanes<kQ>(high, root_high);
  }

  __attribute__((always_inline)) static double total(f64x8 low, f64x8 high) {
    const f64x8 sum = low + high;
    const f64x4 halves = __builtin_shufflevector(sum, sum, 0, 1, 2, 3) +
                         __builtin_shufflevector(sum, sum, 4, 5, 6, 7);
    return (halves[0] + halves[1]) + (halves[2] + halves[3]);
  }

  __attribute__((always_inline)) PowerPair total() const {
    return {total(p[0], p[1]), total(q[0], q[1])};
  }
};

// The first `count` of 32 lanes (count in 0..32).
inline __mmask32 first_lanes32(int64_t count) {
  return _bzhi_u32(0xffffffffu, static_cast<uint32_t>(count));
}

// sum_powers_by_sixteens for bfloat16: 32 entries a step, one 512-bit load split into the
// float32 magnitudes of the even entries (each one's bits shifted up 16) and of the odd ones
// (the bits in place, the low half cleared): three bit operations, none across lanes, in place
// of two widenings across lanes (vpmovzxwd) and an insert per 16 entries. Those shuffles made
// bfloat16 ~40% dearer an entry than float32 in cache; split this way, `segmented_pqi` on
// bfloat16 took 0.75-0.86 of the time (Zen 4, one core, in cache; with two cores on 1e8
// entries, (1, 2): global 0.73, rows 0.78, ragged 0.89). Each term is the same; they are added
// in another order (the float64 sums move by their rounding only). The last 1..32 entries are
// one lane-masked step.
template <PowerKind kP, PowerKind kQ, bool kMasked>
__attribute__((always_inline)) inline PowerPair sum_bfloat16_by_32(const uint16_t* params,
                                                                   const uint8_t* mask,
                                                                   int64_t n) {
  SixteenSums<kP, kQ> sums;
  auto step = [&](int64_t i, __mmask32 lanes) __attribute__((always_inline)) {
    if constexpr (kMasked) {
      const __m256i live = _mm256_maskz_loadu_epi8(lanes, mask + i);
      lanes = _mm256_mask_test_epi8_mask(lanes, live, live);
    }
    // dead lanes and those past the end are 0, not read
    const u32x16 pairs = (u32x16)(_mm512_maskz_loadu_epi16(lanes, params + i));
    sums.add((f32x16)((pairs << 16) & 0x7fffffffu));  // the even entries
    sums.add((f32x16)(pairs & 0x7fff0000u));          // the odd ones
  };
  int64_t i = 0;
  for (; i + 32 < n; i += 32) step(i, 0xffffffffu);
  step(i, first_lanes32(n - i));
  return sums.total();
}

// Σ a^p and Σ a^q over the live entries of params[0..n), a = |w|, for fast-path kinds:
// whole steps of 16 unmasked, then one step of the last 1..16 entries (none for n = 0).
// No software prefetch, unlike the octets: on a Zen 4 VM with two cores streaming, the
// hardware prefetchers kept up alone, and octets.h's prefetches (16 KiB ahead into L2, 4 KiB
// into L1) made the sums of 1e8 float32 ~14% slower when the memory was fast (a plain sum
// ~8 ms; one segment, (0.5, 1): 1.40x its time with them, 1.19-1.21x without) and 2-3%
// slower when it was slow (a plain sum ~12 ms).
template <class E, PowerKind kP, PowerKind kQ, bool kMasked>
__attribute__((always_inline)) inline PowerPair sum_powers_by_sixteens(const OctetSpan<E>& span) {
  const auto [params, mask, n, readable] = span;
  (void)readable;  // a masked load never reads past what it keeps
  if constexpr (std::is_same_v<E, BFloat16Element>) {
    return sum_bfloat16_by_32<kP, kQ, kMasked>(params, mask, n);
  } else {
    SixteenSums<kP, kQ> sums;
    int64_t i = 0;
    for (; i + 16 < n; i += 16) {
      sums.add(live_magnitudes16<E, kMasked>(params + i, kMasked ? mask + i : nullptr, 0xffff));
    }
    sums.add(live_magnitudes16<E, kMasked>(params + i, kMasked ? mask + i : nullptr,
                                           first_lanes(n - i)));
    return sums.total();
  }
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA

#endif
