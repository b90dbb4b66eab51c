// The PQ Index of segments from their power sums (the scale cancels):
//   I = 1 - d^(1/q - 1/p) * sum_p^(1/p) / sum_q^(1/q) = 1 - M_p / M_q,
//   M_r = (sum_r / d)^(1/r), the power mean of order r.
// NaN for d = 0, an all-zero segment or NaN sums; 0 for d = 1.
// Where 1/p and 1/q are 2, 1, 1/2 or 1/4 the means are a square, the value itself or square
// roots (pqi_by_roots, to ~1e-16). Other exponents need pow, and three pow calls a segment cost
// more than reading a short segment's entries: those go four segments at a time through a
// vectorized log2 / exp2 (pqi_x4, ~1e-13). Each exponent pair takes one of the two, for every
// segment of every call, so that a PQI does not depend on how the buffer was cut into tiles.
#pragma once

#include <cstdint>

#include "isa.h"
#include "powers.h"
#include "vectors.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// x^(1/r) for the orders whose inverse is 2, 1, 1/2 or 1/4.
enum class RootKind { kSquare, kIdentity, kSqrt, kFourthRoot, kNone };

inline RootKind root_kind(double order) {
  if (order == 0.5) return RootKind::kSquare;
  if (order == 1.0) return RootKind::kIdentity;
  if (order == 2.0) return RootKind::kSqrt;
  if (order == 4.0) return RootKind::kFourthRoot;
  return RootKind::kNone;
}

inline f64x4 take_root(f64x4 x, RootKind kind) {
  switch (kind) {
    case RootKind::kSquare: return x * x;
    case RootKind::kSqrt: return sqrt4(x);
    case RootKind::kFourthRoot: return sqrt4(sqrt4(x));
    default: return x;
  }
}

inline bool pqi_by_roots(double p, double q) {
  return root_kind(p) != RootKind::kNone && root_kind(q) != RootKind::kNone;
}

inline f64x4 special_pqi(f64x4 pqi, f64x4 sum_p, f64x4 count) {
  const f64x4 nan = splat(__builtin_nan(""));
  const f64x4 dense = count == 1.0 ? splat(0.0) : pqi;  // one live entry: as dense as can be
  return (count == 0.0) | (sum_p == 0.0) | (sum_p != sum_p) ? nan : dense;
}

// sum_r / d lies between the smallest and the largest term, so neither mean over- or
// underflows.
inline f64x4 pqi_by_means_x4(f64x4 sum_p, f64x4 sum_q, f64x4 count, RootKind root_p,
                             RootKind root_q) {
  const f64x4 pqi = 1.0 - take_root(sum_p / count, root_p) / take_root(sum_q / count, root_q);
  return special_pqi(pqi, sum_p, count);
}

inline f64x4 pqi_x4(f64x4 sum_p, f64x4 sum_q, f64x4 count, double p, double q) {
  const f64x4 exponent =
      log2_x4(sum_p) * (1.0 / p) - log2_x4(sum_q) * (1.0 / q) + log2_x4(count) * (1.0 / q - 1.0 / p);
  return special_pqi(1.0 - exp2_x4(exponent), sum_p, count);
}

// How the PQI of a segment is found for an exponent pair: the same way for every segment.
struct PqiRule {
  double p;
  double q;
  RootKind root_p;
  RootKind root_q;
  bool by_roots;
  PqiRule(double p_, double q_)
      : p(p_), q(q_), root_p(root_kind(p_)), root_q(root_kind(q_)), by_roots(pqi_by_roots(p_, q_)) {}

  f64x4 operator()(f64x4 sum_p, f64x4 sum_q, f64x4 count) const {
    return by_roots ? pqi_by_means_x4(sum_p, sum_q, count, root_p, root_q)
                    : pqi_x4(sum_p, sum_q, count, p, q);
  }

  double operator()(double sum_p, double sum_q, int64_t count) const {
    return (*this)(splat(sum_p), splat(sum_q), splat(static_cast<double>(count)))[0];
  }
};

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
