// Short segments with both exponents generic in float32, summed many at a time.
//
// Summed one by one (sum_short_generic_f32), a short segment is a chain of ~170 cycles of
// latency: its max, the scale, log2, two exp2, the sums. The out-of-order window holds about
// two such chains, so segments of 16 took ~3x longer an entry than rows of 1000. Here the
// segments' scaled magnitudes are gathered into one buffer, each from a whole vector, and the
// log2 / exp2 run over the whole buffer as one loop with no branch per segment, which the core
// overlaps freely; then each segment adds up its own terms. A segment's terms and the order of
// their additions are those of sum_short_generic_f32, so its sums are the same bit for bit.
#pragma once

#include <cstdint>

#include "accumulator.h"
#include "chunked_sums.h"
#include "element.h"
#include "isa.h"
#include "power_tables.h"
#include "powers_f32.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

template <class E>
class GenericBatch {
 public:
  // Entries the buffer holds: values and q-terms take 16 KiB, with the params they are read
  // from that stays in L1.
  static constexpr int64_t kCapacity = 2048;
  static constexpr int kLanes = kExp2Lanes;
  static constexpr int64_t kMaxVectors = kCapacity / kLanes;

  explicit GenericBatch(const Exponents& ex)
      : ex_(ex), p_(static_cast<float>(ex.p)), q_(static_cast<float>(ex.q)) {}

  // The longest segment the batch takes. With the tables (power_tables.h) a segment's terms are
  // a shorter chain than with log2 / exp2, and from ~150 entries on one by one was faster
  // (float32 (0.7, 1.3), one core, ns an entry, batch / one by one: 64 entries 1.06 / 1.18,
  // 128 0.82 / 0.84, 160 0.81 / 0.79, 1000 0.65 / 0.58); log2 / exp2 gain up to kCapacity.
#if defined(SAP_KERNELS_POWER_TABLES)
  static constexpr int64_t kMaxLength = 128;
#else
  static constexpr int64_t kMaxLength = kCapacity;
#endif

  // Whether a segment of n entries goes through the batch: at most kMaxLength padded to whole
  // vectors (both lengths are whole vectors).
  static_assert(kMaxLength % kLanes == 0 && kMaxLength <= kCapacity);
  static bool takes(int64_t n) { return padded_to_exp2_lanes(n) <= kMaxLength; }

  // Adds a whole segment of n entries (takes(n)); finish(segment, acc) gets its accumulator,
  // now or from a later flush. `readable`: entries the buffer holds from params on.
  template <class Finish>
  __attribute__((always_inline)) void add(const typename E::Bits* params, const uint8_t* mask,
                                          int64_t n, int64_t readable, int64_t segment,
                                          Finish&& finish) {
    const int vectors = static_cast<int>(padded_to_exp2_lanes(n) / kLanes);
    if (used_ + vectors > kMaxVectors) flush(finish);
    Accumulator acc;
    acc.count = count_live(mask, n);
    float* values = values_ + used_ * kLanes;
    // also zeroes the lanes up to the vector's end (store_magnitudes pads a zero octet)
    const uint32_t max_bits = store_magnitudes<E>(params, mask, n, readable, values);
    TableScale scale;  // the scale of sum_short_generic_f32
    if (!scale_of_short_segment<E>(max_bits, params, mask, n, acc, scale)) {
      return finish(segment, acc);
    }
    set_scales(used_, vectors, scale);
    pending_[size_] = Pending{segment, used_, vectors, acc};
    ++size_;
    used_ += vectors;
    next_ = params + n;
  }

  // Sums the gathered segments and hands each to finish.
  template <class Finish>
  void flush(Finish&& finish) {
    if (size_ == 0) return;
    terms();
    for (int i = 0; i < size_; ++i) {
      Pending& pending = pending_[i];
      add_sums(pending);
      finish(pending.segment, pending.acc);
    }
    size_ = 0;
    used_ = 0;
  }

 private:
  struct Pending {
    int64_t segment;
    int first_vector;
    int vectors;
    Accumulator acc;
  };

  // The scale of vectors [first, first + count).
  void set_scales(int first, int count, const TableScale& scale) {
    for (int v = 0; v < count; ++v) scales_[first + v] = scale;
  }

  // The terms x^p in place of each magnitude x, and x^q into terms_q_; prefetches the params
  // after the last segment, as add_table_sums and scaled_log2_in_place do.
#if defined(SAP_KERNELS_POWER_TABLES)
  void terms() {
    const TablePowers<true, true> powers(*ex_.tables);
    for (int v = 0; v < used_; ++v) {
      __builtin_prefetch(next_ + v * kLanes, 0, 2);
      float* values = values_ + v * kLanes;
      Exp2Vector term_p, term_q;
      powers.terms(load_stored_octets(values), scales_[v], term_p, term_q);
      __builtin_memcpy(values, &term_p, sizeof(term_p));
      __builtin_memcpy(terms_q_ + v * kLanes, &term_q, sizeof(term_q));
    }
  }
#else
  void terms() {
    log2_in_place();
    exp2_terms();
  }

  // log2(x high low) of every gathered entry, in place.
  void log2_in_place() {
    for (int v = 0; v < used_; ++v) {
      __builtin_prefetch(next_ + v * kLanes);
      float* values = values_ + v * kLanes;
      const TableScale& scale = scales_[v];
      const Exp2Vector scaled = load_stored_octets(values) * scale.high * scale.low;
      const Exp2Vector log2_scaled = log2_lanes(scaled);
      __builtin_memcpy(values, &log2_scaled, sizeof(log2_scaled));
    }
  }

  // 2^(p y) in place of each log2 y, and 2^(q y) into terms_q_.
  void exp2_terms() {
    for (int v = 0; v < used_; ++v) {
      float* values = values_ + v * kLanes;
      const Exp2Vector log2_x = load_lanes(values);
      const Exp2Vector term_p = exp2_lanes(log2_x, p_);
      const Exp2Vector term_q = exp2_lanes(log2_x, q_);
      __builtin_memcpy(values, &term_p, sizeof(term_p));
      __builtin_memcpy(terms_q_ + v * kLanes, &term_q, sizeof(term_q));
    }
  }
#endif

  // A segment's sums from its terms, added in add_exp2_sums's order.
  void add_sums(Pending& pending) const {
    const float* terms_p = values_ + pending.first_vector * kLanes;
    const float* terms_q = terms_q_ + pending.first_vector * kLanes;
    const int64_t n = int64_t{pending.vectors} * kLanes;
    Exp2Sum acc_p = {}, acc_q = {};
    int64_t i = 0;
    for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
      add_to_double(acc_p, sum4_lanes(terms_p + i));
      add_to_double(acc_q, sum4_lanes(terms_q + i));
    }
    for (; i < n; i += kLanes) {
      add_to_double(acc_p, load_lanes(terms_p + i));
      add_to_double(acc_q, load_lanes(terms_q + i));
    }
    pending.acc.sum_p = horizontal_sum(acc_p);
    pending.acc.sum_q = horizontal_sum(acc_q);
  }

  // Four vectors of terms added as exp2_sum4 adds them.
  static Exp2Vector sum4_lanes(const float* terms) {
    return (load_lanes(terms) + load_lanes(terms + kLanes)) +
           (load_lanes(terms + 2 * kLanes) + load_lanes(terms + 3 * kLanes));
  }

  Exponents ex_;
  float p_;
  float q_;
  int size_ = 0;  // pending segments
  int used_ = 0;  // vectors of values_ they fill
  const typename E::Bits* next_ = nullptr;
  // store_magnitudes writes up to one octet past a segment's last vector
  alignas(64) float values_[kCapacity + 16];
  alignas(64) float terms_q_[kCapacity];
  TableScale scales_[kMaxVectors];
  Pending pending_[kMaxVectors];
};

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
