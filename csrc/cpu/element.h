// Per-dtype access to the magnitude of a parameter through its bit pattern.
// With the sign bit cleared, the bits of a non-negative float order the same way as its value,
// and NaN / inf are exactly the patterns >= kInfBits. So one integer max over a chunk gives both
// its largest magnitude and whether it holds a non-finite entry.
#pragma once

#include "isa.h"

#include <cstdint>
#include <cstring>

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

template <class To, class From>
inline To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast needs equal sizes");
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}

struct Float32Element {
  using Bits = uint32_t;
  static constexpr Bits kAbsMask = 0x7fffffffu;
  static constexpr Bits kInfBits = 0x7f800000u;
  static double to_double(Bits bits) { return static_cast<double>(bit_cast<float>(bits)); }
};

struct Float64Element {
  using Bits = uint64_t;
  static constexpr Bits kAbsMask = 0x7fffffffffffffffull;
  static constexpr Bits kInfBits = 0x7ff0000000000000ull;
  static double to_double(Bits bits) { return bit_cast<double>(bits); }
};

struct BFloat16Element {
  using Bits = uint16_t;
  static constexpr Bits kAbsMask = 0x7fff;
  static constexpr Bits kInfBits = 0x7f80;
  static double to_double(Bits bits) {
    return static_cast<double>(bit_cast<float>(static_cast<uint32_t>(bits) << 16));
  }
};

struct Float16Element {
  using Bits = uint16_t;
  static constexpr Bits kAbsMask = 0x7fff;
  static constexpr Bits kInfBits = 0x7c00;
  // Branch-free so that loops over it vectorize; bits has its sign bit cleared.
  static double to_double(Bits bits) {
    const uint64_t exponent = bits >> 10;
    const uint64_t mantissa = bits & 0x3ffu;
    const uint64_t normal = ((exponent + (1023 - 15)) << 52) | (mantissa << 42);
    const uint64_t special = (0x7ffull << 52) | (mantissa << 42);  // inf / NaN
    const double subnormal = static_cast<double>(static_cast<int32_t>(mantissa)) * 0x1p-24;
    const double wide = bit_cast<double>(exponent == 31 ? special : normal);
    return exponent == 0 ? subnormal : wide;
  }
};

// Magnitude bits of entry i, or 0 where the mask marks it dead.
template <class E>
inline typename E::Bits live_abs_bits(const typename E::Bits* params, const uint8_t* mask,
                                      int64_t i) {
  using Bits = typename E::Bits;
  const Bits bits = static_cast<Bits>(params[i] & E::kAbsMask);
  if (mask == nullptr) return bits;
  return static_cast<Bits>(bits & static_cast<Bits>(-static_cast<Bits>(mask[i] != 0)));
}

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
