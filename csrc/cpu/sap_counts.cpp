#include "sap_kernels/sap_counts.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace sap_kernels {
namespace {

// x^y; y = 1 (the paper's (p, q) = (0.5, 1)) without the cost of pow, and the same value:
// x itself, which pow (error below 1 ulp) returns too.
double power(double x, double y) { return y == 1.0 ? x : std::pow(x, y); }

// r = d (1 + eta_r)^(-q/(q-p)) (1 - I)^(qp/(q-p)), NaN where I is NaN.
double retain_bound(double pqi, int64_t count, const SapCountFactors& factors) {
  const double d = static_cast<double>(count);
  return d * factors.eta_factor * power(1.0 - pqi, factors.pqi_exponent);
}

// The threads worth waking for the counts of num_segments segments: below a few thousand pow
// calls, one (waking the others takes tens of microseconds once they sleep).
int count_threads(int64_t num_segments) {
  return num_segments >= 4096 ? omp_get_max_threads() : 1;
}

}  // namespace

SapCountFactors sap_count_factors(const SapParameters& sap) {
  return {std::pow(1.0 + sap.eta_r, -sap.q / (sap.q - sap.p)), sap.q * sap.p / (sap.q - sap.p)};
}

void sap_retain_bound_cpu(const double* pqi, const int64_t* count, int64_t num_segments,
                          const SapParameters& sap, double* retain) {
  const SapCountFactors factors = sap_count_factors(sap);
#pragma omp parallel for schedule(static) num_threads(count_threads(num_segments))
  for (int64_t s = 0; s < num_segments; ++s) retain[s] = retain_bound(pqi[s], count[s], factors);
}

int64_t sap_prune_count(double pqi, int64_t count, const SapParameters& sap,
                        const SapCountFactors& factors) {
  if (std::isnan(pqi) || count == 0) return 0;
  const double d = static_cast<double>(count);
  const double r = retain_bound(pqi, count, factors);
  const double wanted = std::min(sap.gamma * (d - r), sap.beta * d);
  return static_cast<int64_t>(std::floor(std::max(0.0, wanted)));
}

void sap_prune_counts_cpu(const double* pqi, const int64_t* count, int64_t num_segments,
                          const SapParameters& sap, int64_t* prune) {
  const SapCountFactors factors = sap_count_factors(sap);
#pragma omp parallel for schedule(static) num_threads(count_threads(num_segments))
  for (int64_t s = 0; s < num_segments; ++s) {
    prune[s] = sap_prune_count(pqi[s], count[s], sap, factors);
  }
}

}  // namespace sap_kernels
