// The PQ Index of segments from their power sums (the scale cancels):
//   I = 1 - d^(1/q - 1/p) * sum_p^(1/p) / sum_q^(1/q) = 1 - M_p / M_q,
//   M_r = (sum_r / d)^(1/r), the power mean of order r.
// NaN for d = 0, an all-zero segment or NaN sums; 0 for d = 1.
// Where 1/p and 1/q are 2, 1, 1/2 or 1/4 the means are a square, the value itself or square
// roots (pqi_by_roots, to ~1e-16). Other exponents need pow, and three pow calls a segment cost
// more than reading a short segment's entries: those go four or eight segments at a time
// through a vectorized log2 / exp2 (pqi_by_logs, ~1e-13). Each exponent pair takes one of the
// two, for every segment of every call, so that a PQI does not depend on how the buffer was cut
// into tiles.
#pragma once

#include <cstdint>

#include "isa.h"
#include "powers.h"
#include "vectors.h"

namespace sap_kernels::cpu::SAP_KERNELS_ISA {

// The PQI's vector: eight segments at a time with AVX-512, four otherwise. Its log2 / exp2 are
// long chains of dependent steps; eight lanes put twice the segments in the core's window. Every
// PQI of a build goes through the one width, so none depends on which path computed it.
#if defined(__AVX512F__)
using PqiVector = f64x8;
#else
using PqiVector = f64x4;
#endif
constexpr int kPqiLanes = static_cast<int>(sizeof(PqiVector) / sizeof(double));
using PqiMask = typename LaneTypes<PqiVector>::Signed;

// x^(1/r) for the orders whose inverse is 2, 1, 1/2 or 1/4.
enum class RootKind { kSquare, kIdentity, kSqrt, kFourthRoot, kNone };

inline RootKind root_kind(double order) {
  if (order == 0.5) return RootKind::kSquare;
  if (order == 1.0) return RootKind::kIdentity;
  if (order == 2.0) return RootKind::kSqrt;
  if (order == 4.0) return RootKind::kFourthRoot;
  return RootKind::kNone;
}

inline PqiVector take_root(PqiVector x, RootKind kind) {
  switch (kind) {
    case RootKind::kSquare: return x * x;
    case RootKind::kSqrt: return sqrt_lanes(x);
    case RootKind::kFourthRoot: return sqrt_lanes(sqrt_lanes(x));
    default: return x;
  }
}

inline bool pqi_by_roots(double p, double q) {
  return root_kind(p) != RootKind::kNone && root_kind(q) != RootKind::kNone;
}

inline PqiVector special_pqi(PqiVector pqi, PqiVector sum_p, PqiVector count) {
  const PqiVector nan = splat_as<PqiVector>(__builtin_nan(""));
  // one live entry: as dense as can be
  const PqiVector dense = count == 1.0 ? splat_as<PqiVector>(0.0) : pqi;
  return (count == 0.0) | (sum_p == 0.0) | (sum_p != sum_p) ? nan : dense;
}

// sum_r / d lies between the smallest and the largest term, so neither mean over- or
// underflows.
inline PqiVector pqi_by_means(PqiVector sum_p, PqiVector sum_q, PqiVector count, RootKind root_p,
                              RootKind root_q) {
  const PqiVector pqi =
      1.0 - take_root(sum_p / count, root_p) / take_root(sum_q / count, root_q);
  return special_pqi(pqi, sum_p, count);
}

// inverse_p = 1 / p, inverse_q = 1 / q
inline PqiVector pqi_by_logs(PqiVector sum_p, PqiVector sum_q, PqiVector count,
                             double inverse_p, double inverse_q) {
  const PqiVector exponent = log2_lanes_f64(sum_p) * inverse_p -
                             log2_lanes_f64(sum_q) * inverse_q +
                             log2_lanes_f64(count) * (inverse_q - inverse_p);
  return special_pqi(1.0 - exp2_lanes_f64(exponent), sum_p, count);
}

// How the PQI of a segment is found for an exponent pair: the same way for every segment.
struct PqiRule {
  double inverse_p;
  double inverse_q;
  RootKind root_p;
  RootKind root_q;
  bool by_roots;
  PqiRule(double p, double q)
      : inverse_p(1.0 / p),
        inverse_q(1.0 / q),
        root_p(root_kind(p)),
        root_q(root_kind(q)),
        by_roots(pqi_by_roots(p, q)) {}

  PqiVector operator()(PqiVector sum_p, PqiVector sum_q, PqiVector count) const {
    return by_roots ? pqi_by_means(sum_p, sum_q, count, root_p, root_q)
                    : pqi_by_logs(sum_p, sum_q, count, inverse_p, inverse_q);
  }

  double operator()(double sum_p, double sum_q, int64_t count) const {
    return (*this)(splat_as<PqiVector>(sum_p), splat_as<PqiVector>(sum_q),
                   splat_as<PqiVector>(static_cast<double>(count)))[0];
  }
};

}  // namespace sap_kernels::cpu::SAP_KERNELS_ISA
