// The magnitude keys of a segment's entries, and the mask writers every selection shares.
#pragma once

#include "isa.h"

#include <cstdint>

#include "radix_select.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// Entry i of the flat buffer: live or not, and its magnitude key (the bits with the sign
// cleared, ordered as |w|).
template <class E>
struct Keys {
  using Bits = typename E::Bits;
  const Bits* params;
  const uint8_t* mask;  // nullptr = all live
  bool live(int64_t i) const { return mask == nullptr || mask[i] != 0; }
  Bits key(int64_t i) const { return static_cast<Bits>(params[i] & E::kAbsMask); }
};

// Writes out[begin..end) for a threshold; ties_before = ties (live, key == T) before begin.
template <class E>
void write_mask(const Keys<E>& keys, int64_t begin, int64_t end,
                const Threshold<typename E::Bits>& threshold, int64_t ties_before, uint8_t* out) {
  int64_t ties = ties_before;
  for (int64_t i = begin; i < end; ++i) {
    const bool live = keys.live(i);
    const auto key = keys.key(i);
    const bool tie = live && key == threshold.key;
    out[i] = static_cast<uint8_t>((live && key > threshold.key) || (tie && ties < threshold.ties_kept));
    ties += tie;
  }
}

// out[begin..end) = value where live, 0 where dead.
template <class E>
void write_live(const Keys<E>& keys, int64_t begin, int64_t end, uint8_t value, uint8_t* out) {
  for (int64_t i = begin; i < end; ++i) out[i] = keys.live(i) ? value : 0;
}

// The shares of [begin, end) that the threads take, the same for every pass over it.
struct Shares {
  int64_t begin;
  int64_t end;
  int64_t count;
  int64_t share_begin(int64_t share) const { return begin + (end - begin) * share / count; }
};

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
